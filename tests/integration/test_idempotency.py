"""Idempotency-Key on state-changing requests (manager-ai-mvp-spec.md §1.1 B)."""

from __future__ import annotations

from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from overseer.app import create_app
from overseer.config import Settings


def _body(tmp_path: Any, name: str) -> dict[str, str]:
    return {"name": name, "root_path": str(tmp_path / name)}


class TestIdempotencyKey:
    async def test_repeat_replays_without_acting_again(self, client: httpx.AsyncClient,
                                                       admin_headers: dict[str, str], tmp_path: Any) -> None:
        headers = {**admin_headers, "Idempotency-Key": "create-alpha"}
        first = await client.post("/api/v1/workspaces", headers=headers, json=_body(tmp_path, "alpha"))
        second = await client.post("/api/v1/workspaces", headers=headers, json=_body(tmp_path, "alpha"))
        assert first.status_code == second.status_code == 201
        assert second.json() == first.json()
        assert second.headers.get("idempotent-replayed") == "true"
        listed = await client.get("/api/v1/workspaces", headers=admin_headers)
        assert len(listed.json()) == 1  # acted once; a real repeat would have been a 409

    async def test_same_key_other_body_is_422(self, client: httpx.AsyncClient, admin_headers: dict[str, str],
                                              tmp_path: Any) -> None:
        headers = {**admin_headers, "Idempotency-Key": "k1"}
        assert (await client.post("/api/v1/workspaces", headers=headers, json=_body(tmp_path, "a"))).status_code == 201
        resp = await client.post("/api/v1/workspaces", headers=headers, json=_body(tmp_path, "b"))
        assert resp.status_code == 422
        assert resp.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
        listed = await client.get("/api/v1/workspaces", headers=admin_headers)
        assert [w["name"] for w in listed.json()] == ["a"]

    async def test_error_responses_are_replayed_too(self, client: httpx.AsyncClient, admin_headers: dict[str, str]
                                                    ) -> None:
        headers = {**admin_headers, "Idempotency-Key": "bad"}
        body = {"name": "x", "root_path": "relative/path"}
        first = await client.post("/api/v1/workspaces", headers=headers, json=body)
        second = await client.post("/api/v1/workspaces", headers=headers, json=body)
        assert first.status_code == second.status_code == 400
        assert second.headers.get("idempotent-replayed") == "true"

    async def test_keys_survive_a_restart(self, settings: Settings, admin_headers: dict[str, str],
                                          tmp_path: Any) -> None:
        headers = {**admin_headers, "Idempotency-Key": "durable"}
        responses = []
        for _ in range(2):  # two app lifetimes over the same database
            app = create_app(settings, migrate_on_start=False, start_runtime=False)
            async with LifespanManager(app) as mgr, httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=mgr.app), base_url="http://test") as c:
                responses.append(await c.post("/api/v1/workspaces", headers=headers, json=_body(tmp_path, "d")))
        assert [r.status_code for r in responses] == [201, 201]
        assert responses[1].headers.get("idempotent-replayed") == "true"
        assert responses[0].json()["id"] == responses[1].json()["id"]

    async def test_without_a_valid_token_the_route_answers(self, client: httpx.AsyncClient) -> None:
        resp = await client.post("/api/v1/workspaces", headers={"Idempotency-Key": "x"}, json={})
        assert resp.status_code == 401
