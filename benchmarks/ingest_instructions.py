"""Ingest cost in CPU instructions per event: a deterministic figure for A/B on a noisy machine.

This VM's CPU speed drifts by 2x within minutes (a fixed pure-Python loop took 0.97-2.28 s), so
events/s of two code versions differ by more between runs than most changes move them. Instruction
counts do not drift: each version runs ``pipeline.overseer_run`` (the same real path as
``pipeline.py``: rpc framing, Codex normalization, the ingest loop, SQLite, reducer, bus) under
``valgrind --tool=callgrind`` twice, with ``--small`` and ``--big`` agent events, and the difference of
the two totals divided by the difference of the log rows is the cost of one event, without the
start-up (imports, migrations), in instructions of every thread of the process.

It counts work, not time: waiting (the event loop idle while SQLite runs in the driver's thread, GIL
hand-offs) is invisible here; check a change that moves work between threads with ``pipeline.py``.
About 1.5 minutes per run (valgrind is ~50x slower); ``PYTHONHASHSEED=0`` for repeatability.

    .venv/bin/python benchmarks/ingest_instructions.py [--tree /path/to/other/checkout ...] [--phases]
        [--small 2000] [--big 12000]

``--tree`` (repeatable) measures another checkout (e.g. ``git worktree add /tmp/old <rev>``) with its
own ``src/`` and ``benchmarks/``; the default is this one.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def child(tree: Path, events: int, phases: bool) -> None:
    """Run one ``overseer_run`` of ``events`` agent events on SQLite with ``tree``'s code; print the log rows."""
    import logging

    sys.path[:0] = [str(tree / "benchmarks"), str(tree / "src")]  # before this script's own directory

    import _common as C
    import pipeline as P

    logging.basicConfig(level=logging.WARNING)
    lines, ids = P.load_stream(P.STREAM)
    per_copy = P.count_events_per_copy(lines)
    copies = [P.copy_lines(lines, ids, k) for k in range(max(1, -(-events // per_copy)))]

    async def one() -> P.Result:
        async with C.bench_database("sqlite") as url:
            return await P.overseer_run(url, copies, workers=4, batch=500, chunk=64, profile=None, phases=phases)

    print(f"LOG_ROWS {C.run(one, 'uvloop').log_rows}")


def measure(tree: Path, events: int, phases: bool) -> tuple[int, int]:
    """``(log rows, instructions)`` of one child run of ``tree`` under callgrind."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(tree / "src")}
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
           str(Path(__file__).resolve()), "--child", str(events), "--child-tree", str(tree),
           *(["--phases"] if phases else [])]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    rows = re.search(r"LOG_ROWS (\d+)", out.stdout)
    collected = re.search(r"Collected : (\d+)", out.stderr)
    if out.returncode != 0 or not rows or not collected:
        raise SystemExit(f"callgrind run failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return int(rows.group(1)), int(collected.group(1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", type=Path, action="append", help="a checkout to measure (default: this one)")
    ap.add_argument("--small", type=int, default=2000)
    ap.add_argument("--big", type=int, default=12000)
    ap.add_argument("--phases", action="store_true", help="normalize everything first, then ingest")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--child-tree", type=Path, default=REPO, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        child(args.child_tree, args.child, args.phases)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)")
        return 1
    sys.path.insert(0, str(REPO / "benchmarks"))
    import _common as C

    trees = args.tree or [REPO]
    C.header("ingest instructions per event (benchmarks/ingest_instructions.py)", {
        "trees": ", ".join(str(t) for t in trees), "events": f"{args.small} and {args.big}",
        "mode": "phases (normalize, then ingest)" if args.phases else "concurrent (as pipeline.py)"})
    for tree in trees:
        rows_a, ir_a = measure(tree, args.small, args.phases)
        rows_b, ir_b = measure(tree, args.big, args.phases)
        per_event = (ir_b - ir_a) / (rows_b - rows_a)
        print(f"  {tree}: {per_event:,.0f} instructions per log row ({rows_b - rows_a:,} rows between the "
              f"runs; totals {ir_a:,} / {ir_b:,})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
