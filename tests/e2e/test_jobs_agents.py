"""Hierarchical jobs on real agents (issue 5; UC-4, UC-5): the real ``codex`` / ``claude`` binaries against the
scripted model, the whole app served over real HTTP (uvicorn on 127.0.0.1) because the agents call it back:
a job's agent spawns children through the ``overseer`` CLI in its shell and through the ``overseer`` MCP
server, the children run on their own agents, the parent completes after them and usage returns to zero; a
depth-4 job is refused a child (MAX_DEPTH_EXCEEDED in its command output); a crashed agent fails its job and
frees its slot; a canceled job stops its agent.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import select

from overseer.app import create_app
from overseer.config import Settings
from overseer.events.models import Event
from overseer.testing import ScriptedModelServer

pytestmark = [pytest.mark.agents, pytest.mark.both_dbs]  # the allocation path differs on PostgreSQL
TERMINAL = {"COMPLETED", "FAILED", "CANCELED"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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

    async def submit(self, **body: Any) -> dict[str, Any]:
        resp = await self.client.post("/api/jobs", json={"access_mode": "full-access", **body})
        assert resp.status_code == 201, resp.text
        return resp.json()  # type: ignore[no-any-return]

    async def job(self, job_id: str) -> dict[str, Any]:
        resp = await self.client.get(f"/api/jobs/{job_id}")
        assert resp.status_code == 200, resp.text
        return resp.json()  # type: ignore[no-any-return]

    async def wait(self, job_id: str, statuses: set[str] = TERMINAL, timeout_s: float = 120.0) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            job = await self.job(job_id)
            if job["status"] in statuses:
                return job
            assert asyncio.get_running_loop().time() < deadline, f"job {job_id} still {job['status']}: {job}"
            await asyncio.sleep(0.1)

    async def wait_running_turn(self, job_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """The job once it is RUNNING and its turn has started (it carries a ``turn_id``)."""
        running = await self.wait(job_id, {"RUNNING"})
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not running.get("turn_id"):
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.1)
            running = await self.job(job_id)
        return running

    async def usage(self) -> int:
        return (await self.client.get("/api/resources/usage")).json()["total_in_use"]  # type: ignore[no-any-return]

    async def worker_events(self, worker_id: str, event_type: str) -> list[Event]:
        await self.app.state.runtime.components["workers"].flush()
        async with self.app.state.db.read_session() as s:
            return list((await s.execute(select(Event).where(Event.entity_id == worker_id,
                                                             Event.event_type == event_type)
                                         .order_by(Event.id))).scalars())

    async def wait_worker(self, worker_id: str, status: str, timeout_s: float = 30.0) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            w = (await self.client.get(f"/api/v1/workers/{worker_id}")).json()
            if w["status"] == status:
                return w  # type: ignore[no-any-return]
            assert asyncio.get_running_loop().time() < deadline, f"worker {worker_id} still {w['status']}"
            await asyncio.sleep(0.1)


@pytest.fixture
async def live(settings: Settings, scripted_model: ScriptedModelServer, agent_bins: dict[str, str],
               admin_headers: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Live]:
    """The app on a real port with the runtime and the job scheduler; no agent survives it."""
    port = _free_port()
    live_settings = settings.model_copy(update={
        "model_base_url": scripted_model.base_url, "codex_bin": agent_bins["codex"],
        "claude_bin": agent_bins["claude"], "terminate_grace_s": 2.0, "host": "127.0.0.1", "port": port,
        "public_url": f"http://127.0.0.1:{port}"})
    app = create_app(live_settings, migrate_on_start=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=30))
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started or task.done():
            break
        await asyncio.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        async with httpx.AsyncClient(base_url=live_settings.resolved_public_url, headers=admin_headers,
                                     timeout=60) as client:
            yield Live(client, app, tmp_path)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 60)


async def test_a_codex_job_spawns_children_through_the_shell_cli_and_mcp(live: Live) -> None:
    ws = await live.workspace("tree")
    root = await live.submit(workspace_id=ws["id"], prompt=(
        '[[run: overseer job spawn --prompt "child one"]] [[mcp: spawn_job {"prompt": "child two"}]]'))
    done = await live.wait(root["id"], timeout_s=180)
    assert done["status"] == "COMPLETED", done
    kids = {c["prompt"]: c for c in done["children"]}
    outputs = [e.payload for e in await live.worker_events(done["worker_id"], "item.completed")]
    assert set(kids) == {"child one", "child two"}, (done["result"], [o.get("output") for o in outputs])
    for prompt, kid in kids.items():
        child = await live.job(kid["id"])
        assert (child["status"], child["depth"], child["parent_job_id"]) == ("COMPLETED", 1, root["id"])
        assert child["result"] == f"scripted reply: {prompt}"
        assert child["worker_id"] not in (None, done["worker_id"])  # a fresh agent per job
        assert child["completed_at"] <= done["completed_at"]  # the parent completes after its children
    assert done["result"].startswith("Done: called spawn_job")
    assert [t["status"] for t in done["turns"]] == ["completed"]
    assert [a["released_at"] is not None for a in done["allocations"]] == [True]
    assert await live.usage() == 0
    shell = await live.worker_events(done["worker_id"], "item.completed")
    assert any("spawned job" in (e.payload.get("output") or "") for e in shell)
    snapshot = (await live.client.get("/api/v1/ops/snapshot")).json()
    assert {j["id"]: j["depth"] for j in snapshot["jobs"]} == {root["id"]: 0, **{k["id"]: 1 for k in kids.values()}}
    for job_id in (root["id"], *[k["id"] for k in kids.values()]):
        await live.wait_worker((await live.job(job_id))["worker_id"], "TERMINATED")


async def test_a_claude_job_spawns_a_child_through_the_shell_cli(live: Live) -> None:
    ws = await live.workspace("claude-tree")
    root = await live.submit(workspace_id=ws["id"], agent_kind="claude_code",
                             prompt='[[run: overseer job spawn --prompt "claude child"]]')
    done = await live.wait(root["id"], timeout_s=180)
    assert done["status"] == "COMPLETED", done
    [kid] = done["children"]
    child = await live.job(kid["id"])
    assert (child["status"], child["agent_kind"], child["result"]) == ("COMPLETED", "claude_code",
                                                                      "scripted reply: claude child")
    assert await live.usage() == 0


async def test_a_depth_four_job_is_refused_a_child_and_says_so(live: Live) -> None:
    ws = await live.workspace("deep")
    # hold depths 0-3 (quota 0) so only the depth-4 job runs
    resp = await live.client.put("/api/resources/quotas", json={"quotas": [
        {"workspace_id": ws["id"], "depth": d, "max_workers": 0} for d in range(4)]})
    assert resp.status_code == 200
    parent = root = await live.submit(workspace_id=ws["id"], prompt="root")
    for _ in range(3):
        parent = await live.submit(parent_job_id=parent["id"], prompt="middle")
    deep = await live.submit(parent_job_id=parent["id"], prompt='[[run: overseer job spawn --prompt "too deep"]]')
    assert deep["depth"] == 4
    done = await live.wait(deep["id"])
    assert done["status"] == "COMPLETED" and done["children"] == []
    outputs = [e.payload.get("output") or "" for e in await live.worker_events(done["worker_id"], "item.completed")]
    assert any("MAX_DEPTH_EXCEEDED" in o for o in outputs), outputs
    held = (await live.job(root["id"]))["waiting"]
    assert held["kind"] == "quota" and held["limit"] == 0
    assert (await live.client.post(f"/api/jobs/{root['id']}/cancel")).json()["status"] == "CANCELED"
    tree = (await live.client.get(f"/api/jobs/{root['id']}/tree")).json()
    assert [j["status"] for j in tree] == ["CANCELED"] * 4 + ["COMPLETED"]
    assert await live.usage() == 0


async def test_a_crashed_agent_fails_its_job_and_frees_the_slot(live: Live) -> None:
    ws = await live.workspace("crash")
    job = await live.submit(workspace_id=ws["id"], prompt="[[hang]]")
    running = await live.wait_running_turn(job["id"])
    worker = (await live.client.get(f"/api/v1/workers/{running['worker_id']}")).json()
    assert await live.usage() == 1
    os.killpg(worker["pid"], signal.SIGKILL)
    failed = await live.wait(job["id"])
    assert failed["status"] == "FAILED" and "exited" in (failed["error"] or ""), failed
    assert await live.usage() == 0


async def test_canceling_a_running_job_interrupts_its_agent(live: Live) -> None:
    ws = await live.workspace("cancel")
    job = await live.submit(workspace_id=ws["id"], prompt="[[hang]]")
    running = await live.wait_running_turn(job["id"])
    resp = await live.client.post(f"/api/jobs/{job['id']}/cancel", json={"reason": "changed my mind"})
    assert resp.status_code == 200 and resp.json()["status"] == "CANCELED"
    await live.wait_worker(running["worker_id"], "TERMINATED")
    final = await live.job(job["id"])
    assert final["status"] == "CANCELED" and final["cancel_reason"] == "changed my mind"
    assert await live.usage() == 0
