"""Can Python work on the event loop overlap SQLite work in aiosqlite's thread? (No: measured here.)

The ingest waits for SQLite ~20 % of its wall time (``pipeline.py``), with the event loop idle. The
obvious fix is to give the loop work meanwhile (build the next batch's rows while this one is
inserted: SQLite's ``sqlite3_step`` runs without the GIL). This script measures whether that can
pay off in this runtime (CPython 3.11, uvloop, aiosqlite), with the ingest's own statement shape:

* ``db``: ``--statements`` multi-row INSERTs (256 rows of an ``events``-like table, a commit every 4)
  through one aiosqlite connection, each awaited, the loop otherwise idle;
* ``py``: ``--statements`` ~0.4 ms pure-Python chunks, each followed by ``await asyncio.sleep(0)``
  (to time one chunk);
* ``both``: each statement submitted, then Python chunks (with the yields) until it has finished:
  the overlap the idea needs. Capped at ``--cap-s`` seconds (it can take minutes).

For each switch interval (``sys.setswitchinterval``) it prints wall and process CPU time, and what
``both`` gained over doing its statements and chunks one after the other, and how long each
statement took. On this VM (2026-11-22, two runs): at the default 5 ms interval ``both`` finished 5-7
of 150 statements in 10-15 s (1.4-3 s per statement instead of ~1.9 ms: the driver's thread waits for
the GIL at every hand-off while the loop keeps it busy); at 1 ms, 3-133 statements; at 0.2 ms all
150, but at 4-7 ms each instead of ~1.6 ms, with ~3 ms of Python run per statement. The ingest
commits a batch in ~30 statements one after the other, with ~1 ms of Python per 256 rows to give, so it
stays serial (see README, "third pass").

    .venv/bin/python benchmarks/gil_overlap.py [--statements 150] [--cap-s 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import aiosqlite
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C

ROWS = 256
ROW = ("0" * 32, "message.delta", "worker", "e" * 36,
       json.dumps({"item_id": "msg_1", "delta": "hello world " * 5, "thread_id": "t" * 36, "turn_id": "u" * 36,
                   "agent_kind": "codex"}), "2026-11-22 05:00:00.123456")
SQL = ("INSERT INTO events (workspace_id, event_type, entity_type, entity_id, payload, created_at) VALUES "
       + ", ".join(["(?, ?, ?, ?, ?, ?)"] * ROWS))


def chunk() -> None:
    """~0.4 ms of pure Python (the size of one 64-event slice of row building)."""
    x = 0
    for i in range(5000):
        x += i


async def run(mode: str, statements: int, cap_s: float) -> tuple[float, float, int, int]:
    """``(wall s, process CPU s, statements done, chunks run)``."""
    with tempfile.TemporaryDirectory() as d:
        async with aiosqlite.connect(f"{d}/x.db") as c:
            await c.execute("PRAGMA journal_mode=WAL")
            await c.execute("PRAGMA synchronous=NORMAL")
            await c.execute("CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, workspace_id, event_type,"
                            " entity_type, entity_id, payload, created_at)")
            await c.execute("CREATE INDEX a ON events (workspace_id, id)")
            await c.execute("CREATE INDEX b ON events (entity_type, entity_id, id)")
            params = ROW * ROWS
            t0, p0 = time.perf_counter(), time.process_time()
            done = chunks = 0
            for k in range(statements):
                if mode == "py":
                    chunk()
                    chunks += 1
                    await asyncio.sleep(0)
                    continue
                pending = asyncio.ensure_future(c.execute(SQL, params))
                while mode == "both" and not pending.done():
                    chunk()
                    chunks += 1
                    await asyncio.sleep(0)
                    if time.perf_counter() - t0 > cap_s:
                        break
                await pending
                done += 1
                if k % 4 == 3:
                    await c.commit()
                if time.perf_counter() - t0 > cap_s:
                    break
            return time.perf_counter() - t0, time.process_time() - p0, done, chunks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--statements", type=int, default=150)
    ap.add_argument("--cap-s", type=float, default=20.0, help="stop a mode after this many seconds")
    args = ap.parse_args(argv)
    C.header("event loop vs aiosqlite thread overlap (benchmarks/gil_overlap.py)",
             {"statements": f"{args.statements} x {ROWS}-row INSERT, commit every 4", "cap": f"{args.cap_s} s"})
    default = sys.getswitchinterval()
    for interval in (default, 0.001, 0.0002):
        sys.setswitchinterval(interval)
        print(f"  switch interval {interval * 1000:.1f} ms; CPU probe {C.cpu_probe():.0f} ms")
        got = {}
        for mode in ("db", "py", "both"):
            wall, cpu, done, chunks = got[mode] = uvloop.run(run(mode, args.statements, args.cap_s))
            print(f"    {mode:4s}: wall {wall:7.3f} s, process CPU {cpu:7.3f} s, statements {done}, "
                  f"Python chunks {chunks}", flush=True)
        (db_wall, _, db_done, _), (py_wall, _, _, py_chunks), (both_wall, _, both_done, both_chunks) = (
            got["db"], got["py"], got["both"])
        serial = db_wall * both_done / db_done + both_chunks * py_wall / py_chunks
        print(f"    -> 'both' did {both_done} statements and {both_chunks} chunks in {both_wall:.3f} s; the same "
              f"work one after the other: {serial:.3f} s; overlap gained {serial - both_wall:+.3f} s; "
              f"statements took {both_wall / max(both_done, 1) * 1000:.1f} ms each (alone "
              f"{db_wall / db_done * 1000:.1f} ms)")
    sys.setswitchinterval(default)
    return 0


if __name__ == "__main__":
    sys.exit(main())
