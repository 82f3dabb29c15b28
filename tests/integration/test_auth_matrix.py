"""Every authenticated route, walked from the OpenAPI document, with six kinds of bad credentials
(issue 2 "Tests"): no token, an expired token, a token signed with another key, ``alg: none``, a
token lacking the scope, and a token of another workspace: 401/401/401/401/403/404.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from overseer.events import log as event_log
from overseer.ops.models import OpenQuestion, PendingApproval
from overseer.workers.models import Worker
from tests.conftest import bearer

NO_SCOPE_NEEDED = {("GET", "/api/v1/workspaces"), ("GET", "/api/v1/workspaces/{workspace_id}")}
BODIES: dict[str, Any] = {  # a valid body, so that a 404 is not hidden behind a 400
    "/api/v1/supervisors/{supervisor_id}/teams": {"name": "x"},
    "/api/v1/teams/{team_id}/members": {"agent_id": "{agent_id}", "role": "MEMBER"},
    "/api/v1/workers/{worker_id}/turns": {"prompt": "x"},
    "/api/v1/workers/{worker_id}/steer": {"prompt": "x"},
    "/api/v1/ops/approvals/{approval_id}": {"decision": "accept"},
    "/api/v1/ops/questions/{question_id}/answer": {"answers": {"q": "a"}},
}
PUBLIC_PREFIXES = ("/healthz", "/auth/", "/static", "/docs", "/openapi.json", "/redoc")


def _alg_none(claims: dict[str, Any]) -> str:
    def b64(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


@pytest.fixture
async def objects(app: Any, client: httpx.AsyncClient, workspace: dict[str, Any], ws_headers: Any
                  ) -> dict[str, str]:
    """Real objects of workspace A, one per kind of path id."""
    h = ws_headers()
    sup = (await client.post("/api/v1/supervisors", headers=h, json={"name": "s"})).json()
    team = (await client.post(f"/api/v1/supervisors/{sup['id']}/teams", headers=h, json={"name": "t"})).json()
    ws_id = uuid.UUID(workspace["id"])
    worker_id, approval_id, question_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with app.state.db.session() as s:
        s.add(Worker(id=worker_id, workspace_id=ws_id, kind="codex"))
        await s.flush()
        s.add(PendingApproval(id=approval_id, workspace_id=ws_id, worker_id=worker_id, request_id="1", kind="command"))
        s.add(OpenQuestion(id=question_id, workspace_id=ws_id, worker_id=worker_id, request_id="2", questions=[]))
        await event_log.append(s, workspace_id=ws_id, event_type="approval.requested", entity_type="worker",
                               entity_id=worker_id, payload={"approval_id": str(approval_id), "thread_id": "th"})
    return {"workspace_id": workspace["id"], "supervisor_id": sup["id"], "id": sup["id"], "team_id": team["id"],
            "worker_id": str(worker_id), "agent_id": str(worker_id), "approval_id": str(approval_id),
            "question_id": str(question_id), "signal_id": f"needs_approval:{approval_id}"}


def _routes(app: Any) -> list[tuple[str, str]]:
    out = []
    for path, ops in app.openapi()["paths"].items():
        for method, op in ops.items():
            if path.startswith(PUBLIC_PREFIXES) or path == "/" or not op.get("security"):
                continue
            out.append((method.upper(), path))
    return out


def _fill(path: str, objects: dict[str, str]) -> tuple[str, bool]:
    """The path with A's real object ids; False when some id had to be made up."""
    real = True

    def sub(m: re.Match[str]) -> str:
        nonlocal real
        name = m.group(1)
        if name in objects:
            return objects[name]
        real = False
        return str(uuid.uuid4())
    return re.sub(r"\{(\w+)\}", sub, path), real


async def test_every_route_rejects_bad_credentials(app: Any, client: httpx.AsyncClient, objects: dict[str, str],
                                                   make_token: Any, workspace_factory: Any) -> None:
    other = await workspace_factory()
    all_scopes = ("supervisor:read", "supervisor:write", "jobs:read", "jobs:write")
    a_id = objects["workspace_id"]
    cases = {
        "none": ({}, 401),
        "expired": (bearer(make_token(*all_scopes, workspaces=[a_id], ttl=timedelta(seconds=-60))), 401),
        "other key": (bearer(make_token(*all_scopes, workspaces=[a_id], key="x" * 40)), 401),
        "alg none": (bearer(_alg_none({"sub": "x", "scopes": list(all_scopes), "workspace_id": a_id,
                                       "exp": 9999999999})), 401),
        "no scope": (bearer(make_token(workspaces=[a_id])), 403),
        "other workspace": (bearer(make_token(*all_scopes, workspaces=[other["id"]])), 404),
    }
    routes = _routes(app)
    assert len(routes) > 30, routes
    failures = []
    for method, template in routes:
        path, real_ids = _fill(template, objects)
        for name, (headers, expected) in cases.items():
            if name == "no scope" and (method, template) in NO_SCOPE_NEEDED:
                continue
            if name == "other workspace" and ("{" not in template or not real_ids):
                continue  # only routes naming A's objects can leak them
            body = json.loads(_fill(json.dumps(BODIES.get(template, {})), objects)[0])
            resp = await client.request(method, path, headers=headers, json=body if method != "GET" else None)
            if resp.status_code != expected:
                failures.append(f"{method} {template} [{name}]: {resp.status_code} {resp.text[:120]}")
            else:
                assert resp.json()["error"]["code"], resp.text
    assert not failures, "\n".join(failures)
