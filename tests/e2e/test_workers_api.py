"""The worker control API on real agents (issue 3): real ``codex`` and ``claude`` binaries against
the scripted model, driven through the HTTP API with the runtime running."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from overseer.testing import ScriptedModelServer
from tests.e2e.conftest import Live, alive

pytestmark = pytest.mark.agents


KINDS = ["codex", "claude_code"]


@pytest.mark.parametrize("kind", KINDS)
async def test_text_turn_streams_and_returns_to_idle(live: Live, kind: str) -> None:
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
async def test_command_approval_accepted_or_declined(live: Live, kind: str, decision: str) -> None:
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
async def test_pause_during_slow_turn_then_resume_keeps_history(live: Live, kind: str,
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
async def test_terminate_stops_the_agent(live: Live, kind: str) -> None:
    w = await live.start_worker(kind)
    resp = await live.client.post(f"/api/v1/workers/{w['id']}/terminate")
    assert resp.json()["status"] == "TERMINATED"
    assert not alive(w["pid"])
    again = await live.client.post(f"/api/v1/workers/{w['id']}/resume")
    assert again.status_code == 409
    assert again.json()["error"]["details"] == {"id": w["id"], "worker_id": w["id"], "current_state": "TERMINATED",
                                                "requested_state": "RUNNING"}


@pytest.mark.parametrize("live", [{"worker_restart_max": 0}], indirect=True)
@pytest.mark.parametrize("kind", KINDS)
async def test_sigkill_mid_turn_fails_the_worker(live: Live, kind: str) -> None:
    """The worker leaves RUNNING for FAILED as soon as the process dies (the latency is measured in
    benchmarks/agent_latency.py, not asserted here)."""
    w = await live.start_worker(kind)
    await live.client.post(f"/api/v1/workers/{w['id']}/turns", json={"prompt": "long [[slow: 10]]"})
    await live.wait_status(w["id"], "RUNNING")
    os.killpg(w["pid"], signal.SIGKILL)
    failed = await live.wait_status(w["id"], "FAILED", timeout_s=10)
    assert "exited unexpectedly" in failed["last_error"]
    assert failed["liveness"] == "stopped" and failed["active_turn_id"] is None


async def test_missing_binary_names_the_setting(live: Live) -> None:
    live.app.state.settings.codex_bin = "/nonexistent/codex"
    resp = await live.client.post("/api/v1/workers", json={"workspace_id": live.ws["id"], "kind": "codex"})
    assert resp.status_code == 503
    assert resp.json()["error"]["details"]["setting"] == "OVERSEER_CODEX_BIN"
    assert (await live.client.get("/api/v1/workers")).json()["workers"] == []
