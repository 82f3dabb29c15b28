"""Per-stage CPU cost of the ingest hot path, without the database: microseconds per line or event.

Each stage runs on the same recorded Codex stream (``data/codex_stream.jsonl``, copied ``--copies``
times with fresh ids) and is repeated ``--repeat`` times; the MINIMUM thread CPU time is printed
(this 2-core VM is noisy; the minimum is the least disturbed run). Stages, in pipeline order:

1. ``read+normalize``: ``JsonRpcConnection.feed_line`` -> dispatch -> ``CodexSession`` -> sink (per line)
2. ``defer``: what ``WorkerManager._apply_batch`` does per log-only event (``events.log.defer``)
3. ``encode``: ``events.log._sqlite_params`` (uuid hex, JSON text, timestamp text)
4. ``sqlite insert``: the raw ``executemany`` into a migrated ``events`` table, 500 rows per transaction
5. ``published``: building the ``PublishedEvent`` objects
6. ``reduce``: ``ops.state.reduce`` over them (a fresh ``OpsState``)
7. ``publish``: ``EventBus.publish_many`` to one subscriber, drained with ``get_nowait``

    .venv/bin/python benchmarks/stages.py [--copies 30] [--repeat 7]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C
from pipeline import STREAM, _StubProcess, copy_lines, load_stream

from overseer.db.engine import make_engine
from overseer.db.migrate import upgrade
from overseer.events import log as event_log
from overseer.events.bus import EventBus, PublishedEvent
from overseer.ops.state import OpsState, reduce
from overseer.runtime.agent import AgentConfig, AgentEvent
from overseer.runtime.codex.adapter import CodexSession
from overseer.runtime.rpc import JsonRpcConnection


def best(fn: Any, repeat: int) -> float:
    out = float("inf")
    for _ in range(repeat):
        t = time.thread_time()
        fn()
        out = min(out, time.thread_time() - t)
    return out


async def normalize(copies: list[list[str]]) -> tuple[float, list[AgentEvent]]:
    got: list[AgentEvent] = []

    async def sink(ev: AgentEvent) -> None:
        got.append(ev)

    session = CodexSession(AgentConfig(kind="codex", binary="codex", cwd="/tmp", home="/tmp"), sink)
    rpc = JsonRpcConnection(on_notification=session._on_notification, on_request=session._on_request,
                            on_malformed=session._on_malformed, on_closed=session._on_closed, name="codex")
    rpc.attach(_StubProcess())  # type: ignore[arg-type]
    t = time.thread_time()
    for copy in copies:
        for i, line in enumerate(copy):
            await rpc.feed_line(line)
            if i % 64 == 0:
                await asyncio.sleep(0)
    while not rpc._queue.empty():  # noqa: ASYNC110
        await asyncio.sleep(0)
    cpu = time.thread_time() - t
    await rpc.close()
    return cpu, got


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = ap.parse_args()
    lines, ids = load_stream(STREAM)
    copies = [copy_lines(lines, ids, k) for k in range(args.copies)]
    n_lines = sum(len(c) for c in copies)
    C.header("ingest stages (benchmarks/stages.py)", {"lines": n_lines, "repeat": args.repeat, "loop": args.loop})

    cpus = []
    events: list[AgentEvent] = []
    for _ in range(args.repeat):
        cpu, events = C.run(lambda: normalize(copies), args.loop)
        cpus.append(cpu)
    n = len(events)
    print(f"  {'read+normalize':16s} {min(cpus) / n_lines * 1e6:6.2f} us/line ({n_lines:,} lines -> {n:,} events)")

    ws, wid = uuid.uuid4(), uuid.uuid4()
    wid_s = str(wid)

    class _S:
        info: dict[str, Any] = {}

    def defer() -> None:
        s = _S()
        s.info = {}
        for ev in events:
            event_log.defer(s, workspace_id=ws, event_type=ev.type, entity_type="worker",  # type: ignore[arg-type]
                            entity_id=wid_s, at=ev.at, convert=False,
                            payload={**ev.payload, "thread_id": ev.thread_id, "turn_id": ev.turn_id,
                                     "agent_kind": "codex"})
        _S.rows = s.info[event_log.DEFERRED_KEY]  # type: ignore[attr-defined]

    report = [("defer", best(defer, args.repeat))]
    rows: list[dict[str, Any]] = _S.rows  # type: ignore[attr-defined]
    params: list[tuple[Any, ...]] = []

    def encode() -> None:
        nonlocal params
        params = event_log._sqlite_params([dict(r) for r in rows])

    report.append(("encode", best(encode, args.repeat)))

    tmp = tempfile.mkdtemp(prefix="overseer-stages-")
    url = f"sqlite+aiosqlite:///{tmp}/s.db"

    async def migrate() -> None:
        engine = make_engine(url)
        await upgrade(engine)
        await engine.dispose()

    C.run(migrate, args.loop)
    conn = sqlite3.connect(f"{tmp}/s.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")

    def insert() -> None:
        for k in range(0, len(params), 500):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(event_log._SQLITE_INSERT_HEAD + "(?, ?, ?, ?, ?, ?)", params[k:k + 500])
            conn.execute("COMMIT")

    report.append(("sqlite insert", best(insert, args.repeat)))
    published: list[PublishedEvent] = []

    def build() -> None:
        nonlocal published
        published = [PublishedEvent(i, r["workspace_id"], r["event_type"], r["entity_type"], r["entity_id"],
                                    r["payload"], r["created_at"]) for i, r in enumerate(rows, 1)]

    report.append(("published", best(build, args.repeat)))

    def fold() -> None:
        st = OpsState()
        for ev in published:
            reduce(st, ev)

    report.append(("reduce", best(fold, args.repeat)))

    async def fan_out() -> float:
        bus = EventBus()
        sub = bus.subscribe(maxsize=10_000_000)
        t = time.thread_time()
        for k in range(0, len(published), 500):
            bus.publish_many(published[k:k + 500])
            while not sub.queue.empty():
                sub.queue.get_nowait()
        return time.thread_time() - t

    report.append(("publish", min(C.run(fan_out, args.loop) for _ in range(args.repeat))))
    total = 0.0
    for name, cpu in report:
        total += cpu
        print(f"  {name:16s} {cpu / n * 1e6:6.2f} us/event")
    total += min(cpus)
    print(f"  {'sum':16s} {total / n * 1e6:6.2f} us/event  (-> at most {n / total:,.0f} events/s on one core, "
          "before per-batch SQL, commit and the event loop)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
