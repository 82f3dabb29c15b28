"""The jobs API on both databases (issue 5 items 1, 2, 5, 6): submit, list, detail, tree, cancel; depth,
dependencies and cycles; job tokens; tenancy; bad input; and the scheduler's lifecycle with a no-op starter
(no agents: dependencies, parents waiting for children, usage back to zero)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from overseer.events.models import Event
from overseer.runtime.jobs import JobScheduler
from tests.conftest import bearer

Api = Callable[..., Any]


async def submit(client: httpx.AsyncClient, headers: dict[str, str], ws: dict[str, Any] | None, prompt: str = "do it",
                 status: int = 201, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"prompt": prompt, **extra}
    if ws is not None:
        body["workspace_id"] = ws["id"]
    resp = await client.post("/api/jobs", headers=headers, json=body)
    assert resp.status_code == status, resp.text
    return resp.json()  # type: ignore[no-any-return]


@pytest.fixture
async def scheduler(app: Any) -> AsyncIterator[JobScheduler]:
    """A scheduler on the test app's database whose starter does nothing (the job just stays RUNNING)."""
    started: list[uuid.UUID] = []

    async def starter(job_id: uuid.UUID) -> None:
        started.append(job_id)

    s = JobScheduler(db=app.state.db, settings=app.state.settings, clock=app.state.clock, workers=None,
                     starter=starter)
    s.started = started  # type: ignore[attr-defined]
    yield s
    await s.drain()


async def job_events(app: Any, job_id: str, event_type: str) -> list[Event]:
    async with app.state.db.read_session() as s:
        return list((await s.execute(select(Event).where(Event.entity_id == job_id, Event.event_type == event_type)
                                     .order_by(Event.id))).scalars())


