"""Record a stream of REAL ``codex app-server`` stdout lines for the pipeline benchmark to replay.

Runs the pinned ``codex`` binary against :class:`overseer.testing.ScriptedModelServer` through the
minimal :class:`overseer.testing.direct_clients.CodexDirectClient` (no Overseer code in between),
for a few turns: slow streamed text (many ``item/agentMessage/delta``), shell commands with an
approval that is accepted (``approvalPolicy: untrusted``), patches (``fileChange`` approval), and a
plain reply. Every raw stdout line (notifications, server requests and responses, exactly as the
binary wrote them) is saved, one per line, to ``benchmarks/data/codex_stream.jsonl``.

    .venv/bin/python benchmarks/record_codex_stream.py [--out PATH] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from overseer.testing import direct_clients
from overseer.testing.scripted_model import ScriptedModelServer

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "data" / "codex_stream.jsonl"
CODEX = REPO / ".tools" / "agents" / "node_modules" / ".bin" / "codex"

PROMPTS = [
    "Say hello slowly [[slow: 2]]",
    "Write a file [[run: echo hi > out.txt]] then explain [[slow: 1]]",
    "Add notes [[patch: notes.txt]]",
    "List things [[run: seq 1 40]] [[run: ls -la]]",
    "Plain question without markers",
    "Another file [[patch: more.txt]] then [[run: cat more.txt]] [[slow: 2]]",
]


class _RecordingProc(direct_clients._Proc):
    """``_Proc`` that also keeps every raw stdout line (before JSON parsing)."""

    raw: list[bytes]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.raw = []
        self._raw_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            raw = raw.strip()
            if not raw:
                continue
            with self._raw_lock:
                self.raw.append(raw)
            try:
                obj = json.loads(raw)
            except ValueError:
                obj = {"_unparsed": raw[:500].decode(errors="replace")}
            if isinstance(obj, dict):
                self.lines.put(obj)
        self.lines.put(None)


def record(out: Path, rounds: int) -> dict[str, Any]:
    direct_clients._Proc = _RecordingProc  # type: ignore[misc]
    with ScriptedModelServer() as model, tempfile.TemporaryDirectory(prefix="overseer-rec-") as tmp:
        cwd = Path(tmp) / "repo"
        cwd.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=cwd, check=True)
        client = direct_clients.CodexDirectClient(
            str(CODEX), openai_base_url=model.openai_base_url, cwd=str(cwd), home=str(Path(tmp) / "home"))
        statuses: list[str] = []
        approvals = 0
        try:
            client.start()
            thread_id = client.start_thread(approval_policy="untrusted", sandbox="workspace-write")
            for _ in range(rounds):
                for prompt in PROMPTS:
                    res = client.run_turn(thread_id, prompt, approval="accept", timeout=90)
                    statuses.append(res.status)
                    approvals += len(res.approvals)
            proc = client._proc
            assert isinstance(proc, _RecordingProc)
            lines = list(proc.raw)
        finally:
            client.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(b"\n".join(lines) + b"\n")
    methods = Counter()
    for line in lines:
        msg = json.loads(line)
        methods[msg.get("method") or ("response" if "id" in msg else "?")] += 1
    return {"lines": len(lines), "bytes": out.stat().st_size, "turns": len(statuses),
            "statuses": dict(Counter(statuses)), "approvals_answered": approvals, "methods": dict(methods)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--rounds", type=int, default=2, help="times the prompt list is played (one thread)")
    args = ap.parse_args(argv)
    info = record(args.out, args.rounds)
    print(f"codex: {CODEX}")
    print(f"wrote {args.out} ({info['bytes']:,} bytes, {info['lines']} lines, {info['turns']} turns, "
          f"statuses {info['statuses']}, approvals answered {info['approvals_answered']})")
    for method, n in sorted(info["methods"].items(), key=lambda kv: -kv[1]):
        print(f"  {n:6d}  {method}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
