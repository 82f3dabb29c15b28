"""The worker control API on real agents (issue 3): real ``codex`` and ``claude`` binaries against
the scripted model, driven through the HTTP API with the runtime running."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from overseer.app import create_app
from overseer.config import Settings
from overseer.testing import ScriptedModelServer

pytestmark = pytest.mark.agents


@pytest.fixture
async def live(settings: Settings, scripted_model: ScriptedModelServer, agent_bins: dict[str, str],
               admin_headers: dict[str, str], tmp_path: Path) -> AsyncIterator[Any]:
    """An app with the runtime running, agents pointed at the scripted model."""
    live_settings = settings.model_copy(update={
        "model_base_url": scripted_model.base_url, "codex_bin": agent_bins["codex"],
        "claude_bin": agent_bins["claude"], "terminate_grace_s": 2.0})
    app = create_app(live_settings, migrate_on_start=False)
    async with LifespanManager(app, shutdown_timeout=30) as mgr, httpx.AsyncClient(
            transport=httpx.ASGITransport(app=mgr.app), base_url="http://test", headers=admin_headers,
            timeout=30) as client:
        root = tmp_path / "repo"
        root.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=root, check=True)
        ws = (await client.post("/api/v1/workspaces", json={"name": "e2e", "root_path": str(root)})).json()
        yield _Live(client, ws, root, app)
        manager = app.state.runtime.components["workers"]
        pids = [a.session.pid for a in manager.agents.values()]
    for pid in pids:  # no agent process left behind
        assert pid is None or not _alive(pid), f"agent pid {pid} survived shutdown"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class _Live:
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


KINDS = ["codex", "claude_code"]


@pytest.mark.parametrize("kind", KINDS)
async def test_text_turn_streams_and_returns_to_idle(live: _Live, kind: str) -> None:
    w = await live.start_worker(kind)
    assert w["status"] == "IDLE" and w["liveness"] == "healthy" and w["pid"]
    turn = (await live.client.post(f"/api/v1/workers/{w['id']}/turns", json={"prompt": "hello there"})).json()
    assert turn["thread_id"] and turn["turn_id"]
    done = await live.wait_status(w["id"], "IDLE")
    assert done["thread_id"] == turn["thread_id"]
    await live.app.state.runtime.components["workers"].flush()
    types = await live.events(w["id"])
    assert "message.delta" in types and types.index("turn.started") < types.index("turn.completed")
    detail = await live.worker(w["id"])
    assert [t["to_state"] for t in detail["transitions"]] == ["RUNNING", "IDLE"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("decision", ["accept", "decline"])
async def test_command_approval_accepted_or_declined(live: _Live, kind: str, decision: str) -> None:
    w = await live.start_worker(kind)
    await live.client.post(f"/api/v1/workers/{w['id']}/turns",
                           json={"prompt": "please [[run: echo hi > approved.txt]]"})
    approval = await live.pending_approval()
    assert "approved.txt" in (approval["command"] or "")
    resp = await live.client.post(f"/api/v1/ops/approvals/{approval['id']}", json={"decision": decision})
    assert resp.status_code == 200, resp.text
    assert resp.json()["decided_by"] == "tester"
    await live.wait_status(w["id"], "IDLE")
    assert (live.root / "approved.txt").exists() is (decision == "accept")
    again = await live.client.post(f"/api/v1/ops/approvals/{approval['id']}", json={"decision": "accept"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "REQUEST_CLOSED"


@pytest.mark.parametrize("kind", KINDS)
async def test_pause_during_slow_turn_then_resume_keeps_history(live: _Live, kind: str,
                                                                scripted_model: ScriptedModelServer) -> None:
    w = await live.start_worker(kind)
    turn = (await live.client.post(f"/api/v1/workers/{w['id']}/turns",
                                   json={"prompt": "first part [[slow: 5]]"})).json()
    await asyncio.sleep(1.0)
    paused = await live.client.post(f"/api/v1/workers/{w['id']}/pause")
    assert paused.json()["status"] == "PAUSED"
    held = await live.client.post(f"/api/v1/workers/{w['id']}/turns", json={"prompt": "more"})
    assert held.status_code == 409 and held.json()["error"]["code"] == "INVALID_STATE_TRANSITION"
    resumed = await live.client.post(f"/api/v1/workers/{w['id']}/resume")
    assert resumed.status_code == 200, resumed.text
    done = await live.wait_status(w["id"], "IDLE")
    assert done["thread_id"] == turn["thread_id"]
    last = [r for r in scripted_model.requests if "Continue where you left off" in r.prompt]
    assert last, "the resume prompt reached the model"


@pytest.mark.parametrize("kind", KINDS)
async def test_terminate_stops_the_agent(live: _Live, kind: str) -> None:
    w = await live.start_worker(kind)
    resp = await live.client.post(f"/api/v1/workers/{w['id']}/terminate")
    assert resp.json()["status"] == "TERMINATED"
    assert not _alive(w["pid"])
    again = await live.client.post(f"/api/v1/workers/{w['id']}/resume")
    assert again.status_code == 409
    assert again.json()["error"]["details"] == {"id": w["id"], "worker_id": w["id"], "current_state": "TERMINATED",
                                                "requested_state": "RUNNING"}


@pytest.mark.parametrize("kind", KINDS)
async def test_sigkill_mid_turn_fails_the_worker_within_a_second(live: _Live, kind: str) -> None:
    w = await live.start_worker(kind)
    await live.client.post(f"/api/v1/workers/{w['id']}/turns", json={"prompt": "long [[slow: 10]]"})
    await asyncio.sleep(0.5)
    os.killpg(w["pid"], signal.SIGKILL)
    t0 = asyncio.get_running_loop().time()
    failed = await live.wait_status(w["id"], "FAILED", timeout_s=5)
    assert asyncio.get_running_loop().time() - t0 < 1.0
    assert "exited unexpectedly" in failed["last_error"]
    assert failed["liveness"] == "stopped"


async def test_missing_binary_names_the_setting(live: _Live) -> None:
    live.app.state.settings.codex_bin = "/nonexistent/codex"
    resp = await live.client.post("/api/v1/workers", json={"workspace_id": live.ws["id"], "kind": "codex"})
    assert resp.status_code == 503
    assert resp.json()["error"]["details"]["setting"] == "OVERSEER_CODEX_BIN"
    assert (await live.client.get("/api/v1/workers")).json()["workers"] == []