class TestSubmit:
    async def test_root_job_is_pending_at_depth_zero_on_both_prefixes(self, client: httpx.AsyncClient,
                                                                      admin_headers: dict[str, str],
                                                                      workspace: dict[str, Any], app: Any) -> None:
        job = await submit(client, admin_headers, workspace, priority=5)
        assert (job["status"], job["depth"], job["parent_job_id"], job["priority"]) == ("PENDING", 0, None, 5)
        assert job["agent_kind"] == "codex" and job["access_mode"] == "default"
        again = (await client.get(f"/api/v1/jobs/{job['id']}", headers=admin_headers)).json()
        assert again["id"] == job["id"] and again["children"] == [] and again["allocations"] == []
        changes = await job_events(app, job["id"], "job.state_changed")
        assert [(e.payload["from"], e.payload["to"]) for e in changes] == [("SUBMITTED", "PENDING")]

    async def test_child_gets_parent_depth_plus_one_and_inherits_kind(self, client: httpx.AsyncClient,
                                                                      admin_headers: dict[str, str],
                                                                      workspace: dict[str, Any]) -> None:
        root = await submit(client, admin_headers, workspace, agent_kind="claude_code", access_mode="full-access")
        child = await submit(client, admin_headers, None, parent_job_id=root["id"])
        assert (child["depth"], child["parent_job_id"], child["workspace_id"]) == (1, root["id"], workspace["id"])
        assert (child["agent_kind"], child["access_mode"]) == ("claude_code", "full-access")
        detail = (await client.get(f"/api/jobs/{root['id']}", headers=admin_headers)).json()
        assert [c["id"] for c in detail["children"]] == [child["id"]]
        tree = (await client.get(f"/api/jobs/{root['id']}/tree", headers=admin_headers)).json()
        assert [j["id"] for j in tree] == [root["id"], child["id"]]

    async def test_depth_five_is_max_depth_exceeded(self, client: httpx.AsyncClient, admin_headers: dict[str, str],
                                                    workspace: dict[str, Any]) -> None:
        parent = await submit(client, admin_headers, workspace)
        for depth in range(1, 5):
            parent = await submit(client, admin_headers, None, parent_job_id=parent["id"], depth=depth)
        assert parent["depth"] == 4
        resp = await client.post("/api/jobs", headers=admin_headers, json={"prompt": "deeper",
                                                                           "parent_job_id": parent["id"]})
        assert resp.status_code == 400
        assert resp.json()["error"]["code"] == "MAX_DEPTH_EXCEEDED"
        assert resp.json()["error"]["details"]["depth"] == 5
        resp = await client.post("/api/jobs", headers=admin_headers,
                                 json={"prompt": "x", "workspace_id": workspace["id"], "depth": 5})
        assert resp.json()["error"]["code"] == "MAX_DEPTH_EXCEEDED"

    @pytest.mark.parametrize("depth", [0, 2, 3])
    async def test_depth_skipping_a_level_is_400(self, client: httpx.AsyncClient, admin_headers: dict[str, str],
                                                 workspace: dict[str, Any], depth: int) -> None:
        root = await submit(client, admin_headers, workspace)
        resp = await client.post("/api/jobs", headers=admin_headers,
                                 json={"prompt": "x", "parent_job_id": root["id"], "depth": depth})
        assert resp.status_code == 400 and resp.json()["error"]["code"] == "VALIDATION_ERROR"
        assert resp.json()["error"]["details"]["expected"] == 1

    async def test_unknown_parent_is_404_and_parent_in_another_workspace_is_400(
            self, client: httpx.AsyncClient, admin_headers: dict[str, str], workspace: dict[str, Any],
            workspace_factory: Callable[..., Any]) -> None:
        resp = await client.post("/api/jobs", headers=admin_headers,
                                 json={"prompt": "x", "workspace_id": workspace["id"], "parent_job_id": str(uuid.uuid4())})
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "NOT_FOUND"
        other = await workspace_factory()
        root = await submit(client, admin_headers, other)
        resp = await client.post("/api/jobs", headers=admin_headers,
                                 json={"prompt": "x", "workspace_id": workspace["id"], "parent_job_id": root["id"]})
        assert resp.status_code == 400 and resp.json()["error"]["code"] == "VALIDATION_ERROR"

    async def test_dependencies_must_exist_share_the_workspace_and_not_close_a_cycle(
            self, client: httpx.AsyncClient, admin_headers: dict[str, str], workspace: dict[str, Any],
            workspace_factory: Callable[..., Any]) -> None:
        a = await submit(client, admin_headers, workspace)
        b = await submit(client, admin_headers, workspace, depends_on=[a["id"]])
        assert b["depends_on"] == [a["id"]]
        detail = (await client.get(f"/api/jobs/{b['id']}", headers=admin_headers)).json()
        assert [d["id"] for d in detail["dependencies"]] == [a["id"]]
        other = await workspace_factory()
        x = await submit(client, admin_headers, other)
        resp = await client.post("/api/jobs", headers=admin_headers,
                                 json={"prompt": "p", "workspace_id": workspace["id"], "depends_on": [x["id"]]})
        assert resp.status_code == 400
        resp = await client.post("/api/jobs", headers=admin_headers,
                                 json={"prompt": "p", "workspace_id": workspace["id"], "depends_on": [str(uuid.uuid4())]})
        assert resp.status_code == 404
        # a child depending on its own parent (or on a job that waits for the parent) would never run
        resp = await client.post("/api/jobs", headers=admin_headers,
                                 json={"prompt": "p", "parent_job_id": a["id"], "depends_on": [a["id"]]})
        assert resp.status_code == 400 and "cycle" in resp.json()["error"]["message"]
        resp = await client.post("/api/jobs", headers=admin_headers,
                                 json={"prompt": "p", "parent_job_id": a["id"], "depends_on": [b["id"]]})
        assert resp.status_code == 400 and "cycle" in resp.json()["error"]["message"]

    @pytest.mark.parametrize("body", [
        {"prompt": ""}, {"prompt": "x", "priority": 10**6}, {"prompt": "x", "depth": -1},
        {"prompt": "x", "agent_kind": "gpt"}, {"prompt": "x", "surprise": 1}, {"prompt": "x", "depends_on": ["nope"]},
    ])
    async def test_bad_input_is_400_in_the_error_format(self, client: httpx.AsyncClient,
                                                        admin_headers: dict[str, str], workspace: dict[str, Any],
                                                        body: dict[str, Any]) -> None:
        resp = await client.post("/api/jobs", headers=admin_headers, json={"workspace_id": workspace["id"], **body})
        assert resp.status_code == 400
        assert resp.json()["error"]["code"] == "VALIDATION_ERROR"

    async def test_scopes_are_required(self, client: httpx.AsyncClient, make_token: Any,
                                       workspace: dict[str, Any]) -> None:
        read_only = bearer(make_token("jobs:read", workspaces=[workspace["id"]]))
        resp = await client.post("/api/jobs", headers=read_only, json={"prompt": "x"})
        assert resp.status_code == 403
        assert (await client.get("/api/jobs")).status_code == 401


