"""``POST /api/v1/ops/dispatch`` and ``GET /api/v1/ops/contract`` without agents (CM-005, CM-006), on both
databases: an invalid contract is rejected as a whole and changes nothing; tenancy never leaks; a valid
contract on a node without the runtime fails its agent actions one by one, audited in the event log."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from overseer.db.engine import make_engine
from overseer.events.models import Event
from overseer.ops.dispatch_models import DispatchRecord
from overseer.workers.models import Worker
from tests.conftest import bearer

VERSION = "overseer.dispatch.v1"


def turn(ws: dict[str, Any], action_id: str = "a1", **extra: Any) -> dict[str, Any]:
    return {"type": "dispatch_turn", "action_id": action_id, "workspace_id": ws["id"], "prompt": "hi", **extra}


async def query(url: str, fn: Any) -> Any:
    engine = make_engine(url)
    try:
        async with AsyncSession(engine) as s:
            return await fn(s)
    finally:
        await engine.dispose()


async def counts(url: str) -> tuple[int, int, int]:
    """(workers, dispatch records, dispatch.executed events)."""
    async def go(s: AsyncSession) -> tuple[int, int, int]:
        workers = (await s.execute(select(func.count()).select_from(Worker))).scalar_one()
        records = (await s.execute(select(func.count()).select_from(DispatchRecord))).scalar_one()
        events = (await s.execute(select(func.count()).select_from(Event)
                                  .where(Event.event_type == "dispatch.executed"))).scalar_one()
        return workers, records, events
    return await query(url, go)  # type: ignore[no-any-return]


async def _executed(s: AsyncSession) -> list[Event]:
    rows = await s.execute(select(Event).where(Event.event_type == "dispatch.executed").order_by(Event.id))
    return list(rows.scalars())


async def test_contract_schema_is_published(client: httpx.AsyncClient, ws_headers: Any) -> None:
    resp = await client.get("/api/v1/ops/contract", headers=ws_headers("supervisor:read"))
    assert resp.status_code == 200
    schema = resp.json()
    assert schema["$id"] == VERSION and schema["properties"]["version"]["const"] == VERSION
    assert set(schema["$defs"]) >= {"DispatchTurn", "SteerTurn", "InterruptTurn", "AckSignal"}
    assert (await client.get("/api/v1/ops/contract")).status_code == 401


@pytest.mark.parametrize(("body", "codes"), [
    ({"version": "supervisor.dispatch.v1", "actions": []}, ["UNKNOWN_VERSION", "EMPTY_ACTIONS"]),
    ("WS", ["UNKNOWN_FIELD"]),
    ("DUP", ["DUPLICATE_ACTION_ID", "DUPLICATE_DEDUPE_KEY"]),
    ([1, 2, 3], ["WRONG_TYPE"]),
])
async def test_bad_contract_is_400_and_changes_nothing(client: httpx.AsyncClient, db_url: str, workspace: dict[str, Any],
                                                      ws_headers: Any, body: Any, codes: list[str]) -> None:
    if body == "WS":
        body = {"version": VERSION, "actions": [turn(workspace, dedupe_key="k", colour="red")]}
    elif body == "DUP":
        body = {"version": VERSION, "actions": [turn(workspace, dedupe_key="k"), turn(workspace, dedupe_key="k")]}
    resp = await client.post("/api/v1/ops/dispatch", headers=ws_headers(), json=body)
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    assert err["code"] == "CONTRACT_INVALID"
    assert [v["code"] for v in err["details"]["violations"]] == codes
    assert await counts(db_url) == (0, 0, 0)


async def test_body_that_is_not_json(client: httpx.AsyncClient, ws_headers: Any) -> None:
    resp = await client.post("/api/v1/ops/dispatch", headers={**ws_headers(), "content-type": "application/json"},
                             content=b"{nope")
    assert resp.status_code == 400
    [v] = resp.json()["error"]["details"]["violations"]
    assert (v["path"], v["code"]) == ("$", "INVALID_JSON")


async def test_dispatch_needs_supervisor_write(client: httpx.AsyncClient, workspace: dict[str, Any],
                                               ws_headers: Any) -> None:
    resp = await client.post("/api/v1/ops/dispatch", headers=ws_headers("supervisor:read"),
                             json={"version": VERSION, "actions": [turn(workspace)]})
    assert resp.status_code == 403


async def test_other_tenants_workspace_is_a_violation_without_leak(
        client: httpx.AsyncClient, db_url: str, workspace_factory: Any, make_token: Any) -> None:
    mine = await workspace_factory("mine")
    theirs = await workspace_factory("theirs")
    headers = bearer(make_token("supervisor:read", "supervisor:write", workspaces=[mine["id"]]))
    missing = str(uuid.uuid4())
    resp = await client.post("/api/v1/ops/dispatch", headers=headers, json={"version": VERSION, "actions": [
        turn(mine, "ok"), turn(theirs, "other"), {**turn(mine, "ghost"), "workspace_id": missing}]})
    assert resp.status_code == 400
    violations = resp.json()["error"]["details"]["violations"]
    assert [(v["path"], v["code"]) for v in violations] == [
        ("$.actions[1].workspace_id", "WORKSPACE_NOT_FOUND"), ("$.actions[2].workspace_id", "WORKSPACE_NOT_FOUND")]
    # an existing workspace of another tenant reads exactly like one that does not exist
    assert violations[0]["message"].replace(theirs["id"], "X") == violations[1]["message"].replace(missing, "X")
    assert await counts(db_url) == (0, 0, 0)


async def test_valid_contract_without_runtime_fails_per_action_and_is_audited(
        client: httpx.AsyncClient, db_url: str, workspace_factory: Any, admin_headers: dict[str, str]) -> None:
    a = await workspace_factory("a")
    b = await workspace_factory("b")
    body = {"version": VERSION, "actions": [
        turn(a, "a1", dedupe_key="k"),
        turn(b, "b1"),
        {"type": "steer_turn", "action_id": "a2", "workspace_id": a["id"], "worker_id": str(uuid.uuid4()),
         "prompt": "more"},
    ]}
    resp = await client.post("/api/v1/ops/dispatch", headers=admin_headers, json=body)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["version"] == VERSION
    assert [r["action_id"] for r in out["results"]] == ["a1", "b1", "a2"]
    for r in out["results"]:
        assert r["status"] == "failed" and r["error"]["code"] == "RUNTIME_UNAVAILABLE"
        assert r["idempotent_replay"] is False and r["job_id"] is None and r["turn_id"] is None
    assert out["results"][1]["workspace_id"] == b["id"]
    # a failed action releases its dedupe key; one dispatch.executed event per workspace, own results only
    assert await counts(db_url) == (0, 0, 2)
    events = await query(db_url, lambda s: _executed(s))
    by_ws = {str(e.workspace_id): e.payload for e in events}
    assert [r["action_id"] for r in by_ws[a["id"]]["results"]] == ["a1", "a2"]
    assert [r["action_id"] for r in by_ws[b["id"]]["results"]] == ["b1"]
    assert by_ws[a["id"]]["failed"] == 2 and by_ws[a["id"]]["actor"] == "tester"
    assert len({e.entity_id for e in events}) == 1


async def test_ack_signal_action(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    resp = await client.post("/api/v1/ops/dispatch", headers=admin_headers, json={
        "version": VERSION, "actions": [{"type": "ack_signal", "action_id": "s1", "signal_id": "no-such-signal"}]})
    assert resp.status_code == 200, resp.text
    [r] = resp.json()["results"]
    assert r["status"] == "failed" and r["workspace_id"] is None
    assert r["error"]["code"] in {"NOT_FOUND", "NOT_IMPLEMENTED"}
