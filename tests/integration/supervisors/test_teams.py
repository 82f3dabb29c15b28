"""Teams and membership (TKT-001 "Teams can be created and agents assigned"; issue item 8) on every backend.

Rules: an agent (a worker id) of the team's workspace is an active member of at most one team (409
naming the other); leaving sets ``left_at`` and keeps the row; another workspace's team is 404.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from overseer.clock import ManualClock
from overseer.db.engine import Database
from overseer.events.models import Event
from overseer.supervisors import repository
from overseer.workers.models import Worker
from tests.conftest import bearer

Headers = dict[str, str]
TEAMS = "/api/v1/teams"


@pytest.fixture
def worker(db: Database, workspace: dict[str, Any]) -> Callable[..., Any]:
    """Insert a worker row (an agent) in ``workspace`` or the given one; returns its id."""

    async def _make(workspace_id: str | None = None) -> str:
        async with db.session() as session:
            row = Worker(id=uuid.uuid4(), workspace_id=uuid.UUID(workspace_id or workspace["id"]))
            session.add(row)
        return str(row.id)

    return _make


@pytest.fixture
async def supervisor(client: httpx.AsyncClient, headers: Headers) -> dict[str, Any]:
    resp = await client.post("/api/v1/supervisors", headers=headers, json={"name": "boss"})
    assert resp.status_code == 201
    return resp.json()  # type: ignore[no-any-return]


@pytest.fixture
def team_factory(client: httpx.AsyncClient, headers: Headers, supervisor: dict[str, Any],
                 clock: ManualClock) -> Callable[..., Any]:
    async def _make(name: str = "team", *, sup: dict[str, Any] | None = None, h: Headers | None = None,
                    **body: Any) -> dict[str, Any]:
        clock.advance(1)  # keeps creation order observable
        resp = await client.post(f"/api/v1/supervisors/{(sup or supervisor)['id']}/teams", headers=h or headers,
                                 json={"name": name, **body})
        assert resp.status_code == 201, resp.text
        return resp.json()  # type: ignore[no-any-return]

    return _make


def assert_error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()["error"]
    assert body["code"] == code
    return body  # type: ignore[no-any-return]


async def team_events(db: Database, team_id: str) -> list[tuple[str, dict[str, Any]]]:
    async with db.read_session() as session:
        rows = await session.execute(select(Event.event_type, Event.payload)
                                     .where(Event.entity_type == "team", Event.entity_id == team_id)
                                     .order_by(Event.id))
        return [(t, p) for t, p in rows.all()]


class TestTeams:
    async def test_create_list_get_update_delete(self, client: httpx.AsyncClient, db: Database, headers: Headers,
                                                 supervisor: dict[str, Any], team_factory: Callable[..., Any],
                                                 workspace: dict[str, Any]) -> None:
        t1 = await team_factory("alpha", objective="ship it", description="d", config={"x": 1})
        assert t1["supervisor_id"] == supervisor["id"] and t1["workspace_id"] == workspace["id"]
        assert (t1["name"], t1["objective"], t1["description"], t1["config"]) == ("alpha", "ship it", "d", {"x": 1})
        t2 = await team_factory("beta")
        url = f"/api/v1/supervisors/{supervisor['id']}/teams"
        page = (await client.get(url, headers=headers)).json()
        assert [t["id"] for t in page["items"]] == [t1["id"], t2["id"]] and page["total"] == 2
        page = (await client.get(url, headers=headers, params={"limit": 1, "offset": 1})).json()
        assert [t["id"] for t in page["items"]] == [t2["id"]]
        assert (await client.get(f"{TEAMS}/{t1['id']}", headers=headers)).json() == t1

        resp = await client.patch(f"{TEAMS}/{t1['id']}", headers=headers, json={"objective": None, "name": "a2"})
        assert resp.status_code == 200
        assert (resp.json()["name"], resp.json()["objective"], resp.json()["description"]) == ("a2", None, "d")

        assert (await client.delete(f"{TEAMS}/{t1['id']}", headers=headers)).status_code == 204
        assert_error(await client.get(f"{TEAMS}/{t1['id']}", headers=headers), 404, "NOT_FOUND")
        assert [t for t, _ in await team_events(db, t1["id"])] == ["team.created", "team.updated", "team.deleted"]

    async def test_bad_input_is_400_and_changes_nothing(self, client: httpx.AsyncClient, headers: Headers,
                                                        supervisor: dict[str, Any],
                                                        team_factory: Callable[..., Any]) -> None:
        url = f"/api/v1/supervisors/{supervisor['id']}/teams"
        for body in ({}, {"name": ""}, {"name": "x" * 256}, {"name": 1}, {"name": "x", "members": []},
                     {"name": "x", "config": "y"}):
            assert_error(await client.post(url, headers=headers, json=body), 400, "VALIDATION_ERROR")
        assert (await client.get(url, headers=headers)).json()["total"] == 0
        team = await team_factory("keep")
        for patch in ({"name": None}, {"config": None}, {"supervisor_id": str(uuid.uuid4())}, {"name": "x" * 256}):
            assert_error(await client.patch(f"{TEAMS}/{team['id']}", headers=headers, json=patch), 400,
                         "VALIDATION_ERROR")
        assert (await client.get(f"{TEAMS}/{team['id']}", headers=headers)).json() == team
        assert_error(await client.get(f"{TEAMS}/not-a-uuid", headers=headers), 400, "VALIDATION_ERROR")
        assert_error(await client.post(f"/api/v1/supervisors/{uuid.uuid4()}/teams", headers=headers,
                                       json={"name": "x"}), 404, "NOT_FOUND")

    async def test_scopes(self, client: httpx.AsyncClient, ws_headers: Callable[..., Headers],
                          team_factory: Callable[..., Any]) -> None:
        team = await team_factory()
        read_only = ws_headers("supervisor:read")
        assert (await client.get(f"{TEAMS}/{team['id']}", headers=read_only)).status_code == 200
        assert_error(await client.patch(f"{TEAMS}/{team['id']}", headers=read_only, json={"name": "x"}), 403,
                     "FORBIDDEN")
        assert_error(await client.delete(f"{TEAMS}/{team['id']}", headers=read_only), 403, "FORBIDDEN")
        assert_error(await client.get(f"{TEAMS}/{team['id']}", headers=ws_headers("supervisor:write")), 403,
                     "FORBIDDEN")


class TestMembers:
    async def test_join_leave_and_history(self, client: httpx.AsyncClient, db: Database, headers: Headers,
                                          team_factory: Callable[..., Any], worker: Callable[..., Any],
                                          clock: ManualClock) -> None:
        team = await team_factory()
        lead, member = await worker(), await worker()
        url = f"{TEAMS}/{team['id']}/members"
        resp = await client.post(url, headers=headers, json={"agent_id": lead, "role": "LEAD", "metadata": {"a": 1}})
        assert resp.status_code == 201
        joined = resp.json()
        assert (joined["agent_id"], joined["role"], joined["left_at"], joined["metadata"]) == (lead, "LEAD", None,
                                                                                                {"a": 1})
        assert joined["joined_at"].replace("Z", "+00:00") == clock.now().isoformat()
        clock.advance(5)
        assert (await client.post(url, headers=headers, json={"agent_id": member})).json()["role"] == "MEMBER"

        clock.advance(5)
        left = await client.delete(f"{url}/{lead}", headers=headers)
        assert left.status_code == 200
        assert left.json()["left_at"].replace("Z", "+00:00") == clock.now().isoformat()

        active = (await client.get(url, headers=headers)).json()
        assert [m["agent_id"] for m in active["items"]] == [member] and active["total"] == 1
        everyone = (await client.get(url, headers=headers, params={"include_past": "true"})).json()
        assert [m["agent_id"] for m in everyone["items"]] == [lead, member] and everyone["total"] == 2

        assert_error(await client.delete(f"{url}/{lead}", headers=headers), 404, "NOT_FOUND")  # already left
        clock.advance(5)
        assert (await client.post(url, headers=headers, json={"agent_id": lead})).status_code == 201  # rejoin
        history = (await client.get(url, headers=headers, params={"include_past": True})).json()["items"]
        assert [(m["agent_id"], m["left_at"] is None) for m in history] == [
            (lead, False), (member, True), (lead, True)]
        assert [t for t, _ in await team_events(db, team["id"])] == [
            "team.created", "team.member_added", "team.member_added", "team.member_removed", "team.member_added"]

    async def test_an_agent_is_active_in_at_most_one_team(self, client: httpx.AsyncClient, headers: Headers,
                                                          team_factory: Callable[..., Any],
                                                          worker: Callable[..., Any]) -> None:
        first, second = await team_factory("first"), await team_factory("second")
        agent = await worker()
        assert (await client.post(f"{TEAMS}/{first['id']}/members", headers=headers,
                                  json={"agent_id": agent})).status_code == 201
        for team in (second, first):
            body = assert_error(await client.post(f"{TEAMS}/{team['id']}/members", headers=headers,
                                                  json={"agent_id": agent}), 409, "CONFLICT")
            assert body["details"]["team_id"] == first["id"] and body["details"]["team_name"] == "first"
            assert "first" in body["message"]
        assert (await client.get(f"{TEAMS}/{second['id']}/members", headers=headers,
                                 params={"include_past": True})).json()["total"] == 0
        await client.delete(f"{TEAMS}/{first['id']}/members/{agent}", headers=headers)
        assert (await client.post(f"{TEAMS}/{second['id']}/members", headers=headers,
                                  json={"agent_id": agent})).status_code == 201

    async def test_the_unique_index_backs_the_rule_when_the_check_is_raced(
            self, client: httpx.AsyncClient, headers: Headers, team_factory: Callable[..., Any],
            worker: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
        first, second = await team_factory("first"), await team_factory("second")
        agent = await worker()
        await client.post(f"{TEAMS}/{first['id']}/members", headers=headers, json={"agent_id": agent})

        async def nobody(*_: Any) -> None:  # as if a concurrent request had not committed yet
            return None

        monkeypatch.setattr(repository, "active_membership", nobody)
        body = assert_error(await client.post(f"{TEAMS}/{second['id']}/members", headers=headers,
                                              json={"agent_id": agent}), 409, "CONFLICT")
        assert body["details"]["agent_id"] == agent
        assert (await client.get(f"{TEAMS}/{second['id']}/members", headers=headers,
                                 params={"include_past": True})).json()["total"] == 0

    async def test_deleting_a_team_frees_its_agents(self, client: httpx.AsyncClient, db: Database,
                                                    headers: Headers, team_factory: Callable[..., Any],
                                                    worker: Callable[..., Any]) -> None:
        doomed, other = await team_factory("doomed"), await team_factory("other")
        agent = await worker()
        await client.post(f"{TEAMS}/{doomed['id']}/members", headers=headers, json={"agent_id": agent})
        assert (await client.delete(f"{TEAMS}/{doomed['id']}", headers=headers)).status_code == 204
        assert (await team_events(db, doomed["id"]))[-1][1]["released_agent_ids"] == [agent]
        assert (await client.post(f"{TEAMS}/{other['id']}/members", headers=headers,
                                  json={"agent_id": agent})).status_code == 201

    async def test_the_agent_must_be_a_worker_of_the_teams_workspace(
            self, client: httpx.AsyncClient, admin_headers: Headers, team_factory: Callable[..., Any],
            worker: Callable[..., Any], workspace_factory: Any) -> None:
        team = await team_factory()
        elsewhere = await worker((await workspace_factory())["id"])
        url = f"{TEAMS}/{team['id']}/members"
        for agent in (elsewhere, str(uuid.uuid4())):
            body = assert_error(await client.post(url, headers=admin_headers, json={"agent_id": agent}), 400,
                                "VALIDATION_ERROR")
            assert body["details"]["fields"][0]["loc"] == ["body", "agent_id"]
        assert (await client.get(url, headers=admin_headers, params={"include_past": True})).json()["total"] == 0

    async def test_bad_member_input_is_400(self, client: httpx.AsyncClient, headers: Headers,
                                           team_factory: Callable[..., Any], worker: Callable[..., Any]) -> None:
        team = await team_factory()
        agent = await worker()
        url = f"{TEAMS}/{team['id']}/members"
        for body in ({}, {"agent_id": "nope"}, {"agent_id": agent, "role": "BOSS"}, {"agent_id": agent, "x": 1},
                     {"agent_id": agent, "metadata": 3}, {"agent_id": 7}):
            assert_error(await client.post(url, headers=headers, json=body), 400, "VALIDATION_ERROR")
        assert_error(await client.get(url, headers=headers, params={"include_past": "perhaps"}), 400,
                     "VALIDATION_ERROR")
        assert_error(await client.delete(f"{url}/not-a-uuid", headers=headers), 400, "VALIDATION_ERROR")
        assert_error(await client.delete(f"{url}/{agent}", headers=headers), 404, "NOT_FOUND")
        assert (await client.get(url, headers=headers, params={"include_past": True})).json()["total"] == 0


class TestTenancy:
    async def test_another_workspaces_team_is_404_on_every_route(
            self, client: httpx.AsyncClient, db: Database, admin_headers: Headers, headers: Headers,
            team_factory: Callable[..., Any], worker: Callable[..., Any], workspace_factory: Any) -> None:
        other = await workspace_factory()
        their_sup = (await client.post("/api/v1/supervisors", headers=admin_headers,
                                       json={"name": "theirs", "workspace_id": other["id"]})).json()
        theirs = await team_factory("theirs", sup=their_sup, h=admin_headers)
        their_agent = await worker(other["id"])
        await client.post(f"{TEAMS}/{theirs['id']}/members", headers=admin_headers, json={"agent_id": their_agent})
        my_agent = await worker()
        for method, suffix, body in [
            ("GET", "", None), ("PATCH", "", {"name": "mine"}), ("DELETE", "", None),
            ("GET", "/members", None), ("POST", "/members", {"agent_id": my_agent}),
            ("DELETE", f"/members/{their_agent}", None),
        ]:
            resp = await client.request(method, f"{TEAMS}/{theirs['id']}{suffix}", headers=headers, json=body)
            assert_error(resp, 404, "NOT_FOUND")
        assert [t for t, _ in await team_events(db, theirs["id"])] == ["team.created", "team.member_added"]
        members = (await client.get(f"{TEAMS}/{theirs['id']}/members", headers=admin_headers)).json()
        assert [m["agent_id"] for m in members["items"]] == [their_agent]

    async def test_another_workspaces_agent_cannot_be_named_even_by_a_two_workspace_token(
            self, client: httpx.AsyncClient, make_token: Any, team_factory: Callable[..., Any],
            worker: Callable[..., Any], workspace: dict[str, Any], workspace_factory: Any) -> None:
        other = await workspace_factory()
        both = bearer(make_token("supervisor:write", "supervisor:read", workspaces=[workspace["id"], other["id"]]))
        team = await team_factory(h=both)
        their_agent = await worker(other["id"])
        assert_error(await client.post(f"{TEAMS}/{team['id']}/members", headers=both,
                                       json={"agent_id": their_agent}), 400, "VALIDATION_ERROR")