class TestJobTokens:
    async def test_a_job_token_spawns_children_of_its_own_job_only(self, client: httpx.AsyncClient,
                                                                   admin_headers: dict[str, str], make_token: Any,
                                                                   workspace: dict[str, Any]) -> None:
        mine = await submit(client, admin_headers, workspace)
        other = await submit(client, admin_headers, workspace)
        token = bearer(make_token("jobs:read", "jobs:write", workspaces=[workspace["id"]], sub=f"job:{mine['id']}",
                                  extra={"job_id": mine["id"]}))
        child = await submit(client, token, None, prompt="child")
        assert (child["parent_job_id"], child["depth"]) == (mine["id"], 1)
        resp = await client.post("/api/jobs", headers=token, json={"prompt": "x", "parent_job_id": other["id"]})
        assert resp.status_code == 403 and resp.json()["error"]["code"] == "FORBIDDEN"
        assert (await client.post(f"/api/jobs/{other['id']}/cancel", headers=token)).status_code == 403
        assert (await client.post(f"/api/jobs/{child['id']}/cancel", headers=token)).json()["status"] == "CANCELED"
        resp = await client.post("/api/resources/allocate", headers=token,
                                 json={"job_id": child["id"], "depth": 1, "worker_count": 1})
        assert resp.status_code == 403

    async def test_a_job_token_reports_progress_on_its_own_job_only(self, client: httpx.AsyncClient,
                                                                    admin_headers: dict[str, str], make_token: Any,
                                                                    workspace: dict[str, Any], app: Any) -> None:
        mine = await submit(client, admin_headers, workspace)
        other = await submit(client, admin_headers, workspace)
        token = bearer(make_token("jobs:read", "jobs:write", workspaces=[workspace["id"]], sub=f"job:{mine['id']}",
                                  extra={"job_id": mine["id"]}))
        resp = await client.post(f"/api/v1/jobs/{mine['id']}/progress", headers=token,
                                 json={"message": "half way", "percent": 50})
        assert resp.status_code == 202, resp.text
        [event] = await job_events(app, mine["id"], "job.progress")
        assert event.payload["message"] == "half way" and event.payload["percent"] == 50
        resp = await client.post(f"/api/v1/jobs/{other['id']}/progress", headers=token, json={"message": "x"})
        assert resp.status_code == 403


