"""``overseer demo`` as a user runs it (the first milestone): real agents, offline, one approval waiting."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.agents


def test_demo_runs_both_agents_and_leaves_an_approval(tmp_path: Path, agent_bins: dict[str, str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OVERSEER_DATA_DIR": str(tmp_path / "demo"), "OVERSEER_CODEX_BIN": agent_bins["codex"],
           "OVERSEER_CLAUDE_BIN": agent_bins["claude"]}
    env.pop("OVERSEER_DATABASE_URL", None)
    out = subprocess.run([sys.executable, "-m", "overseer.cli.main", "demo", "--exit-after", "4", "--port", str(port)],
                         env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
    assert "dispatched alpha-greet: dispatched" in text and "dispatched beta-describe: dispatched" in text
    assert "APPROVAL NEEDED" in text and "overseer approve" in text
    assert f"http://127.0.0.1:{port}/auth/login?code=" in text
    assert (tmp_path / "demo" / "overseer.db").exists()
