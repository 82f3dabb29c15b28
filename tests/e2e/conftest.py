"""End-to-end fixtures: the scripted model server and the pinned real agent binaries.

``agent_bins`` never skips: the agent tests are part of the suite, so a missing binary is a failure
that names the fix (``make agents`` / ``scripts/install-agents.sh``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from overseer.testing import ScriptedModelServer

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BIN_DIR = REPO / ".tools" / "agents" / "node_modules" / ".bin"
BIN_ENV = {"codex": "OVERSEER_CODEX_BIN", "claude": "OVERSEER_CLAUDE_BIN"}


@pytest.fixture(scope="session")
def scripted_model() -> Iterator[ScriptedModelServer]:
    """A started :class:`ScriptedModelServer` on 127.0.0.1 (OS-chosen port), stopped at session end."""
    server = ScriptedModelServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def agent_bins() -> dict[str, str]:
    """``{"codex": path, "claude": path}`` from $OVERSEER_CODEX_BIN / $OVERSEER_CLAUDE_BIN or the
    pinned install in ``.tools/agents/node_modules/.bin``. Fails (never skips) when one is missing."""
    bins: dict[str, str] = {}
    problems: list[str] = []
    for name, env in BIN_ENV.items():
        path = os.environ.get(env) or str(DEFAULT_BIN_DIR / name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            bins[name] = path
        else:
            problems.append(f"{name}: {path} (set ${env} to override)")
    if problems:
        pytest.fail(
            "agent binaries missing: " + "; ".join(problems)
            + ". Install the pinned agents with `make agents` (runs scripts/install-agents.sh).",
            pytrace=False,
        )
    return bins
