"""End-to-end fixtures: the scripted model server and the pinned real agent binaries.

``agent_bins`` never skips: the agent tests are part of the suite, so a missing binary is a failure
that names the fix (``make agents`` / ``scripts/install-agents.sh``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from overseer.app import create_app
from overseer.config import Settings
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


@pytest.fixture
async def live(request: pytest.FixtureRequest, settings: Settings, scripted_model: ScriptedModelServer, agent_bins: dict[str, str],
               admin_headers: dict[str, str], tmp_path: Path) -> AsyncIterator[Any]:
    """An app with the runtime running, agents pointed at the scripted model.

    Override settings with ``@pytest.mark.parametrize("live", [{...}], indirect=True)``."""
    live_settings = settings.model_copy(update={
        "model_base_url": scripted_model.base_url, "codex_bin": agent_bins["codex"],
        "claude_bin": agent_bins["claude"], "terminate_grace_s": 2.0,
        **getattr(request, "param", {})})
    app = create_app(live_settings, migrate_on_start=False)
    async with LifespanManager(app, shutdown_timeout=30) as mgr, httpx.AsyncClient(
            transport=httpx.ASGITransport(app=mgr.app), base_url="http://test", headers=admin_headers,
            timeout=30) as client:
        root = tmp_path / "repo"
        root.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=root, check=True)
        ws = (await client.post("/api/v1/workspaces", json={"name": "e2e", "root_path": str(root)})).json()
        yield Live(client, ws, root, app)
        manager = app.state.runtime.components["workers"]
        pids = [a.session.pid for a in manager.agents.values()]
    for pid in pids:  # no agent process left behind
        assert pid is None or not alive(pid), f"agent pid {pid} survived shutdown"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Live:
    def __init__(self, client: httpx.AsyncClient, ws: dict[str, Any], root: Path, app: Any) -> None:
        self.client, self.ws, self.root, self.app = client, ws, root, app

    async def start_worker(self, kind: str, **config: Any) -> dict[str, Any]:
        resp = await self.client.post("/api/v1/workers", json={"workspace_id": self.ws["id"], "kind": kind,
                                                               "config": config})
        assert resp.status_code == 201, resp.text
        return resp.json()  # type: ignore[no-any-return]

    async def worker(self, worker_id: str) -> dict[str, Any]:
        return (await self.client.get(f"/api/v1/workers/{worker_id}")).json()  # type: ignore[no-any-return]

    async def wait(self, check: Callable[[], Awaitable[Any]], timeout_s: float = 30.0) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            value = await check()
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("condition not met in time")
            await asyncio.sleep(0.05)

    async def wait_status(self, worker_id: str, *statuses: str, timeout_s: float = 30.0) -> dict[str, Any]:
        async def check() -> Any:
            w = await self.worker(worker_id)
            return w if w["status"] in statuses else None
        return await self.wait(check, timeout_s)  # type: ignore[no-any-return]

    async def pending_approval(self) -> dict[str, Any]:
        async def check() -> Any:
            rows = (await self.client.get("/api/v1/ops/approvals")).json()
            return rows[0] if rows else None
        return await self.wait(check)  # type: ignore[no-any-return]

    async def events(self, worker_id: str) -> list[str]:
        from sqlalchemy import select

        from overseer.events.models import Event

        async with self.app.state.db.read_session() as s:
            rows = await s.execute(select(Event.event_type).where(Event.entity_id == worker_id).order_by(Event.id))
            return list(rows.scalars())
