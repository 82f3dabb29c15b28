"""Where the ingest's Python work goes: bytecodes executed per event, by function and by file.

Runs ``pipeline.overseer_run`` (the real path of ``pipeline.py``) once on SQLite and counts, with
``sys.settrace`` opcode events on the event-loop thread, every bytecode executed during its timed
section (feeding the lines to the last event received by the subscriber). Deterministic for a given
code version (the interleaving of tasks aside), unlike events/s on this VM; the driver thread's work
(SQLite itself) is not counted: see ``ingest_instructions.py`` for all instructions of all threads.
Tracing makes the run ~30x slower; 5,000 events take ~1 minute.

    .venv/bin/python benchmarks/ingest_bytecodes.py [--events 5000] [--top 45]
"""

from __future__ import annotations

import argparse
import collections
import logging
import sys
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C
import pipeline as P


class OpcodeCounter:
    """Counts executed bytecodes per code object while enabled (the ``profile`` hook of ``overseer_run``)."""

    def __init__(self) -> None:
        self.counts: collections.Counter[CodeType] = collections.Counter()
        self.by_caller: collections.Counter[CodeType] = collections.Counter()
        """Bytecodes of library code (SQLAlchemy, aiosqlite, the stdlib) by the nearest Overseer
        function up the stack that led to them."""

    def _global(self, frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        if "/src/overseer/" in frame.f_code.co_filename:
            return self._local
        caller: FrameType | None = frame.f_back
        while caller is not None and "/src/overseer/" not in caller.f_code.co_filename:
            caller = caller.f_back
        if caller is None:
            return self._local
        owner, counts, by_caller = caller.f_code, self.counts, self.by_caller

        def local(frame: FrameType, event: str, arg: Any) -> Any:
            if event == "opcode":
                counts[frame.f_code] += 1
                by_caller[owner] += 1
            return local

        return local

    def _local(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "opcode":
            self.counts[frame.f_code] += 1
        return self._local

    def enable(self) -> None:
        sys.settrace(self._global)

    def disable(self) -> None:
        sys.settrace(None)


def _where(filename: str) -> str:
    for marker, label in (("/src/overseer/", "overseer/"), ("/sqlalchemy/", "sqlalchemy"), ("/aiosqlite/", "aiosqlite")):
        if marker in filename:
            return label + filename.split(marker)[-1] if label.endswith("/") else label
    return filename.rsplit("/", 1)[-1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=5000)
    ap.add_argument("--top", type=int, default=45)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    lines, ids = P.load_stream(P.STREAM)
    per_copy = P.count_events_per_copy(lines)
    copies = [P.copy_lines(lines, ids, k) for k in range(max(1, -(-args.events // per_copy)))]
    C.header("ingest bytecodes per event (benchmarks/ingest_bytecodes.py)",
             {"events": f"~{len(copies) * per_copy:,} agent events, 4 workers, batch_max=500, SQLite"})
    counter = OpcodeCounter()

    async def one() -> P.Result:
        async with C.bench_database("sqlite") as url:
            return await P.overseer_run(url, copies, workers=4, batch=500, chunk=64, profile=counter)  # type: ignore[arg-type]

    rows = C.run(one, "uvloop").log_rows
    total = sum(counter.counts.values())
    print(f"  {total:,} bytecodes for {rows:,} log rows = {total / rows:,.0f} per event")
    by_file: collections.Counter[str] = collections.Counter()
    for code, n in counter.counts.items():
        by_file[_where(code.co_filename)] += n
    print("  by file (bytecodes per event):")
    for name, n in by_file.most_common(20):
        print(f"    {n / rows:8.1f}  {name}")
    print("  by function (bytecodes per event):")
    for code, n in counter.counts.most_common(args.top):
        print(f"    {n / rows:8.1f}  {code.co_name} ({_where(code.co_filename)}:{code.co_firstlineno})")
    print("  library bytecodes (SQLAlchemy, aiosqlite, stdlib) by the Overseer function that called them:")
    for code, n in counter.by_caller.most_common(args.top // 2):
        print(f"    {n / rows:8.1f}  {code.co_name} ({_where(code.co_filename)}:{code.co_firstlineno})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
