"""Ingest throughput: recorded Codex lines -> normalize -> log -> reduce -> publish, vs a raw-driver floor.

The REAL code path, minus only the child process:

* ``runtime.rpc.JsonRpcConnection.feed_line`` (framing and classification) attached to a stub
  process, its dispatcher task, ``CodexSession._on_notification`` / ``_on_request`` (normalization
  into :class:`AgentEvent`), the sink ``WorkerManager.launch`` gives adapters (``queue.put_nowait``),
* ``WorkerManager``'s ingest loop (``_ingest_loop`` -> ``_apply_batch`` -> ``_apply`` per event, up
  to ``batch_max`` events per transaction, worker rows updated, approvals recorded and expired),
* ``Database.session`` commit: ``events.log.flush_deferred`` bulk insert, ``OpsPipeline.on_commit``
  (pure reducer + upsert of dirty projection rows), then ``EventBus.publish_many`` to one subscriber
  (drained by a task, as an SSE client would be).

The recorded stream (``benchmarks/data/codex_stream.jsonl``, see ``record_codex_stream.py``) is
multiplied to ``--events`` agent events, each copy with fresh thread and turn ids (so the reducer
sees many threads), spread round-robin over ``--workers`` workers (each in its own workspace), each
with its own ``CodexSession`` + connection. The lines are prepared before the clock starts; the
clock stops when the last event has been committed and received by the subscriber.

BASELINE: the same lines, ``json.loads`` + ``json.dumps(params)`` and an insert into an
``events``-shaped table (same columns and indexes) with the raw driver, one transaction per batch of
``--batch`` rows (``sqlite3`` executemany; ``asyncpg`` executemany on PostgreSQL).

    .venv/bin/python benchmarks/pipeline.py [--events 50000] [--runs 3] [--pg/--no-pg]
        [--batch 500] [--workers 4] [--loop uvloop|asyncio] [--profile cprofile] [--gc server|default]

The process's garbage collector is set as ``overseer serve`` sets it (``overseer.gctune``) unless
``--gc default``: both the Overseer runs and the baseline run under it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import datetime as dt
import io
import json
import logging
import os
import pstats
import re
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C
from sqlalchemy import func, select

from overseer.clock import SystemClock
from overseer.config import Settings
from overseer.db.engine import Database, make_engine
from overseer.events.bus import EventBus
from overseer.events.models import REQUEST_EVENTS_SQL, Event
from overseer.ops.pipeline import OpsPipeline
from overseer.runtime.agent import AgentConfig, AgentEvent
from overseer.runtime.codex.adapter import CodexSession
from overseer.runtime.process import ProcessExit
from overseer.runtime.rpc import JsonRpcConnection
from overseer.runtime.workers import WorkerManager
from overseer.workers.models import Worker, WorkerStatus
from overseer.workspaces.models import Workspace

STREAM = C.DATA / "codex_stream.jsonl"
UUIDISH = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


# ------------------------------------------------------------------------------------------ stream


def load_stream(path: Path) -> tuple[list[str], set[str]]:
    """The replayable lines (responses to our own requests dropped) and the ids to rewrite per copy."""
    lines: list[str] = []
    ids: set[str] = set()
    for raw in path.read_text().splitlines():
        if not raw.strip():
            continue
        msg = json.loads(raw)
        if "method" not in msg:  # a response to a request the recorder sent: nothing to normalize
            continue
        lines.append(raw)
        params = msg.get("params") or {}
        for key in ("threadId", "turnId"):
            if isinstance(params.get(key), str):
                ids.add(params[key])
        for key in ("thread", "turn"):
            obj = params.get(key)
            if isinstance(obj, dict) and isinstance(obj.get("id"), str):
                ids.add(obj["id"])
    return lines, ids


def copy_lines(lines: list[str], ids: set[str], n: int) -> list[str]:
    """Copy ``n`` of the stream with every thread/turn id replaced by a fresh one of the same shape."""
    mapping = {old: (str(uuid.uuid4()) if UUIDISH.match(old) else f"{old}-{n}") for old in ids}
    pattern = re.compile("|".join(re.escape(k) for k in sorted(ids, key=len, reverse=True)))
    return [pattern.sub(lambda m: mapping[m.group(0)], line) for line in lines]


class _StubProcess:
    """What ``JsonRpcConnection.attach`` needs from an AgentProcess (no child: lines are fed directly)."""

    def __init__(self) -> None:
        self.exit_future: asyncio.Future[ProcessExit] = asyncio.get_running_loop().create_future()
        self.pid = None

    def stderr_tail(self, lines: int = 20) -> str:
        return ""

    async def write_line(self, line: str) -> None:  # answers to server requests would go here
        return None


def count_events_per_copy(lines: list[str]) -> int:
    """How many AgentEvents one copy of the stream normalizes into (runs the real adapter once)."""

    async def go() -> int:
        got: list[AgentEvent] = []

        async def sink(ev: AgentEvent) -> None:
            got.append(ev)

        session = CodexSession(AgentConfig(kind="codex", binary="codex", cwd="/tmp", home="/tmp"), sink)
        for line in lines:
            msg = json.loads(line)
            if "id" in msg and msg.get("id") is not None:
                await session._on_request(msg["id"], msg["method"], msg.get("params") or {})
            else:
                await session._on_notification(msg["method"], msg.get("params") or {})
        return len(got)

    return asyncio.run(go())


# ------------------------------------------------------------------------------------------ overseer


@dataclass
class Result:
    seconds: float
    agent_events: int
    log_rows: int
    lines: int
    published: int
    batches: int
    main_cpu: float = 0.0
    """CPU seconds of the event-loop thread (``time.thread_time``) during the run."""
    process_cpu: float = 0.0
    """CPU seconds of the whole process (all threads, incl. the database driver's)."""


async def overseer_run(url: str, copies: list[list[str]], *, workers: int, batch: int, chunk: int,
                       profile: cProfile.Profile | None, phases: bool = False, probe: bool = False,
                       probe_writes: bool = False) -> Result:
    tmp = tempfile.mkdtemp(prefix="overseer-bench-data-")
    settings = Settings(database_url=url, data_dir=Path(tmp), jwt_secret=C.JWT_KEY)  # type: ignore[arg-type]
    # the database as the app's lifespan opens it (incl. the background WAL checkpointer on SQLite)
    engine = make_engine(url, background_checkpoint=settings.sqlite_checkpoint_interval_s > 0)
    db = Database(engine, EventBus())
    await db.start_checkpointer(settings.sqlite_checkpoint_interval_s)
    OpsPipeline(db).install()
    manager = WorkerManager(db=db, settings=settings, clock=SystemClock(), batch_max=batch)
    gate = asyncio.Event()
    if phases:  # hold the ingest loop until every line is normalized and queued: two separate phases
        ingest_loop = manager._ingest_loop

        async def gated() -> None:
            await gate.wait()
            await ingest_loop()

        manager._ingest_loop = gated  # type: ignore[method-assign]
    else:
        gate.set()
    await manager.start()
    worker_ids: list[uuid.UUID] = []
    async with db.session() as s:
        for i in range(workers):
            ws = Workspace(id=uuid.uuid4(), name=f"bench-{i}", root_path=f"/tmp/bench-{i}")
            s.add(ws)
            await s.flush()
            w = Worker(id=uuid.uuid4(), workspace_id=ws.id, kind="codex", name=f"w{i}",
                       status=WorkerStatus.RUNNING.value, config={})
            s.add(w)
            worker_ids.append(w.id)
    async with db.read_session() as s:
        before = (await s.execute(select(func.count()).select_from(Event))).scalar_one()

    received = 0
    sub = db.bus.subscribe(maxsize=10_000_000)

    async def drain() -> None:  # as the SSE stream reads: wait for one, then take what is queued
        nonlocal received
        queue = sub.queue
        while True:
            await sub.get()
            received += 1
            while not queue.empty():
                queue.get_nowait()
                received += 1

    drainer = asyncio.create_task(drain())
    read_ms: list[float] = []

    async def probe_reads() -> None:  # an API-like small read every 5 ms, through Database.read_session()
        stmt = select(func.count()).select_from(Worker)
        while True:
            t = time.perf_counter()
            async with db.read_session() as s:
                await s.execute(stmt)
            read_ms.append((time.perf_counter() - t) * 1000)
            await asyncio.sleep(0.005)

    write_ms: list[float] = []

    async def write_probe() -> None:  # a person's small write every 20 ms (e.g. deciding an approval)
        wid = worker_ids[0]
        n = 0
        while True:
            t = time.perf_counter()
            async with db.session() as s:  # the normal session: lock the row, change it, commit
                w = (await s.execute(select(Worker).where(Worker.id == wid).with_for_update())).scalar_one()
                n += 1
                w.name = f"w0-{n}"
            write_ms.append((time.perf_counter() - t) * 1000)
            await asyncio.sleep(0.02)

    prober = asyncio.create_task(probe_reads()) if probe else None
    write_prober = asyncio.create_task(write_probe()) if probe_writes else None

    # One adapter + connection per worker, wired exactly as CodexSession.start() wires them.
    conns: list[JsonRpcConnection] = []
    for wid in worker_ids:
        def make_sink(worker_id: uuid.UUID) -> Any:
            def sink(ev: AgentEvent) -> None:  # == the sink WorkerManager.launch gives adapters
                manager._queue.put_nowait((worker_id, ev))
            return sink

        session = CodexSession(AgentConfig(kind="codex", binary="codex", cwd=tmp, home=tmp), make_sink(wid))
        rpc = JsonRpcConnection(on_notification=session._on_notification,
                                on_request=session._on_request, on_malformed=session._on_malformed,
                                on_closed=session._on_closed, name="codex")
        rpc.attach(_StubProcess())  # type: ignore[arg-type]
        conns.append(rpc)

    stats0 = (manager.stats.events, manager.stats.batches)
    n_lines = sum(len(c) for c in copies)
    if profile:
        profile.enable()
    t0 = time.perf_counter()
    c0, p0 = time.thread_time(), time.process_time()
    fed = 0
    for i, copy in enumerate(copies):
        rpc = conns[i % len(conns)]
        for line in copy:
            await rpc.feed_line(line)
            fed += 1
            if fed % chunk == 0:  # a pipe read delivers a chunk of lines, then the reader awaits again
                await asyncio.sleep(0)
    # wait until the adapters dispatched everything and the ingest loop committed it
    while any(not c._queue.empty() for c in conns):  # noqa: ASYNC110
        await asyncio.sleep(0.001)
    await asyncio.sleep(0)
    if phases:
        t_produced, c_produced = time.perf_counter() - t0, time.thread_time() - c0
        gate.set()
    await manager._queue.join()
    async with db.read_session() as s:
        after = (await s.execute(select(func.count()).select_from(Event))).scalar_one()
    log_rows = after - before
    while received < log_rows:  # noqa: ASYNC110
        await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - t0
    main_cpu, process_cpu = time.thread_time() - c0, time.process_time() - p0
    if phases:
        print(f"    phases: read+normalize+queue {t_produced:.2f} s wall / {c_produced:.2f} s CPU "
              f"({c_produced / max(n_lines, 1) * 1e6:.1f} us/line); ingest (log+reduce+commit+publish) "
              f"{elapsed - t_produced:.2f} s wall / {main_cpu - c_produced:.2f} s loop CPU "
              f"({(main_cpu - c_produced) / max(log_rows, 1) * 1e6:.1f} us/event)", flush=True)
    if profile:
        profile.disable()
    agent_events = manager.stats.events - stats0[0]
    batches = manager.stats.batches - stats0[1]
    drainer.cancel()
    if prober is not None:
        prober.cancel()
        q = sorted(read_ms)
        print(f"    probe reads during the run: n={len(q)}, p50 {q[len(q) // 2]:.1f} ms, p99 "
              f"{q[min(len(q) - 1, int(len(q) * 0.99))]:.1f} ms, max {q[-1]:.1f} ms", flush=True)
    if write_prober is not None:
        write_prober.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await write_prober
        q = sorted(write_ms) or [float("nan")]
        print(f"    probe writes during the run: n={len(write_ms)}, p50 {q[len(q) // 2]:.1f} ms, p99 "
              f"{q[min(len(q) - 1, int(len(q) * 0.99))]:.1f} ms, max {q[-1]:.1f} ms", flush=True)
    for c in conns:
        await c.close()
    await manager.stop()
    await db.dispose()
    shutil.rmtree(tmp, ignore_errors=True)
    return Result(elapsed, agent_events, log_rows, n_lines, received, batches, main_cpu, process_cpu)


# ------------------------------------------------------------------------------------------ baseline


BASELINE_SQLITE_DDL = [
    "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, workspace_id CHAR(32) NOT NULL,"
    " event_type VARCHAR(100) NOT NULL, entity_type VARCHAR(50) NOT NULL, entity_id VARCHAR(64) NOT NULL,"
    " payload JSON NOT NULL, created_at DATETIME NOT NULL)",
    "CREATE INDEX ix_events_workspace_id_id ON events (workspace_id, id)",
    "CREATE INDEX ix_events_entity ON events (entity_type, entity_id, id)",
    f"CREATE INDEX ix_events_request_type_id ON events (event_type, id) WHERE {REQUEST_EVENTS_SQL}",
    f"CREATE INDEX ix_events_workspace_id_request_type_id ON events (workspace_id, event_type, id)"
    f" WHERE {REQUEST_EVENTS_SQL}",
]
BASELINE_PG_DDL = [
    "CREATE TABLE bench_events (id BIGSERIAL PRIMARY KEY, workspace_id UUID NOT NULL,"
    " event_type VARCHAR(100) NOT NULL, entity_type VARCHAR(50) NOT NULL, entity_id VARCHAR(64) NOT NULL,"
    " payload JSONB NOT NULL, created_at TIMESTAMPTZ NOT NULL)",
    "CREATE INDEX ix_bench_events_workspace_id_id ON bench_events (workspace_id, id)",
    "CREATE INDEX ix_bench_events_entity ON bench_events (entity_type, entity_id, id)",
    f"CREATE INDEX ix_bench_events_request_type_id ON bench_events (event_type, id) WHERE {REQUEST_EVENTS_SQL}",
    f"CREATE INDEX ix_bench_events_workspace_id_request_type_id ON bench_events (workspace_id, event_type, id)"
    f" WHERE {REQUEST_EVENTS_SQL}",
]


def _rows(lines: list[str], ws: uuid.UUID, entity: str, *, text_ts: bool) -> list[tuple[Any, ...]]:
    now = dt.datetime.now(dt.UTC)
    ts: Any = now.replace(tzinfo=None).isoformat(sep=" ") if text_ts else now
    out = []
    for line in lines:
        msg = json.loads(line)
        out.append((ws.hex if text_ts else ws, msg.get("method") or "", "worker", entity,
                    json.dumps(msg.get("params") or {}), ts))
    return out


def baseline_sqlite(path: str, copies: list[list[str]], batch: int) -> Result:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    for ddl in BASELINE_SQLITE_DDL:
        conn.execute(ddl)
    ws, entity = uuid.uuid4(), str(uuid.uuid4())
    lines = [line for c in copies for line in c]
    sql = ("INSERT INTO events (workspace_id, event_type, entity_type, entity_id, payload, created_at)"
           " VALUES (?, ?, ?, ?, ?, ?)")
    t0 = time.perf_counter()
    for i in range(0, len(lines), batch):
        rows = _rows(lines[i:i + batch], ws, entity, text_ts=True)
        conn.execute("BEGIN")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    n = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    conn.close()
    return Result(elapsed, n, n, len(lines), 0, (len(lines) + batch - 1) // batch)


async def baseline_pg(url: str, copies: list[list[str]], batch: int) -> Result:
    import asyncpg

    conn = await asyncpg.connect(C.raw_pg_dsn(url))
    try:
        for ddl in BASELINE_PG_DDL:
            await conn.execute(ddl)
        ws, entity = uuid.uuid4(), str(uuid.uuid4())
        lines = [line for c in copies for line in c]
        sql = ("INSERT INTO bench_events (workspace_id, event_type, entity_type, entity_id, payload, created_at)"
               " VALUES ($1, $2, $3, $4, $5::jsonb, $6)")
        t0 = time.perf_counter()
        for i in range(0, len(lines), batch):
            rows = _rows(lines[i:i + batch], ws, entity, text_ts=False)
            async with conn.transaction():
                await conn.executemany(sql, rows)
        elapsed = time.perf_counter() - t0
        n = await conn.fetchval("SELECT count(*) FROM bench_events")
    finally:
        await conn.close()
    return Result(elapsed, n, n, len(lines), 0, (len(lines) + batch - 1) // batch)


# ------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=50_000, help="agent events to replay (stream multiplied)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pg", action=argparse.BooleanOptionalAction, default=bool(C.pg_url()),
                    help="also run on PostgreSQL (default: when OVERSEER_TEST_PG_URL is set)")
    ap.add_argument("--batch", type=int, default=500, help="WorkerManager batch_max and baseline batch size")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--chunk", type=int, default=64, help="lines fed between yields to the event loop")
    ap.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    ap.add_argument("--phases", action="store_true", help="run normalization, then ingest, one after the other, "
                    "and print the cost of each (the events/s figure is then of the sequential run)")
    ap.add_argument("--probe-reads", action="store_true",
                    help="during each run, time a small read through Database.read_session() every 5 ms, "
                         "as an API request would make, and print its p50/p99/max (the readers' latency under a burst)")
    ap.add_argument("--probe-writes", action="store_true",
                    help="during each run, time a small write through Database.session() (lock a worker row, "
                         "change it, commit; what a person's approval decision does) every 20 ms, and print "
                         "its p50/p99/max (a writer's latency under a burst)")
    ap.add_argument("--gc", choices=["server", "default"], default="server",
                    help="the garbage collector as `overseer serve` sets it (overseer.gctune: start-up heap frozen, "
                         "thresholds raised; OVERSEER_GC_TUNING) or CPython's defaults")
    ap.add_argument("--stream", type=Path, default=STREAM)
    ap.add_argument("--profile", choices=["none", "cprofile"], default="none",
                    help="cProfile the Overseer path of the first SQLite run; prints the top functions")
    ap.add_argument("--log-info", action="store_true",
                    help="configure overseer logging at INFO to /dev/null (as `overseer serve` does)")
    args = ap.parse_args(argv)
    if args.log_info:
        from overseer.logging import configure_logging

        configure_logging("info")
        logging.getLogger().handlers[0].stream = open(os.devnull, "w")  # type: ignore[attr-defined]
    else:
        logging.basicConfig(level=logging.WARNING)

    lines, ids = load_stream(args.stream)
    per_copy = count_events_per_copy(lines)
    n_copies = max(1, -(-args.events // per_copy))
    copies = [copy_lines(lines, ids, k) for k in range(n_copies)]
    C.header("ingest pipeline throughput (benchmarks/pipeline.py)", {
        "stream": f"{args.stream.relative_to(C.REPO) if args.stream.is_relative_to(C.REPO) else args.stream} "
                  f"({len(lines)} replayable lines -> {per_copy} agent events per copy, {len(ids)} ids rewritten)",
        "replay": f"{n_copies} copies = {n_copies * len(lines):,} lines, ~{n_copies * per_copy:,} agent events, "
                  f"{args.workers} workers/workspaces, batch_max={args.batch}, chunk={args.chunk} lines/yield",
        "loop": args.loop, "runs": args.runs, "logging": "INFO to /dev/null" if args.log_info else "WARNING",
        "gc": "as `overseer serve` (overseer.gctune)" if args.gc == "server" else "CPython's defaults",
    })
    if args.gc == "server":  # as `overseer serve` does once its app is built, before any load
        from overseer.gctune import tune_for_server

        tune_for_server()
    table: list[tuple[str, ...]] = []
    for backend in C.backends(args.pg):
        ov: list[Result] = []
        base: list[Result] = []
        for r in range(args.runs):
            prof = cProfile.Profile() if args.profile == "cprofile" and backend == "sqlite" and r == 0 else None

            async def one_run(prof: cProfile.Profile | None = prof, backend: str = backend) -> tuple[Result, Result]:
                async with C.bench_database(backend) as url:
                    o = await overseer_run(url, copies, workers=args.workers, batch=args.batch, phases=args.phases,
                                           chunk=args.chunk, profile=prof, probe=args.probe_reads,
                                           probe_writes=args.probe_writes)
                async with C.bench_database(backend, migrate=False) as url:
                    if backend == "sqlite":
                        b = baseline_sqlite(C.sqlite_path(url), copies, args.batch)
                    else:
                        b = await baseline_pg(url, copies, args.batch)
                return o, b

            probe = C.cpu_probe()
            o, b = C.run(one_run, args.loop)
            probe = (probe + C.cpu_probe()) / 2
            if prof is None:
                ov.append(o)
                base.append(b)
            print(f"  {backend} run {r + 1}{' (profiled, not counted)' if prof else ''}: overseer "
                  f"{o.log_rows / o.seconds:,.0f} events/s ({o.log_rows:,} log rows, {o.agent_events:,} agent "
                  f"events, {o.batches} batches, {o.published:,} published, {o.seconds:.2f} s, CPU {o.main_cpu:.2f} s loop thread / "
                  f"{o.process_cpu:.2f} s process); baseline "
                  f"{b.log_rows / b.seconds:,.0f} rows/s ({b.seconds:.2f} s); CPU probe {probe:.0f} ms",
                  flush=True)
            if prof is not None:
                s = io.StringIO()
                pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(30)
                print(s.getvalue())
                s = io.StringIO()
                pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(45)
                print(s.getvalue())
        if not ov:
            continue
        o_eps = C.median([x.log_rows / x.seconds for x in ov])
        o_lps = C.median([x.lines / x.seconds for x in ov])
        b_eps = C.median([x.log_rows / x.seconds for x in base])
        b_lps = C.median([x.lines / x.seconds for x in base])
        table.append((backend, f"{o_eps:,.0f}", f"{o_lps:,.0f}", f"{b_eps:,.0f}", f"{o_eps / b_eps:.2f}",
                      f"{o_lps / b_lps:.2f}"))
    print(f"# load after: {C.uptime()}")
    hdr = ("backend", "overseer events/s", "overseer lines/s", "baseline rows(=lines)/s", "ratio events",
           "ratio lines")
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(hdr)] if table else []
    print("  ".join(h.rjust(w) for h, w in zip(hdr, widths, strict=True)))
    for row in table:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))
    print("(medians of the runs; events = rows appended to the event log, incl. worker.state_changed and "
          "approval.expired; target >= 20,000 events/s on SQLite)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
