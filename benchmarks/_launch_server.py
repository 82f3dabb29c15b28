"""Benchmark-only launcher: a real uvicorn server (``create_app``) plus an event writer in the same process.

Used by ``stream_fanout.py`` and ``page_latency.py``, which start it as a SUBPROCESS so that its CPU and
RSS can be read from ``/proc/<pid>``. It is not part of Overseer.

Why a writer inside the server process: events reach the bus (and so ``GET /api/v1/ops/stream``)
only when they are committed by the server's own ``Database.session()`` (outbox). Rows inserted into
the database by another process are never published. No HTTP endpoint appends events in bulk: each
write request is one transaction of one event (``stream_fanout.py --probe-http-s`` measures how many
per second that reaches, far below 1,000/s). Agent events reach the log the same way this writer
writes them: in the server process, through ``events.log.defer`` in one ``db.session()`` per batch,
with the ``OpsPipeline`` projections updated in the same transaction.

Protocol (JSON lines):

- stdout, once the server listens: ``{"ready": true, "port", "pid", "workspace_id", "worker_id"}``.
- stdin ``{"cmd": "write", "rate": 1000, "count": 20000, "types": [...], "thread_id": "..."}``: append
  ``count`` events at ``rate`` per second (a batch per transaction of whatever is due, so the writer
  catches up when a commit is slow; at most ``batch_max`` per transaction, default 500 like the
  ingest loop's ``WorkerManager.batch_max``: one commit publishing more than ``stream_queue_max``
  events would overflow every stream client at once). ``"max_seconds"``: stop then even if behind. stdout when done: ``{"done": true, "written", "seconds",
  "transactions", "max_batch", "commit_ms_p50", "commit_ms_p99", "first_id", "last_id", "loop_lag_ms_*"}``
  (event-loop lag while writing), plus ``"times": [[id, created_at epoch s], ...]`` when asked with ``"times": true``.
- stdin ``{"cmd": "stats"}``: ``{"stats": true, "connected": <open streams>, "subscribers": <bus>}``.
- stdin ``{"cmd": "quit"}`` (or EOF): end every stream, stop uvicorn, exit.

Each event's payload carries ``seq`` (0..count-1) and the agent-style fields the page and the
projections read (``thread_id``, ``turn_id``, ``worker_id``, ``prompt`` / ``item_type`` / ``command``).
Its ``created_at`` is the moment it was deferred, just before its transaction commits.

    .venv/bin/python benchmarks/_launch_server.py --database-url sqlite+aiosqlite:///... --jwt-key K --data-dir D
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C
import uvicorn

from overseer.app import create_app
from overseer.clock import utcnow
from overseer.config import Settings
from overseer.events import log as event_log
from overseer.workers.models import Worker
from overseer.workspaces import service as workspaces
from overseer.workspaces.schemas import WorkspaceCreate

AGENT_CYCLE = ["turn.started", "item.started", "item.completed", "item.started", "item.completed", "turn.completed"]
"""Agent-style event types, each in the page's KNOWN_EVENTS and shown as a feed row."""


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def payload(event_type: str, seq: int, *, thread_id: str, turn_id: str, worker_id: str) -> dict[str, Any]:
    p: dict[str, Any] = {"seq": seq, "thread_id": thread_id, "turn_id": turn_id, "worker_id": worker_id}
    if event_type == "turn.started":
        p["prompt"] = f"bench turn {seq}"
    elif event_type.startswith("item."):
        p.update(item_type="command", item_id=f"item-{seq}", command=f"echo {seq}")
    elif event_type == "turn.completed":
        p.update(status="completed", final_message=f"done {seq}")
    return p


