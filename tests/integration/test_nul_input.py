"""Request text holding the NUL character (U+0000) is refused with 400 ``VALIDATION_ERROR`` naming the
field, and nothing is stored, on both databases (PostgreSQL text/JSONB cannot store it; before this
rule a job prompt with NUL was a 500 on PostgreSQL only, and a workspace root_path a 500 on both)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/jobs", {"prompt": "build\u0000"}, "prompt"),
    ("/api/v1/workspaces", {"name": "nul-ws", "root_path": "/tmp/a\u0000b"}, "root_path"),
    ("/api/v1/workspaces", {"name": "nul-ws2", "root_path": "/tmp/ok", "settings": {"k\u0000": "v"}}, "settings"),
])
async def test_nul_in_request_text_is_a_400_and_stores_nothing(
        client: httpx.AsyncClient, admin_headers: dict[str, str], workspace: dict[str, Any],
        path: str, body: dict[str, Any], field: str) -> None:
    if path == "/api/jobs":
        body = {**body, "workspace_id": workspace["id"]}
    before_jobs = (await client.get("/api/jobs", headers=admin_headers)).json()
    before_ws = (await client.get("/api/v1/workspaces", headers=admin_headers)).json()
    resp = await client.post(path, headers=admin_headers, json=body)
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    assert err["code"] == "VALIDATION_ERROR" and field in resp.text and "NUL" in resp.text
    assert (await client.get("/api/jobs", headers=admin_headers)).json() == before_jobs
    assert (await client.get("/api/v1/workspaces", headers=admin_headers)).json() == before_ws


async def test_nul_in_a_dispatch_contract_is_a_contract_violation(
        client: httpx.AsyncClient, admin_headers: dict[str, str], workspace: dict[str, Any]) -> None:
    resp = await client.post("/api/v1/ops/dispatch", headers=admin_headers, json={
        "version": "overseer.dispatch.v1",
        "actions": [{"type": "dispatch_turn", "action_id": "a1", "workspace_id": workspace["id"],
                     "prompt": "hello\u0000world"}]})
    assert resp.status_code == 400, resp.text
    violations = resp.json()["error"]["details"]["violations"]
    assert [(v["path"], v["code"]) for v in violations] == [("$.actions[0].prompt", "INVALID_VALUE")]
    assert "NUL" in violations[0]["message"]
