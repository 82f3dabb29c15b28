"""The resources API on both databases (manager-ai-mvp-spec.md §1.2 A; issue 5 item 3): quotas per depth per
workspace and node-wide, allocate (409 QUOTA_EXCEEDED with details), idempotent release, usage; concurrent
allocations for the last slot (only one wins); tenancy and bad input."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from overseer.runtime.jobs import JobScheduler
from tests.conftest import bearer


async def job(client: httpx.AsyncClient, headers: dict[str, str], ws: dict[str, Any], **extra: Any) -> dict[str, Any]:
    resp = await client.post("/api/jobs", headers=headers, json={"prompt": "p", "workspace_id": ws["id"], **extra})
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def set_quota(client: httpx.AsyncClient, headers: dict[str, str], ws: dict[str, Any] | None, depth: int,
                    n: int | None) -> httpx.Response:
    return await client.put("/api/resources/quotas", headers=headers, json={"quotas": [
        {"workspace_id": ws["id"] if ws else None, "depth": depth, "max_workers": n}]})


class TestQuotas:
    async def test_defaults_per_depth_then_admin_sets_and_removes_them(self, client: httpx.AsyncClient,
                                                                      admin_headers: dict[str, str], ws_headers: Any,
                                                                      workspace: dict[str, Any]) -> None:
        data = (await client.get("/api/resources/quotas", headers=ws_headers())).json()
        assert data["max_job_depth"] == 5 and data["default_max_workers"] == 4
        mine = [q for q in data["quotas"] if q["workspace_id"] == workspace["id"]]
        assert [(q["depth"], q["max_workers"], q["source"], q["in_use"]) for q in mine] == [
            (d, 4, "default", 0) for d in range(5)]
        assert all(q["max_workers"] is None for q in data["quotas"] if q["source"] == "global")
        assert (await set_quota(client, ws_headers(), workspace, 0, 1)).status_code == 403
        resp = await set_quota(client, admin_headers, workspace, 2, 7)
        assert resp.status_code == 200
        row = next(q for q in resp.json()["quotas"] if q["workspace_id"] == workspace["id"] and q["depth"] == 2)
        assert (row["max_workers"], row["source"]) == (7, "workspace")
        resp = await set_quota(client, admin_headers, None, 2, 9)
        assert next(q for q in resp.json()["quotas"] if q["source"] == "global" and q["depth"] == 2)["max_workers"] == 9
        resp = await set_quota(client, admin_headers, workspace, 2, None)
        row = next(q for q in resp.json()["quotas"] if q["workspace_id"] == workspace["id"] and q["depth"] == 2)
        assert (row["max_workers"], row["source"]) == (4, "default")

    @pytest.mark.parametrize("item", [{"depth": 5, "max_workers": 1}, {"depth": -1, "max_workers": 1},
                                      {"depth": 0, "max_workers": -3}, {"depth": 0, "max_workers": 10**9}])
    async def test_bad_quota_input_is_400(self, client: httpx.AsyncClient, admin_headers: dict[str, str],
                                          item: dict[str, Any]) -> None:
        resp = await client.put("/api/resources/quotas", headers=admin_headers, json={"quotas": [item]})
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["code"] in ("VALIDATION_ERROR", "MAX_DEPTH_EXCEEDED")


class TestAllocate:
    async def test_allocate_moves_the_job_to_running_until_the_quota_is_full(
            self, client: httpx.AsyncClient, admin_headers: dict[str, str], workspace: dict[str, Any]) -> None:
        await set_quota(client, admin_headers, workspace, 0, 2)
        a, b = await job(client, admin_headers, workspace), await job(client, admin_headers, workspace)
        resp = await client.post("/api/resources/allocate", headers=admin_headers,
                                 json={"job_id": a["id"], "depth": 0, "worker_count": 2})
        assert resp.status_code == 201, resp.text
        alloc = resp.json()
        assert (alloc["job_id"], alloc["depth"], alloc["worker_count"], alloc["released_at"]) == (a["id"], 0, 2, None)
        assert (await client.get(f"/api/jobs/{a['id']}", headers=admin_headers)).json()["status"] == "RUNNING"
        resp = await client.post("/api/resources/allocate", headers=admin_headers,
                                 json={"job_id": b["id"], "depth": 0, "worker_count": 1})
        assert resp.status_code == 409
        err = resp.json()["error"]
        assert err["code"] == "QUOTA_EXCEEDED"
        assert {k: err["details"][k] for k in ("depth", "limit", "in_use", "requested", "scope")} == {
            "depth": 0, "limit": 2, "in_use": 2, "requested": 1, "scope": "workspace"}
        assert (await client.get(f"/api/jobs/{b['id']}", headers=admin_headers)).json()["status"] == "PENDING"
        usage = (await client.get("/api/resources/usage", headers=admin_headers)).json()
        assert usage["total_in_use"] == 2
        assert usage["by_workspace"] == [{"workspace_id": workspace["id"], "depth": 0, "in_use": 2, "limit": 2}]
        first = await client.post("/api/resources/release", headers=admin_headers, json={"allocation_id": alloc["id"]})
        assert first.status_code == 200 and first.json()["released_at"] and not first.json()["already_released"]
        again = await client.post("/api/v1/resources/release", headers=admin_headers,
                                  json={"allocation_id": alloc["id"]})
        assert again.status_code == 200 and again.json()["already_released"]
        assert again.json()["released_at"] == first.json()["released_at"]
        assert (await client.get("/api/resources/usage", headers=admin_headers)).json()["total_in_use"] == 0

    async def test_the_node_wide_cap_counts_every_workspace(self, client: httpx.AsyncClient,
                                                            admin_headers: dict[str, str],
                                                            workspace_factory: Callable[..., Any]) -> None:
        w1, w2 = await workspace_factory(), await workspace_factory()
        await set_quota(client, admin_headers, None, 0, 1)
        a, b = await job(client, admin_headers, w1), await job(client, admin_headers, w2)
        ok = await client.post("/api/resources/allocate", headers=admin_headers, json={"job_id": a["id"], "depth": 0})
        assert ok.status_code == 201
        resp = await client.post("/api/resources/allocate", headers=admin_headers, json={"job_id": b["id"], "depth": 0})
        assert resp.status_code == 409 and resp.json()["error"]["details"]["scope"] == "global"

    @pytest.mark.parametrize(("body", "status", "code"), [
        ({"worker_count": 0}, 400, "VALIDATION_ERROR"), ({"worker_count": -2}, 400, "VALIDATION_ERROR"),
        ({"worker_count": 100000}, 400, "VALIDATION_ERROR"), ({"depth": 1}, 400, "VALIDATION_ERROR"),
        ({"depth": 5}, 400, "MAX_DEPTH_EXCEEDED"), ({"job_id": "00000000-0000-0000-0000-000000000001"}, 404, "NOT_FOUND"),
    ])
    async def test_bad_allocations(self, client: httpx.AsyncClient, admin_headers: dict[str, str],
                                   workspace: dict[str, Any], body: dict[str, Any], status: int, code: str) -> None:
        j = await job(client, admin_headers, workspace)
        resp = await client.post("/api/resources/allocate", headers=admin_headers,
                                 json={"job_id": j["id"], "depth": 0, "worker_count": 1, **body})
        assert resp.status_code == status, resp.text
        assert resp.json()["error"]["code"] == code

    async def test_a_finished_job_cannot_allocate(self, client: httpx.AsyncClient, admin_headers: dict[str, str],
                                                  workspace: dict[str, Any]) -> None:
        j = await job(client, admin_headers, workspace)
        await client.post(f"/api/jobs/{j['id']}/cancel", headers=admin_headers)
        resp = await client.post("/api/resources/allocate", headers=admin_headers, json={"job_id": j["id"], "depth": 0})
        assert resp.status_code == 409 and resp.json()["error"]["code"] == "INVALID_STATE_TRANSITION"

    async def test_canceling_a_running_job_releases_what_it_held(self, client: httpx.AsyncClient,
                                                                 admin_headers: dict[str, str],
                                                                 workspace: dict[str, Any]) -> None:
        j = await job(client, admin_headers, workspace)
        await client.post("/api/resources/allocate", headers=admin_headers, json={"job_id": j["id"], "depth": 0})
        await client.post("/api/resources/allocate", headers=admin_headers, json={"job_id": j["id"], "depth": 0})
        assert (await client.get("/api/resources/usage", headers=admin_headers)).json()["total_in_use"] == 2
        await client.post(f"/api/jobs/{j['id']}/cancel", headers=admin_headers)
        detail = (await client.get(f"/api/jobs/{j['id']}", headers=admin_headers)).json()
        assert all(a["released_at"] for a in detail["allocations"]) and len(detail["allocations"]) == 2
        assert (await client.get("/api/resources/usage", headers=admin_headers)).json()["total_in_use"] == 0


class TestConcurrency:
    async def test_two_concurrent_allocations_for_the_last_slot_one_wins(self, client: httpx.AsyncClient,
                                                                         admin_headers: dict[str, str],
                                                                         workspace: dict[str, Any]) -> None:
        for _ in range(3):  # a few rounds: the race must never let both through
            await set_quota(client, admin_headers, workspace, 1, None)
            root = await job(client, admin_headers, workspace)
            kids = [await job(client, admin_headers, workspace, parent_job_id=root["id"]) for _ in range(2)]
            used = (await client.get("/api/resources/usage", headers=admin_headers)).json()["by_workspace"]
            in_use = next((u["in_use"] for u in used if u["depth"] == 1), 0)
            await set_quota(client, admin_headers, workspace, 1, in_use + 1)  # exactly one slot left
            results = await asyncio.gather(*(client.post("/api/resources/allocate", headers=admin_headers,
                                                         json={"job_id": k["id"], "depth": 1}) for k in kids))
            assert sorted(r.status_code for r in results) == [201, 409], [r.text for r in results]
            loser = next(r for r in results if r.status_code == 409).json()["error"]
            assert loser["code"] == "QUOTA_EXCEEDED" and loser["details"]["in_use"] == in_use + 1

    async def test_two_schedulers_never_both_take_the_last_slot(self, client: httpx.AsyncClient,
                                                                admin_headers: dict[str, str],
                                                                workspace: dict[str, Any], app: Any) -> None:
        await set_quota(client, admin_headers, workspace, 0, 1)
        jobs = [await job(client, admin_headers, workspace) for _ in range(4)]

        async def noop(_: uuid.UUID) -> None:
            return None

        schedulers = [JobScheduler(db=app.state.db, settings=app.state.settings, clock=app.state.clock, workers=None,
                                   starter=noop) for _ in range(2)]
        stats = await asyncio.gather(*(s.run_once() for s in schedulers))
        assert sum(s.started for s in stats) == 1
        page = (await client.get("/api/jobs", headers=admin_headers, params={"status": "RUNNING"})).json()
        assert page["total"] == 1 and page["items"][0]["id"] in {j["id"] for j in jobs}
        assert (await client.get("/api/resources/usage", headers=admin_headers)).json()["total_in_use"] == 1


class TestTenancy:
    async def test_other_workspaces_allocations_and_jobs_are_404(self, client: httpx.AsyncClient,
                                                                 admin_headers: dict[str, str], make_token: Any,
                                                                 workspace_factory: Callable[..., Any]) -> None:
        mine_ws, theirs_ws = await workspace_factory(), await workspace_factory()
        theirs = await job(client, admin_headers, theirs_ws)
        alloc = (await client.post("/api/resources/allocate", headers=admin_headers,
                                   json={"job_id": theirs["id"], "depth": 0})).json()
        mine = bearer(make_token("jobs:read", "jobs:write", workspaces=[mine_ws["id"]]))
        resp = await client.post("/api/resources/allocate", headers=mine, json={"job_id": theirs["id"], "depth": 0})
        assert resp.status_code == 404
        resp = await client.post("/api/resources/release", headers=mine, json={"allocation_id": alloc["id"]})
        assert resp.status_code == 404
        usage = (await client.get("/api/resources/usage", headers=mine)).json()
        assert usage["total_in_use"] == 0 and usage["allocations"] == []
        quotas = (await client.get("/api/resources/quotas", headers=mine)).json()["quotas"]
        assert {q["workspace_id"] for q in quotas} == {None, mine_ws["id"]}
