from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import bearer


class TestCreate:
    async def test_admin_creates_and_lists(self, client: httpx.AsyncClient, admin_headers: dict[str, str],
                                           tmp_path: Any) -> None:
        resp = await client.post("/api/v1/workspaces", headers=admin_headers,
                                 json={"name": "alpha", "root_path": str(tmp_path / "alpha")})
        assert resp.status_code == 201
        assert (tmp_path / "alpha").is_dir()
        listed = await client.get("/api/v1/workspaces", headers=admin_headers)
        assert [w["name"] for w in listed.json()] == ["alpha"]

    async def test_duplicate_name_is_409(self, client: httpx.AsyncClient, admin_headers: dict[str, str],
                                         workspace: dict[str, Any], tmp_path: Any) -> None:
        resp = await client.post("/api/v1/workspaces", headers=admin_headers,
                                 json={"name": workspace["name"], "root_path": str(tmp_path / "x")})
        assert resp.status_code == 409
        assert resp.json()["error"]["code"] == "CONFLICT"

    async def test_unknown_field_is_400(self, client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
        resp = await client.post("/api/v1/workspaces", headers=admin_headers,
                                 json={"name": "a", "root_path": "/tmp/a", "color": "red"})
        assert resp.status_code == 400
        body = resp.json()["error"]
        assert body["code"] == "VALIDATION_ERROR"
        assert body["details"]["fields"][0]["loc"] == ["body", "color"]

    async def test_non_admin_is_403(self, client: httpx.AsyncClient, make_token: Any,
                                    workspace: dict[str, Any]) -> None:
        token = make_token("supervisor:write", workspaces=[workspace["id"]])
        resp = await client.post("/api/v1/workspaces", headers=bearer(token), json={"name": "b", "root_path": "/tmp/b"})
        assert resp.status_code == 403


class TestList:
    async def test_token_sees_only_its_workspaces(self, client: httpx.AsyncClient, make_token: Any,
                                                  workspace_factory: Any) -> None:
        a = await workspace_factory("a")
        b = await workspace_factory("b")
        token = make_token("supervisor:read", workspaces=[a["id"]])
        listed = await client.get("/api/v1/workspaces", headers=bearer(token))
        assert [w["id"] for w in listed.json()] == [a["id"]]
        other = await client.get(f"/api/v1/workspaces/{b['id']}", headers=bearer(token))
        assert other.status_code == 404


class TestPrometheus:
    async def test_metrics_for_an_operator(self, client: httpx.AsyncClient, admin_headers: dict[str, str],
                                           workspace: dict[str, Any], make_token: Any) -> None:
        resp = await client.get("/metrics", headers=admin_headers)
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
        assert 'overseer_workers{status="IDLE"} 0.0' in resp.text and "overseer_pending_approvals 0.0" in resp.text
        tenant = bearer(make_token("supervisor:read", workspaces=[workspace["id"]]))
        assert (await client.get("/metrics", headers=tenant)).status_code == 403
