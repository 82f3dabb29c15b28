"""AgentProcess: spawning, line framing, stderr ring buffer, process-group termination."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import pytest

from overseer.runtime.agent import AgentBinaryError, AgentError
from overseer.runtime.process import AgentProcess, ProcessExit


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); treat it as dead
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_lines_in_order_oversized_skipped_final_line_without_newline() -> None:
    lines: list[str] = []
    skipped: list[tuple[str, str]] = []
    code = (
        "import sys\n"
        "w = sys.stdout.write\n"
        "w('one\\n'); w('x' * 3_000_000 + '\\n'); w('two\\r\\n'); w('\\xe9t\\xe9\\n'); w('last')\n"
    )
    proc = AgentProcess(
        [sys.executable, "-c", code], env={}, cwd="/", on_line=lines.append,
        on_malformed=lambda prefix, reason: skipped.append((prefix, reason)), line_limit_bytes=1 << 20,
    )
    await proc.start()
    assert await proc.wait_exit() == ProcessExit(returncode=0, signal=None)
    assert lines == ["one", "two", "été", "last"]
    assert len(skipped) == 1 and skipped[0][0] == "x" * 200
    assert "3000001 bytes" in skipped[0][1]
    assert proc.malformed_lines == 1
    assert not proc.alive


async def test_stderr_ring_buffer_is_bounded() -> None:
    code = "import sys\nfor i in range(1000): sys.stderr.write(f'err {i}\\n')\nsys.exit(2)\n"
    proc = AgentProcess([sys.executable, "-c", code], env={}, cwd="/", on_line=lambda _: None, stderr_lines=50)
    await proc.start()
    exit_ = await proc.wait_exit()
    assert exit_.returncode == 2 and exit_.describe() == "exit code 2"
    assert proc.stderr_tail(3) == "err 997\nerr 998\nerr 999"
    assert len(proc.stderr_tail(1000).splitlines()) == 50


async def test_missing_binary_raises_binary_error() -> None:
    proc = AgentProcess(["/nonexistent/agent-bin"], env={}, cwd="/", on_line=lambda _: None,
                        binary_setting="OVERSEER_CODEX_BIN")
    with pytest.raises(AgentBinaryError) as info:
        await proc.start()
    assert info.value.setting == "OVERSEER_CODEX_BIN"
    assert "OVERSEER_CODEX_BIN" in str(info.value)


async def test_missing_cwd_is_not_a_binary_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    proc = AgentProcess([sys.executable, "-c", "pass"], env={}, cwd=str(tmp_path / "nope"), on_line=lambda _: None)
    with pytest.raises(AgentError) as info:
        await proc.start()
    assert not isinstance(info.value, AgentBinaryError)


async def test_write_line_round_trip_and_write_after_exit_fails() -> None:
    lines: list[str] = []
    code = "import sys\nfor line in sys.stdin:\n    print('got ' + line.strip(), flush=True)\n"
    proc = AgentProcess([sys.executable, "-c", code], env={}, cwd="/", on_line=lines.append)
    await proc.start()
    await proc.write_line("hello")
    await proc.write_line("wörld")
    await proc.close_stdin()  # EOF: the peer's loop ends
    assert (await proc.wait_exit()).returncode == 0
    assert lines == ["got hello", "got wörld"]
    with pytest.raises(AgentError, match="exit code 0"):
        await proc.write_line("too late")


async def test_terminate_kills_the_whole_group_even_if_sigterm_is_ignored() -> None:
    lines: list[str] = []
    script = "trap '' TERM; sleep 60 & echo $!; while true; do sleep 0.05; done"
    proc = AgentProcess(["bash", "-c", script], env={"PATH": os.environ["PATH"]}, cwd="/", on_line=lines.append)
    await proc.start()
    for _ in range(100):
        if lines:
            break
        await asyncio.sleep(0.02)
    grandchild = int(lines[0])
    assert _alive(grandchild)
    started = time.monotonic()
    exit_ = await proc.terminate(grace_s=0.3)
    assert exit_ == ProcessExit(returncode=None, signal=signal.SIGKILL)
    assert time.monotonic() - started < 2.0
    assert await proc.terminate(grace_s=0.3) == exit_  # idempotent
    await asyncio.sleep(0.1)
    assert proc.pid is not None and not _alive(proc.pid)
    assert not _alive(grandchild)


async def test_exit_resolves_even_if_a_grandchild_keeps_stdout_open() -> None:
    # bash exits at once, its background sleep inherits stdout
    proc = AgentProcess(["bash", "-c", "sleep 30 & echo started"], env={"PATH": os.environ["PATH"]},
                        cwd="/", on_line=lambda _: None, eof_grace_s=0.2)
    await proc.start()
    started = time.monotonic()
    exit_ = await asyncio.wait_for(proc.wait_exit(), timeout=3)
    assert exit_.returncode == 0
    assert time.monotonic() - started < 1.5
    await proc.terminate(grace_s=0.1)  # reaps the straggler through the group


async def test_handler_exception_does_not_stop_reading() -> None:
    seen: list[str] = []

    async def handler(line: str) -> None:
        seen.append(line)
        if line == "a":
            raise RuntimeError("bad handler")

    proc = AgentProcess([sys.executable, "-c", "print('a'); print('b')"], env={}, cwd="/", on_line=handler)
    await proc.start()
    await proc.wait_exit()
    assert seen == ["a", "b"]


def test_escaped_nul_in_a_protocol_line_becomes_a_replacement_character() -> None:
    """PostgreSQL stores no NUL in text or JSONB: an agent's escaped NUL is replaced at the boundary, while a
    literal backslash-u0000 text stays as it is."""
    import json

    from overseer.runtime.process import _decode

    line = json.dumps({"out": "a\x00b", "literal": "\\u0000"}).encode() + b"\n"
    assert json.loads(_decode(line)) == {"out": "a\ufffdb", "literal": "\\u0000"}
