"""Read-side latency on a large database: ``GET /api/v1/ops/snapshot`` and ``GET /api/v1/ops/feed``.

Setup (not measured): a fresh migrated database with ``--workspaces`` workspaces (100), ``--threads``
ops_threads rows (1,000) and as many workers, ``--signals`` signals (~2,000; 60 % acknowledged),
pending approvals (``--approvals``, plus as many already decided), open questions, and ``--events``
rows in the event log (1,000,000; a realistic type mix, with the ``approval.requested`` /
``question.requested`` events of every request). Small tables go in with SQLAlchemy Core
executemany, the event log with the raw driver (``sqlite3`` executemany / asyncpg COPY).

Measured: ``ops.read.snapshot`` called directly (read session + query + dict building) and the
same through the real app over httpx's ASGI transport (auth, routing, JSON rendering), for an admin
token (all workspaces) and a one-workspace ``supervisor:read`` token; then ``/ops/feed?limit=100`` and
``/ops/feed?needs_input=true`` (same two tokens). p50/p99 over ``--requests`` requests each, after
``--warmup`` requests. Query plans of every snapshot statement and of the feed queries are printed
(SQLite ``EXPLAIN QUERY PLAN``, PostgreSQL ``EXPLAIN``), and what each snapshot lists (it is capped:
``ops.read.snapshot``). The snapshot is built uncached on every request.

    .venv/bin/python benchmarks/snapshot_latency.py [--events 1000000] [--requests 200] [--pg/--no-pg]
        [--reuse-sqlite /tmp/snap_1m.db] [--reuse-pg overseer_snap_1m]   # build once (2-3 min), then reuse
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import re
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C
import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import insert

from overseer.app import create_app
from overseer.auth.tokens import Principal, create_token
from overseer.config import Settings
from overseer.db.engine import make_engine
from overseer.ops import read
from overseer.ops.models import OpenQuestion, PendingApproval
from overseer.ops.projections import OpsCheckpoint, OpsThread, OpsWorkspace, Signal
from overseer.workers.models import Worker
from overseer.workspaces.models import Workspace

EVENT_MIX = [  # (event_type, entity_type, weight)
    ("message.delta", "worker", 55), ("item.started", "worker", 8), ("item.completed", "worker", 8),
    ("token_usage", "worker", 6), ("status", "worker", 5), ("command.output_delta", "worker", 6),
    ("turn.started", "worker", 3), ("turn.completed", "worker", 3), ("worker.state_changed", "worker", 3),
    ("plan.updated", "worker", 2), ("approval.expired", "approval", 1),
]
SIGNAL_KINDS = [("completed", 10), ("failed", 80), ("stalled", 60), ("disconnected", 70), ("needs_approval", 90),
                ("needs_input", 85)]


def _fmt(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class Dataset:
    def __init__(self, args: argparse.Namespace, seed: int = 7) -> None:
        rnd = random.Random(seed)
        self.rnd = rnd
        now = dt.datetime(2026, 1, 8, 12, 0, tzinfo=dt.UTC)  # fixed: a reused database matches
        self.start = now - dt.timedelta(days=7)
        self.ws_ids = [self._uuid() for _ in range(args.workspaces)]
        self.workspaces = [{"id": w, "name": f"ws-{i:03d}", "root_path": f"/srv/ws-{i:03d}", "settings": {},
                            "created_at": self.start} for i, w in enumerate(self.ws_ids)]
        self.threads: list[dict[str, Any]] = []
        self.workers: list[dict[str, Any]] = []
        for i in range(args.threads):
            ws = self.ws_ids[i % len(self.ws_ids)]
            wid = self._uuid()
            tid = f"thr-{self._uuid()}"
            status = rnd.choice(["idle", "running", "completed", "failed", "waiting_input", "stalled"])
            last = self.start + dt.timedelta(seconds=rnd.uniform(0, 7 * 86400))
            self.workers.append({"id": wid, "workspace_id": ws, "status": rnd.choice(["IDLE", "RUNNING", "FAILED"]),
                                 "kind": "codex", "name": f"w{i}", "config": {}, "metadata": {},
                                 "thread_id": tid, "last_event_at": last, "tokens_used": rnd.randint(0, 10**6),
                                 "restart_count": 0, "created_at": self.start, "updated_at": last})
            self.threads.append({
                "thread_id": tid, "workspace_id": ws, "worker_id": wid, "agent_kind": "codex", "status": status,
                "current_task": f"Task {i}: fix the flaky test in module {i % 37} and make the build green",
                "last_activity_at": last, "next_step": "running: pytest -q" if status == "running" else None,
                "blockers": [], "active_turn_id": f"turn-{i}" if status == "running" else None,
                "last_message": "Done: all tests pass. " * 5, "turn_count": rnd.randint(1, 50), "job_id": None,
                "last_event_id": 0})
        self.approvals: list[dict[str, Any]] = []
        for i in range(args.approvals * 2):
            th = rnd.choice(self.threads)
            self.approvals.append({
                "id": self._uuid(), "workspace_id": th["workspace_id"], "worker_id": th["worker_id"],
                "thread_id": th["thread_id"], "turn_id": f"turn-a{i}", "request_id": str(i), "kind": "command",
                "command": f"echo {i} > out.txt", "cwd": "/srv", "diff": None, "reason": None, "tool_name": None,
                "tool_input": None, "status": "pending" if i < args.approvals else "accepted",
                "decided_by": None if i < args.approvals else "tester",
                "decided_at": None if i < args.approvals else now,
                "created_at": self.start + dt.timedelta(seconds=rnd.uniform(0, 7 * 86400))})
        self.questions: list[dict[str, Any]] = []
        for i in range(args.approvals // 4):
            th = rnd.choice(self.threads)
            self.questions.append({
                "id": self._uuid(), "workspace_id": th["workspace_id"], "worker_id": th["worker_id"],
                "thread_id": th["thread_id"], "turn_id": f"turn-q{i}", "request_id": f"q{i}",
                "questions": [{"id": "color", "question": "Which color?", "options": [{"label": "Red"}]}],
                "status": "open", "answers": None, "answered_by": None, "answered_at": None,
                "created_at": self.start + dt.timedelta(seconds=rnd.uniform(0, 7 * 86400))})
        self.signals: list[dict[str, Any]] = []
        kinds, weights = zip(*[(k, 1) for k, _ in SIGNAL_KINDS], strict=True)
        sev = dict(SIGNAL_KINDS)
        for i in range(args.signals):
            th = self.threads[i % len(self.threads)]
            kind = rnd.choices(kinds, weights)[0]
            raised = self.start + dt.timedelta(seconds=rnd.uniform(0, 7 * 86400))
            acked = rnd.random() < 0.6
            self.signals.append({
                "id": f"{kind}:{th['thread_id']}:{i}", "workspace_id": th["workspace_id"], "kind": kind,
                "title": f"{kind}: task {i}", "context": {"turn_id": f"turn-{i}", "task": th["current_task"]},
                "thread_id": th["thread_id"], "worker_id": str(th["worker_id"]), "job_id": None,
                "is_open": not acked, "raised_at": raised, "first_raised_at": raised, "raise_count": 1,
                "acked_at": now if acked else None, "acked_by": "tester" if acked else None,
                "severity": sev[kind], "last_event_id": 0})
        self.ops_ws = [{"workspace_id": w, "health": "healthy", "current_task": "a task", "last_activity_at": now,
                        "next_step": None, "blockers": [], "active_thread_id": None, "last_event_id": 0}
                       for w in self.ws_ids]
        self.n_events = args.events

    def _uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rnd.getrandbits(128), version=4)

    def events(self) -> list[tuple[Any, ...]]:
        """(workspace_id, event_type, entity_type, entity_id, payload_json, created_at) in id order."""
        rnd = self.rnd
        special: dict[int, tuple[Any, ...]] = {}
        for a in self.approvals:
            special[rnd.randrange(self.n_events)] = (
                a["workspace_id"], "approval.requested", "worker", str(a["worker_id"]),
                json.dumps({"approval_id": str(a["id"]), "request_id": a["request_id"], "command": a["command"],
                            "thread_id": a["thread_id"], "turn_id": a["turn_id"], "agent_kind": "codex"}))
        for q in self.questions:
            special[rnd.randrange(self.n_events)] = (
                q["workspace_id"], "question.requested", "worker", str(q["worker_id"]),
                json.dumps({"question_id": str(q["id"]), "request_id": q["request_id"], "questions": q["questions"],
                            "thread_id": q["thread_id"], "turn_id": q["turn_id"], "agent_kind": "codex"}))
        types, weights = zip(*[((t, e), w) for t, e, w in EVENT_MIX], strict=True)
        step = 7 * 86400 / self.n_events
        out: list[tuple[Any, ...]] = []
        picks = rnd.choices(types, weights, k=self.n_events)
        for i in range(self.n_events):
            ts = self.start + dt.timedelta(seconds=i * step)
            if i in special:
                out.append((*special[i], ts))
                continue
            th = self.threads[rnd.randrange(len(self.threads))]
            et, ent = picks[i]
            payload = {"thread_id": th["thread_id"], "turn_id": f"turn-{i // 300}", "agent_kind": "codex"}
            if et == "message.delta":
                payload.update(item_id=f"msg_{i // 40}", delta="some streamed words ")
            elif et.startswith("item."):
                payload.update(item_id=f"it_{i}", item_type="command", command="pytest -q")
            out.append((th["workspace_id"], et, ent, str(th["worker_id"]), json.dumps(payload), ts))
        return out


async def build(url: str, data: Dataset) -> float:
    t0 = time.perf_counter()
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(Workspace.__table__), data.workspaces)
            await conn.execute(insert(Worker.__table__), data.workers)
            await conn.execute(insert(OpsWorkspace.__table__), data.ops_ws)
            await conn.execute(insert(OpsThread.__table__), data.threads)
            await conn.execute(insert(Signal.__table__), data.signals)
            await conn.execute(insert(PendingApproval.__table__), data.approvals)
            if data.questions:
                await conn.execute(insert(OpenQuestion.__table__), data.questions)
        rows = data.events()
        if engine.dialect.name == "sqlite":
            conn = sqlite3.connect(C.sqlite_path(url), isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO events (workspace_id, event_type, entity_type, entity_id, payload, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                ((r[0].hex, r[1], r[2], r[3], r[4], _fmt(r[5])) for r in rows))
            conn.execute("COMMIT")
            conn.execute("ANALYZE")
            conn.close()
        else:
            import asyncpg

            pg = await asyncpg.connect(C.raw_pg_dsn(url))
            try:
                await pg.copy_records_to_table(
                    "events", records=rows,
                    columns=["workspace_id", "event_type", "entity_type", "entity_id", "payload", "created_at"])
                await pg.execute("ANALYZE")
            finally:
                await pg.close()
        async with engine.begin() as conn:
            await conn.execute(insert(OpsCheckpoint.__table__), [{"id": 1, "last_event_id": len(rows)}])
    finally:
        await engine.dispose()
    return time.perf_counter() - t0


async def _explained(url: str, one_ws: uuid.UUID, run: Any, keep: Any) -> list[tuple[str, str, list[str]]]:
    """``(token label, statement, plan lines)`` for every statement ``run(session, principal)`` sends that
    ``keep(statement)`` selects, EXPLAINed with the parameters it was sent with, for both tokens."""
    from sqlalchemy import event as sa_event
    from sqlalchemy.ext.asyncio import AsyncSession

    captured: list[tuple[str, Any]] = []
    engine = make_engine(url)
    out: list[tuple[str, str, list[str]]] = []
    try:
        @sa_event.listens_for(engine.sync_engine, "before_cursor_execute")
        def grab(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
            if keep(statement):
                captured.append((statement, params))

        for label, principal in (("admin", _principal(None)), ("one-ws", _principal(one_ws))):
            captured.clear()
            async with AsyncSession(engine) as s:
                await run(s, principal)
            for stmt, params in list(captured):
                async with engine.connect() as conn:
                    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
                    rows = (await conn.exec_driver_sql(prefix + stmt, params)).all()
                lines = [str(r[-1]).strip() for r in rows]
                if engine.dialect.name != "sqlite":
                    lines = [re.sub(r"\s*\(cost=[^)]*\)", "", ln.lstrip("-> ")) for ln in lines
                             if re.search(r"Scan|Bitmap|Sort|Aggregate|Join|Limit|SubPlan|InitPlan|WindowAgg|Append", ln)]
                out.append((label, stmt, lines))
    finally:
        await engine.dispose()
    return out


def _short(plan: str) -> str:
    plan = re.sub(r"\{[0-9a-f,-]{80,}\}", lambda m: f"{{<{m.group(0).count(',') + 1} ids>}}", plan)
    return re.sub(r"(\?, ){8,}\?", "?, ...", plan)


async def plans(url: str, one_ws: uuid.UUID) -> list[str]:
    """Query plans of the feed queries, compiled from the real ``read.feed`` statements."""
    out = []
    for needs in (False, True):
        async def run(s: Any, principal: Principal, needs: bool = needs) -> None:
            await read.feed(s, principal=principal, limit=100, needs_input=needs)

        for label, _stmt, lines in await _explained(
                url, one_ws, run, lambda st: "FROM events" in st and "ORDER BY events.id DESC" in st):
            out.append(f"feed({label}, needs_input={needs}): {_short(' | '.join(lines))}")
    return out


async def snapshot_plans(url: str, one_ws: uuid.UUID) -> list[str]:
    """Query plans of every statement ``read.snapshot`` runs (captured as sent, EXPLAINed with the same
    parameters), for the admin and the one-workspace token. PostgreSQL plans are shortened to their nodes."""
    async def run(s: Any, principal: Principal) -> None:
        await read.snapshot(s, principal=principal)

    out = []
    for label, stmt, lines in await _explained(url, one_ws, run, lambda st: st.lstrip().upper().startswith("SELECT")):
        tables = "+".join(sorted(set(re.findall(r"FROM (\w+)", stmt))))
        out.append(f"snapshot({label}) {tables}: {_short(' | '.join(lines))}")
    return out


def _principal(ws: uuid.UUID | None) -> Principal:
    if ws is None:
        return Principal("bench-admin", frozenset({"admin"}), None)
    return Principal("bench-one", frozenset({"supervisor:read"}), frozenset({ws}))


async def measure(url: str, data: Dataset, args: argparse.Namespace) -> list[tuple[str, float, float, int]]:
    tmp = Path(tempfile.mkdtemp(prefix="overseer-bench-snap-"))
    settings = Settings(database_url=url, data_dir=tmp, jwt_secret=C.JWT_KEY)  # type: ignore[arg-type]
    app = create_app(settings, migrate_on_start=False, start_runtime=False)
    one_ws = data.ws_ids[0]
    tokens = {
        "admin": create_token(C.JWT_KEY, subject="bench-admin", scopes=["admin"], workspace_ids=["*"]),
        "one-ws": create_token(C.JWT_KEY, subject="bench-one", scopes=["supervisor:read"], workspace_ids=[one_ws]),
    }
    results: list[tuple[str, float, float, int]] = []

    async def timed(label: str, fn: Any) -> None:
        for _ in range(args.warmup):
            await fn()
        samples = []
        size = 0
        for _ in range(args.requests):
            t0 = time.perf_counter()
            size = await fn()
            samples.append((time.perf_counter() - t0) * 1000)
        results.append((label, C.percentile(samples, 50), C.percentile(samples, 99), size))
        print(f"  {label:<48} p50 {results[-1][1]:8.2f} ms  p99 {results[-1][2]:8.2f} ms  ({size:,} bytes)",
              flush=True)

    async with LifespanManager(app) as mgr, httpx.AsyncClient(
            transport=httpx.ASGITransport(app=mgr.app), base_url="http://bench", timeout=60) as client:
        db = app.state.db
        for who in ("admin", "one-ws"):
            principal = _principal(None if who == "admin" else one_ws)

            async def direct(principal: Principal = principal) -> int:
                async with db.read_session() as s:
                    snap = await read.snapshot(s, principal=principal)
                return len(snap["workspaces"])  # size: workspaces seen

            async def http(path: str, who: str = who) -> int:
                resp = await client.get(path, headers={"Authorization": f"Bearer {tokens[who]}"})
                resp.raise_for_status()
                return len(resp.content)

            async with db.read_session() as s:
                snap = await read.snapshot(s, principal=principal)
            listed = {k: len(snap[k]) for k in ("signals", "pending_approvals", "open_questions", "workers", "jobs")}
            print(f"  {who} snapshot lists: {len(snap['workspaces'])} workspaces, "
                  f"{sum(len(w['threads']) for w in snap['workspaces'])} threads, "
                  + ", ".join(f"{n} {k}" for k, n in listed.items()) + f"; counts {snap['counts'] | {'unacked_by_workspace': '...'}}",
                  flush=True)
            await timed(f"snapshot direct (read.snapshot), {who} [size=workspaces]", direct)
            await timed(f"GET /api/v1/ops/snapshot, {who}", lambda http=http: http("/api/v1/ops/snapshot"))
            await timed(f"GET /api/v1/ops/feed?limit=100, {who}", lambda http=http: http("/api/v1/ops/feed?limit=100"))
            await timed(f"GET /api/v1/ops/feed?needs_input=true, {who}",
                        lambda http=http: http("/api/v1/ops/feed?needs_input=true"))
    shutil.rmtree(tmp, ignore_errors=True)
    return results


async def _kept_pg_database(name: str) -> tuple[str, bool]:
    """The URL of database ``name`` on the PostgreSQL server of OVERSEER_TEST_PG_URL, created and migrated
    when it does not exist yet (then True: it needs building). A database left half-built by an
    interrupted run is not detected: drop it (``DROP DATABASE``) to rebuild."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from overseer.db import migrate as mig

    base = C.pg_url()
    if not base:
        raise RuntimeError("OVERSEER_TEST_PG_URL is not set (source /tmp/pgdev.env)")
    engine = make_engine(base)
    try:
        async with engine.connect() as conn:
            exists = (await conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})).first()
    finally:
        await engine.dispose()
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    if exists:
        return url, False
    await C._pg_admin(f'CREATE DATABASE "{name}"')
    engine = make_engine(url)
    try:
        await mig.upgrade(engine)
    finally:
        await engine.dispose()
    return url, True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--workspaces", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1000)
    ap.add_argument("--signals", type=int, default=2000)
    ap.add_argument("--approvals", type=int, default=200, help="pending approvals (as many decided ones too)")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--runs", type=int, default=1, help="repeat the measurements on the same database")
    ap.add_argument("--pg", action=argparse.BooleanOptionalAction, default=bool(C.pg_url()))
    ap.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    ap.add_argument("--reuse-sqlite", type=Path, default=None,
                    help="keep the built SQLite database at this path and reuse it when it exists (same args)")
    ap.add_argument("--reuse-pg", default=None, metavar="NAME",
                    help="keep the built PostgreSQL database NAME (on OVERSEER_TEST_PG_URL's server) and reuse it "
                         "when it exists (same args)")
    args = ap.parse_args(argv)
    data = Dataset(args)
    C.header("read-side latency (benchmarks/snapshot_latency.py)", {
        "data": f"{args.workspaces} workspaces, {args.threads} threads+workers, {args.signals} signals "
                f"(~60% acked), {args.approvals} pending + {args.approvals} decided approvals, "
                f"{len(data.questions)} open questions, {args.events:,} events",
        "measure": f"{args.requests} requests per line after {args.warmup} warm-up; nearest-rank p50/p99; "
                   f"loop {args.loop}; httpx ASGITransport (no network)",
    })
    for backend in C.backends(args.pg):
        async def go(backend: str = backend) -> None:
            async def body(url: str, fresh: bool) -> None:
                if fresh:
                    secs = await build(url, data)
                    print(f"{backend}: built in {secs:.1f} s (setup, not measured)")
                else:
                    print(f"{backend}: reusing {url}")
                for line in [*await snapshot_plans(url, data.ws_ids[0]), *await plans(url, data.ws_ids[0])]:
                    print(f"  plan {line}")
                for r in range(args.runs):
                    if args.runs > 1:
                        print(f" run {r + 1}")
                    await measure(url, data, args)

            if backend == "sqlite" and args.reuse_sqlite:
                fresh = not args.reuse_sqlite.exists()
                url = f"sqlite+aiosqlite:///{args.reuse_sqlite.resolve()}"
                if fresh:
                    from overseer.db import migrate as mig

                    engine = make_engine(url)
                    await mig.upgrade(engine)
                    await engine.dispose()
                await body(url, fresh)
                return
            if backend == "pg" and args.reuse_pg:
                url, fresh = await _kept_pg_database(args.reuse_pg)
                await body(url, fresh)
                return
            async with C.bench_database(backend) as url:
                await body(url, True)

        C.run(go, args.loop)
    print(f"# load after: {C.uptime()}")
    print("(target: snapshot p99 < 50 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