class TestListAndTenancy:
    async def test_filters_and_pagination(self, client: httpx.AsyncClient, admin_headers: dict[str, str],
                                          workspace: dict[str, Any]) -> None:
        root = await submit(client, admin_headers, workspace)
        kids = [await submit(client, admin_headers, None, parent_job_id=root["id"], prompt=f"k{i}") for i in range(3)]
        page = (await client.get("/api/jobs", headers=admin_headers, params={"parent_job_id": root["id"],
                                                                            "limit": 2})).json()
        assert page["total"] == 3 and [j["id"] for j in page["items"]] == [k["id"] for k in kids[:2]]
        assert (await client.get("/api/jobs", headers=admin_headers, params={"depth": 0})).json()["total"] == 1
        assert (await client.get("/api/jobs", headers=admin_headers, params={"status": "pending"})).json()["total"] == 4
        assert (await client.get("/api/jobs", headers=admin_headers, params={"roots": True})).json()["total"] == 1
        assert (await client.get("/api/jobs", headers=admin_headers, params={"status": "bogus"})).status_code == 400
        assert (await client.get("/api/jobs", headers=admin_headers, params={"limit": 0})).status_code == 400

    async def test_another_workspaces_job_is_404_and_never_listed(self, client: httpx.AsyncClient,
                                                                 admin_headers: dict[str, str], ws_headers: Any,
                                                                 workspace_factory: Callable[..., Any]) -> None:
        other = await workspace_factory()
        theirs = await submit(client, admin_headers, other)
        mine = ws_headers()
        for method, path in [("GET", f"/api/jobs/{theirs['id']}"), ("GET", f"/api/jobs/{theirs['id']}/tree"),
                             ("POST", f"/api/jobs/{theirs['id']}/cancel")]:
            resp = await client.request(method, path, headers=mine)
            assert resp.status_code == 404, (path, resp.text)
        assert (await client.get("/api/jobs", headers=mine)).json()["total"] == 0
        resp = await client.post("/api/jobs", headers=mine, json={"prompt": "x", "parent_job_id": theirs["id"]})
        assert resp.status_code == 404
        resp = await client.post("/api/jobs", headers=mine, json={"prompt": "x", "workspace_id": other["id"]})
        assert resp.status_code == 404


class TestCancel:
    async def test_cancel_is_idempotent_cascades_and_completed_is_409(self, client: httpx.AsyncClient,
                                                                     admin_headers: dict[str, str],
                                                                     workspace: dict[str, Any], app: Any,
                                                                     scheduler: JobScheduler) -> None:
        root = await submit(client, admin_headers, workspace)
        child = await submit(client, admin_headers, None, parent_job_id=root["id"])
        resp = await client.post(f"/api/jobs/{root['id']}/cancel", headers=admin_headers, json={"reason": "enough"})
        assert resp.status_code == 200 and resp.json()["status"] == "CANCELED"
        kid = (await client.get(f"/api/jobs/{child['id']}", headers=admin_headers)).json()
        assert kid["status"] == "CANCELED" and "enough" in kid["cancel_reason"]
        assert (await client.post(f"/api/jobs/{root['id']}/cancel", headers=admin_headers)).status_code == 200
        done = await submit(client, admin_headers, workspace)
        await scheduler.run_once()
        await scheduler.finish_turn(uuid.UUID(done["id"]), status="completed", final_message="ok")
        await scheduler.run_once()
        resp = await client.post(f"/api/jobs/{done['id']}/cancel", headers=admin_headers)
        assert resp.status_code == 409 and resp.json()["error"]["code"] == "INVALID_STATE_TRANSITION"


