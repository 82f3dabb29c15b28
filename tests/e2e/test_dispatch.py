"""``POST /api/v1/ops/dispatch`` on real agents (CM-005): real ``codex`` and ``claude`` binaries against the
scripted model, the runtime running, driven through the HTTP API."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select

from overseer.app import create_app
from overseer.config import Settings
from overseer.events.models import Event
from overseer.testing import ScriptedModelServer

pytestmark = [pytest.mark.agents, pytest.mark.both_dbs]
VERSION = "overseer.dispatch.v1"


class Live:
    def __init__(self, client: httpx.AsyncClient, app: Any, tmp_path: Path) -> None:
        self.client, self.app, self.tmp_path = client, app, tmp_path

    async def workspace(self, name: str) -> dict[str, Any]:
        root = self.tmp_path / name
        root.mkdir()
        await asyncio.to_thread(subprocess.run, ["git", "init", "-q"], cwd=root, check=True)
        resp = await self.client.post("/api/v1/workspaces", json={"name": name, "root_path": str(root)})
        assert resp.status_code == 201, resp.text
        return resp.json()  # type: ignore[no-any-return]

    async def dispatch(self, *actions: dict[str, Any]) -> list[dict[str, Any]]:
        resp = await self.client.post("/api/v1/ops/dispatch", json={"version": VERSION, "actions": list(actions)})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["version"] == VERSION
        return body["results"]  # type: ignore[no-any-return]

    async def workers(self) -> list[dict[str, Any]]:
        return (await self.client.get("/api/v1/workers")).json()["workers"]  # type: ignore[no-any-return]

    async def wait_idle(self, worker_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            w = (await self.client.get(f"/api/v1/workers/{worker_id}")).json()
            if w["status"] == "IDLE" and not w["active_turn_id"]:
                return w  # type: ignore[no-any-return]
            assert w["status"] in ("RUNNING", "IDLE"), w
            assert asyncio.get_running_loop().time() < deadline, f"worker {worker_id} still {w['status']}"
            await asyncio.sleep(0.05)

    async def events(self, event_type: str, entity_id: str | None = None) -> list[Event]:
        await self.app.state.runtime.components["workers"].flush()
        stmt = select(Event).where(Event.event_type == event_type).order_by(Event.id)
        if entity_id:
            stmt = stmt.where(Event.entity_id == entity_id)
        async with self.app.state.db.read_session() as s:
            return list((await s.execute(stmt)).scalars())


@pytest.fixture
async def live(settings: Settings, scripted_model: ScriptedModelServer, agent_bins: dict[str, str],
               admin_headers: dict[str, str], tmp_path: Path) -> AsyncIterator[Live]:
    """An app with the runtime running, agents pointed at the scripted model; no agent survives it."""
    live_settings = settings.model_copy(update={
        "model_base_url": scripted_model.base_url, "codex_bin": agent_bins["codex"],
        "claude_bin": agent_bins["claude"], "terminate_grace_s": 2.0})
    app = create_app(live_settings, migrate_on_start=False)
    async with LifespanManager(app, shutdown_timeout=30) as mgr, httpx.AsyncClient(
            transport=httpx.ASGITransport(app=mgr.app), base_url="http://test", headers=admin_headers,
            timeout=60) as client:
        yield Live(client, app, tmp_path)
        manager = app.state.runtime.components["workers"]
        pids = [a.session.pid for a in manager.agents.values()]
    for pid in pids:
        assert pid is None or not _alive(pid), f"agent pid {pid} survived shutdown"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def turn(ws: dict[str, Any], action_id: str, prompt: str, **extra: Any) -> dict[str, Any]:
    return {"type": "dispatch_turn", "action_id": action_id, "workspace_id": ws["id"], "prompt": prompt, **extra}


def model_requests(scripted_model: ScriptedModelServer, marker: str) -> int:
    return sum(marker in r.prompt for r in scripted_model.requests)


async def test_one_dispatch_reaches_two_workspaces_and_replays_idempotently(
        live: Live, scripted_model: ScriptedModelServer) -> None:
    a, b = await live.workspace("alpha"), await live.workspace("beta")
    marker = uuid.uuid4().hex[:10]
    actions = [turn(a, "to-alpha", f"alpha {marker}", dedupe_key="k-1"),
               turn(b, "to-beta", f"beta {marker}", agent_kind="claude_code", dedupe_key="k-1")]
    results = await live.dispatch(*actions)
    assert [r["action_id"] for r in results] == ["to-alpha", "to-beta"]
    for r, ws in zip(results, (a, b), strict=True):
        assert r["status"] == "dispatched", r
        assert r["workspace_id"] == ws["id"] and r["worker_id"] and r["thread_id"] and r["turn_id"]
        assert r["error"] is None and r["idempotent_replay"] is False and r["job_id"] is None
    workers = {w["id"]: w for w in await live.workers()}
    assert {workers[r["worker_id"]]["kind"] for r in results} == {"codex", "claude_code"}
    for r in results:  # both turns complete: the workers are back to IDLE on the dispatched thread
        done = await live.wait_idle(r["worker_id"])
        assert done["thread_id"] == r["thread_id"] and done["workspace_id"] == r["workspace_id"]
    completed = await live.events("turn.completed")
    assert {e.payload["turn_id"] for e in completed} >= {r["turn_id"] for r in results}
    served = model_requests(scripted_model, marker)
    assert served >= 2

    again = await live.dispatch(*(dict(x, action_id=x["action_id"] + "-again") for x in actions))
    for first, replay in zip(results, again, strict=True):
        assert replay["idempotent_replay"] is True and replay["action_id"] == first["action_id"] + "-again"
        assert {k: replay[k] for k in ("status", "worker_id", "thread_id", "turn_id")} == \
               {k: first[k] for k in ("status", "worker_id", "thread_id", "turn_id")}
    await asyncio.sleep(0.5)
    assert model_requests(scripted_model, marker) == served  # no new turn reached a model
    assert len(await live.events("turn.started")) == 2
    assert len(await live.workers()) == 2
    executed = await live.events("dispatch.executed")
    assert len(executed) == 4  # one per workspace per dispatch
    assert [r["idempotent_replay"] for r in executed[-1].payload["results"]] == [True]


async def test_an_idle_worker_is_reused(live: Live) -> None:
    ws = await live.workspace("gamma")
    started = await live.client.post("/api/v1/workers", json={"workspace_id": ws["id"], "kind": "codex"})
    assert started.status_code == 201, started.text
    worker = started.json()
    [r] = await live.dispatch(turn(ws, "reuse", "hello"))
    assert r["status"] == "dispatched" and r["worker_id"] == worker["id"]
    await live.wait_idle(worker["id"])
    assert [w["id"] for w in await live.workers()] == [worker["id"]]
    [again] = await live.dispatch(turn(ws, "reuse-2", "hello again"))  # no dedupe_key: a new turn
    assert again["worker_id"] == worker["id"] and again["thread_id"] == r["thread_id"]
    assert again["turn_id"] != r["turn_id"]
    await live.wait_idle(worker["id"])


async def test_thread_id_continues_that_thread_on_its_worker(live: Live) -> None:
    ws = await live.workspace("delta")
    [first] = await live.dispatch(turn(ws, "t1", "remember the word pineapple", agent_kind="claude_code"))
    assert first["status"] == "dispatched", first
    await live.wait_idle(first["worker_id"])
    # A second, never-used idle worker of the same kind would be picked first by least-recent use ...
    other = (await live.client.post("/api/v1/workers", json={"workspace_id": ws["id"], "kind": "claude_code"})).json()
    # ... but thread_id routes the turn to the worker that owns the thread.
    [second] = await live.dispatch(turn(ws, "t2", "what was the word?", thread_id=first["thread_id"],
                                        agent_kind="claude_code"))
    assert second["status"] == "dispatched", second
    assert second["worker_id"] == first["worker_id"] != other["id"]
    assert second["thread_id"] == first["thread_id"] and second["turn_id"] != first["turn_id"]
    done = await live.wait_idle(first["worker_id"])
    assert done["thread_id"] == first["thread_id"]
    turns = await live.events("turn.completed", first["worker_id"])
    assert [e.payload["turn_id"] for e in turns] == [first["turn_id"], second["turn_id"]]
    assert not await live.events("turn.started", other["id"])

    # an unknown thread is refused instead of starting a blank one
    [lost] = await live.dispatch(turn(ws, "t3", "hi", thread_id=str(uuid.uuid4())))
    assert lost["status"] == "failed" and lost["error"]["code"] == "THREAD_NOT_FOUND"


async def test_concurrent_twins_with_one_dedupe_key_act_once(live: Live) -> None:
    ws = await live.workspace("epsilon")
    body = {"version": VERSION, "actions": [turn(ws, "twin", "only once please", dedupe_key="same")]}
    r1, r2 = await asyncio.gather(*(live.client.post("/api/v1/ops/dispatch", json=body) for _ in range(2)))
    results = [r1.json()["results"][0], r2.json()["results"][0]]
    assert sorted(r["idempotent_replay"] for r in results) == [False, True]
    acted = next(r for r in results if not r["idempotent_replay"])
    assert acted["status"] == "dispatched", acted
    await live.wait_idle(acted["worker_id"])
    assert len(await live.events("turn.started")) == 1
    assert len(await live.workers()) == 1


async def test_steer_and_interrupt_actions_run_in_order(live: Live) -> None:
    ws = await live.workspace("zeta")
    [first] = await live.dispatch(turn(ws, "long", "a long one [[slow: 20]]"))
    assert first["status"] == "dispatched", first
    await asyncio.sleep(1.0)
    steer, stop = await live.dispatch(
        {"type": "steer_turn", "action_id": "steer", "workspace_id": ws["id"], "worker_id": first["worker_id"],
         "prompt": "and mention bananas"},
        {"type": "interrupt_turn", "action_id": "stop", "workspace_id": ws["id"], "worker_id": first["worker_id"]})
    assert steer["status"] == "dispatched", steer
    assert stop["status"] == "dispatched" and stop["turn_id"] == first["turn_id"], stop
    await live.wait_idle(first["worker_id"], timeout_s=15)
    [late] = await live.dispatch(
        {"type": "interrupt_turn", "action_id": "late", "workspace_id": ws["id"], "worker_id": first["worker_id"]})
    assert late["status"] == "failed" and late["error"]["code"] == "CONFLICT"
    other = await live.workspace("eta")
    [wrong] = await live.dispatch({"type": "steer_turn", "action_id": "wrong-ws", "workspace_id": other["id"],
                                   "worker_id": first["worker_id"], "prompt": "x"})
    assert wrong["status"] == "failed" and wrong["error"]["code"] == "NOT_FOUND"