class Writer:
    def __init__(self, app: Any, workspace_id: uuid.UUID, worker_id: uuid.UUID) -> None:
        self.app = app
        self.workspace_id = workspace_id
        self.worker_id = worker_id
        self.written = 0
        self.tx = 0
        self.loop_lags: list[float] = []

    async def watch_loop(self) -> None:
        """Event-loop lag: how late a 50 ms timer fires (ms), recorded always, reported per write."""
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.05)
            self.loop_lags.append((time.perf_counter() - t - 0.05) * 1000)

    async def write(self, rate: float, count: int, types: list[str], thread_id: str, times: bool = False,
                    batch_max: int = 500, max_seconds: float | None = None) -> dict[str, Any]:
        db = self.app.state.db
        wid = str(self.worker_id)
        written = 0
        tx = 0
        max_batch = 0
        commit_ms: list[float] = []
        first_id = last_id = None
        id_times: list[tuple[int, float]] = []
        turn = 0
        start = time.perf_counter()
        self.loop_lags = []
        while written < count:
            if max_seconds is not None and time.perf_counter() - start > max_seconds:
                break  # fell behind: stop on time, report what was written
            due = min(count, int(rate * (time.perf_counter() - start)) + 1, written + batch_max) - written
            if due <= 0:
                await asyncio.sleep(max(0.0, (written + 1) / rate - (time.perf_counter() - start)))
                continue
            t0 = time.perf_counter()
            async with db.session() as session:
                for i in range(written, written + due):
                    et = types[i % len(types)]
                    if et == "turn.started":
                        turn += 1
                    event_log.defer(session, workspace_id=self.workspace_id, event_type=et, entity_type="worker",
                                    entity_id=wid, at=utcnow(), convert=False,
                                    payload=payload(et, i, thread_id=thread_id, turn_id=f"turn-{turn}", worker_id=wid))
                published = await event_log.flush_deferred(session)
            commit_ms.append((time.perf_counter() - t0) * 1000)
            if times:
                id_times.extend((ev.id, ev.created_at.timestamp()) for ev in published)
            if published:
                first_id = published[0].id if first_id is None else first_id
                last_id = published[-1].id
            written += due
            tx += 1
            self.written += due
            self.tx += 1
            max_batch = max(max_batch, due)
        return {"done": True, "written": written, "seconds": time.perf_counter() - start, "transactions": tx,
                "max_batch": max_batch, "commit_ms_p50": C.percentile(commit_ms, 50),
                "commit_ms_p99": C.percentile(commit_ms, 99), "first_id": first_id, "last_id": last_id,
                "loop_lag_ms_p50": C.percentile(self.loop_lags, 50), "loop_lag_ms_p99": C.percentile(self.loop_lags, 99),
                "loop_lag_ms_max": max(self.loop_lags, default=float("nan")),
                **({"times": id_times} if times else {})}


async def setup(app: Any, root: Path) -> tuple[uuid.UUID, uuid.UUID]:
    db = app.state.db
    async with db.session() as session:
        ws = await workspaces.create(session, data=WorkspaceCreate(name="bench", root_path=str(root)), actor="bench")
        worker = Worker(id=uuid.uuid4(), workspace_id=ws.id, kind="codex", name="bench-worker", status="IDLE")
        session.add(worker)
        await session.flush()
        return ws.id, worker.id


async def trace(app: Any, writer: Writer) -> None:
    """``--trace``: every second, to stderr: open streams, bus subscribers, pool, writer progress."""
    t0 = time.perf_counter()
    while True:
        await asyncio.sleep(1.0)
        hub = getattr(app.state, "streams", None)
        pool = app.state.db.engine.pool
        print(f"[trace {time.perf_counter() - t0:6.1f}s] streams {hub.connected if hub else 0} "
              f"subs {app.state.db.bus.subscriber_count} pool out {pool.checkedout()} "
              f"written {writer.written} tx {writer.tx}", file=sys.stderr, flush=True)


async def control(server: uvicorn.Server, app: Any, writer: Writer) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = json.loads(line)
        if cmd["cmd"] == "write":
            emit(await writer.write(float(cmd["rate"]), int(cmd["count"]), list(cmd.get("types") or AGENT_CYCLE),
                                    str(cmd.get("thread_id") or "bench-thread-1"), bool(cmd.get("times")),
                                    int(cmd.get("batch_max") or 500), cmd.get("max_seconds")))
        elif cmd["cmd"] == "stats":
            hub = getattr(app.state, "streams", None)
            emit({"stats": True, "connected": hub.connected if hub else 0,
                  "subscribers": app.state.db.bus.subscriber_count})
        elif cmd["cmd"] == "quit":
            break
    hub = getattr(app.state, "streams", None)
    if hub is not None:
        hub.close_all()  # our own shutdown (no uvicorn signal handler): end streams first (events/AGENTS.md)
    server.should_exit = True


async def main(args: argparse.Namespace) -> None:
    data_dir = Path(args.data_dir)
    settings = Settings(database_url=args.database_url, jwt_secret=args.jwt_key, data_dir=data_dir,  # type: ignore[arg-type]
                        stream_queue_max=args.stream_queue_max)
    app = create_app(settings, migrate_on_start=True, start_runtime=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           timeout_graceful_shutdown=5, backlog=4096))
    serve = asyncio.create_task(server.serve())
    while not server.started:
        if serve.done():
            await serve
            raise SystemExit("uvicorn did not start")
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    ws_id, worker_id = await setup(app, data_dir / "workspace")
    emit({"ready": True, "port": port, "pid": __import__("os").getpid(), "workspace_id": str(ws_id),
          "worker_id": str(worker_id)})
    writer = Writer(app, ws_id, worker_id)
    tracer = asyncio.create_task(trace(app, writer)) if args.trace else None
    watcher = asyncio.create_task(writer.watch_loop())
    await control(server, app, writer)
    watcher.cancel()
    if tracer is not None:
        tracer.cancel()
    await asyncio.wait_for(serve, 30)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--jwt-key", default=C.JWT_KEY)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--stream-queue-max", type=int, default=1000, help="Settings.stream_queue_max (default 1000)")
    ap.add_argument("--trace", action="store_true", help="print streams/pool/writer progress every second to stderr")
    ap.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    a = ap.parse_args()
    C.run(lambda: main(a), loop=a.loop)