class TestLifecycle:
    async def test_dependency_order_parent_waits_for_children_and_usage_returns_to_zero(
            self, client: httpx.AsyncClient, admin_headers: dict[str, str], workspace: dict[str, Any], app: Any,
            scheduler: JobScheduler) -> None:
        a = await submit(client, admin_headers, workspace, prompt="a")
        b = await submit(client, admin_headers, workspace, prompt="b", depends_on=[a["id"]])
        await scheduler.run_once()

        async def job(j: dict[str, Any]) -> dict[str, Any]:
            return (await client.get(f"/api/jobs/{j['id']}", headers=admin_headers)).json()  # type: ignore[no-any-return]

        assert (await job(a))["status"] == "RUNNING" and len((await job(a))["allocations"]) == 1
        waiting_b = await job(b)
        assert waiting_b["status"] == "PENDING" and waiting_b["waiting"]["kind"] == "dependencies"
        child = await submit(client, admin_headers, None, parent_job_id=a["id"], prompt="a.1")
        await scheduler.finish_turn(uuid.UUID(a["id"]), status="completed", final_message="a done")
        await scheduler.run_once()
        a_now = await job(a)
        assert a_now["status"] == "RUNNING" and a_now["waiting"]["kind"] == "children"
        assert a_now["allocations"][0]["released_at"] is not None  # a waiting parent holds no slot
        assert (await job(child))["status"] == "RUNNING"
        await scheduler.finish_turn(uuid.UUID(child["id"]), status="completed", final_message="child done")
        await scheduler.run_once()
        a_done = await job(a)
        assert (a_done["status"], a_done["result"]) == ("COMPLETED", "a done")
        await scheduler.run_once()
        assert (await job(b))["status"] == "RUNNING"
        await scheduler.finish_turn(uuid.UUID(b["id"]), status="completed", final_message="b done")
        await scheduler.run_once()
        assert (await job(b))["status"] == "COMPLETED"
        usage = (await client.get("/api/resources/usage", headers=admin_headers)).json()
        assert usage["total_in_use"] == 0 and usage["allocations"] == []
        waits = await job_events(app, b["id"], "job.waiting")
        assert len(waits) == 1 and waits[0].payload["kind"] == "dependencies"  # once per reason change

    async def test_failed_dependency_cancels_dependents_and_a_failed_child_fails_the_parent(
            self, client: httpx.AsyncClient, admin_headers: dict[str, str], workspace: dict[str, Any],
            scheduler: JobScheduler) -> None:
        a = await submit(client, admin_headers, workspace, prompt="a")
        b = await submit(client, admin_headers, workspace, prompt="b", depends_on=[a["id"]])
        kid = await submit(client, admin_headers, None, parent_job_id=a["id"])
        await scheduler.run_once()
        await scheduler.finish_turn(uuid.UUID(kid["id"]), status="failed", error="boom")
        await scheduler.finish_turn(uuid.UUID(a["id"]), status="completed", final_message="a done")
        await scheduler.run_once()
        await scheduler.run_once()
        got = {j["id"]: j for j in (await client.get("/api/jobs", headers=admin_headers)).json()["items"]}
        assert got[kid["id"]]["status"] == "FAILED" and got[kid["id"]]["error"] == "boom"
        assert got[a["id"]]["status"] == "FAILED" and kid["id"] in got[a["id"]]["error"]
        assert got[b["id"]]["status"] == "CANCELED" and a["id"] in got[b["id"]]["cancel_reason"]
        assert (await client.get("/api/resources/usage", headers=admin_headers)).json()["total_in_use"] == 0

    async def test_a_failed_turn_cancels_unfinished_descendants(self, client: httpx.AsyncClient,
                                                                admin_headers: dict[str, str],
                                                                workspace: dict[str, Any],
                                                                scheduler: JobScheduler) -> None:
        a = await submit(client, admin_headers, workspace)
        kid = await submit(client, admin_headers, None, parent_job_id=a["id"])
        await scheduler.run_once()
        await scheduler.finish_turn(uuid.UUID(a["id"]), status="failed", error="agent process exited")
        got = (await client.get(f"/api/jobs/{kid['id']}", headers=admin_headers)).json()
        assert got["status"] == "CANCELED"
        assert (await client.get("/api/resources/usage", headers=admin_headers)).json()["total_in_use"] == 0

    async def test_jobs_appear_in_the_ops_snapshot_with_blockers_and_quota_use(
            self, client: httpx.AsyncClient, admin_headers: dict[str, str], workspace: dict[str, Any],
            scheduler: JobScheduler) -> None:
        put = await client.put("/api/resources/quotas", headers=admin_headers,
                               json={"quotas": [{"workspace_id": workspace["id"], "depth": 0, "max_workers": 1}]})
        assert put.status_code == 200, put.text
        first = await submit(client, admin_headers, workspace, prompt="first")
        second = await submit(client, admin_headers, workspace, prompt="second")
        await scheduler.run_once()
        snap = (await client.get("/api/v1/ops/snapshot", headers=admin_headers)).json()
        jobs = {j["id"]: j for j in snap["jobs"]}
        assert jobs[first["id"]]["status"] == "RUNNING"
        assert jobs[first["id"]]["quota"] == {"depth": 0, "in_use": 1, "limit": 1, "global_cap": None}
        blocker = jobs[second["id"]]["blockers"][0]
        assert blocker["kind"] == "quota" and blocker["limit"] == 1 and "Quota exceeded" in blocker["reason"]


class TestRecovery:
    async def _running_on_worker(self, client: httpx.AsyncClient, admin_headers: dict[str, str],
                                 workspace: dict[str, Any], app: Any, scheduler: JobScheduler,
                                 worker_status: str) -> tuple[dict[str, Any], uuid.UUID]:
        from overseer.jobs.models import Job
        from overseer.workers.models import Worker

        job = await submit(client, admin_headers, workspace)
        await scheduler.run_once()
        worker_id = uuid.uuid4()
        async with app.state.db.session() as s:
            s.add(Worker(id=worker_id, workspace_id=uuid.UUID(workspace["id"]), kind="codex", status=worker_status,
                         config={}, worker_metadata={}))
            await s.flush()
            row = await s.get(Job, uuid.UUID(job["id"]))
            row.worker_id, row.turn_id = worker_id, "turn-1"
        return job, worker_id

    async def test_a_restart_fails_running_jobs_whose_agent_is_gone(self, client: httpx.AsyncClient,
                                                                    admin_headers: dict[str, str],
                                                                    workspace: dict[str, Any], app: Any,
                                                                    scheduler: JobScheduler) -> None:
        job, _ = await self._running_on_worker(client, admin_headers, workspace, app, scheduler, "IDLE")
        waiting_parent = await submit(client, admin_headers, workspace)
        await submit(client, admin_headers, None, parent_job_id=waiting_parent["id"])
        await scheduler.run_once()
        await scheduler.finish_turn(uuid.UUID(waiting_parent["id"]), status="completed", final_message="ok")
        fresh = JobScheduler(db=app.state.db, settings=app.state.settings, clock=app.state.clock, workers=None,
                             starter=scheduler.starter)
        await fresh.reconcile_after_restart()
        got = (await client.get(f"/api/jobs/{job['id']}", headers=admin_headers)).json()
        assert got["status"] == "FAILED" and "restart" in got["error"]
        assert all(a["released_at"] for a in got["allocations"])
        parent = (await client.get(f"/api/jobs/{waiting_parent['id']}", headers=admin_headers)).json()
        assert parent["status"] == "RUNNING" and parent["waiting"]["kind"] == "children"  # re-adopted

    async def test_a_paused_worker_releases_its_jobs_slot(self, client: httpx.AsyncClient,
                                                          admin_headers: dict[str, str], workspace: dict[str, Any],
                                                          app: Any, scheduler: JobScheduler) -> None:
        job, _ = await self._running_on_worker(client, admin_headers, workspace, app, scheduler, "PAUSED")
        await scheduler.run_once()
        got = (await client.get(f"/api/jobs/{job['id']}", headers=admin_headers)).json()
        assert got["status"] == "RUNNING" and got["waiting"]["kind"] == "worker_paused"
        assert (await client.get("/api/resources/usage", headers=admin_headers)).json()["total_in_use"] == 0

    async def test_a_crashed_worker_fails_its_job(self, client: httpx.AsyncClient, admin_headers: dict[str, str],
                                                  workspace: dict[str, Any], app: Any,
                                                  scheduler: JobScheduler) -> None:
        job, _ = await self._running_on_worker(client, admin_headers, workspace, app, scheduler, "TERMINATED")
        await scheduler.run_once()
        got = (await client.get(f"/api/jobs/{job['id']}", headers=admin_headers)).json()
        assert got["status"] == "FAILED" and "agent lost" in got["error"]
        assert (await client.get("/api/resources/usage", headers=admin_headers)).json()["total_in_use"] == 0
