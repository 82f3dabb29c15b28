"""``/api/v1/supervisors`` (TKT-001; issue item 6) on every backend: CRUD, lifecycle, hierarchy, health,
team status, tenancy (another workspace's supervisor is 404 and never listed) and bad input (400/409,
nothing changed). The app runs with a ManualClock and without the runtime; heartbeats are written
through the runtime's service call so health arithmetic needs no sleeps.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from overseer.clock import ManualClock
from overseer.config import Settings
from overseer.db.engine import Database
from overseer.events.models import Event
from overseer.supervisors import service
from overseer.workers.models import Worker
from tests.conftest import bearer

API = "/api/v1/supervisors"
Headers = dict[str, str]


@pytest.fixture
def create(client: httpx.AsyncClient, headers: Headers) -> Callable[..., Any]:
    async def _create(name: str = "sup", *, h: Headers | None = None, **body: Any) -> dict[str, Any]:
        resp = await client.post(API, headers=h or headers, json={"name": name, **body})
        assert resp.status_code == 201, resp.text
        return resp.json()  # type: ignore[no-any-return]

    return _create


async def events_of(db: Database, entity_id: str) -> list[tuple[str, dict[str, Any]]]:
    async with db.read_session() as session:
        rows = await session.execute(select(Event.event_type, Event.payload)
                                     .where(Event.entity_id == entity_id).order_by(Event.id))
        return [(t, p) for t, p in rows.all()]


async def count_supervisors(client: httpx.AsyncClient, admin_headers: Headers) -> int:
    return (await client.get(API, headers=admin_headers)).json()["total"]  # type: ignore[no-any-return]


def assert_error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()["error"]
    assert body["code"] == code
    return body  # type: ignore[no-any-return]


class TestCreate:
    async def test_creates_spawning_in_the_tokens_only_workspace(self, client: httpx.AsyncClient, db: Database,
                                                                headers: Headers, workspace: dict[str, Any],
                                                                clock: ManualClock) -> None:
        resp = await client.post(API, headers=headers, json={"name": "  root  ", "description": "d",
                                                             "config": {"k": 1}})
        assert resp.status_code == 201
        sup = resp.json()
        assert sup["name"] == "root"
        assert sup["status"] == "SPAWNING"
        assert sup["workspace_id"] == workspace["id"]
        assert sup["hierarchy_level"] == 0 and sup["parent_id"] is None
        assert sup["config"] == {"k": 1} and sup["health_metrics"] == {} and sup["last_heartbeat"] is None
        assert sup["created_at"].startswith(clock.now().date().isoformat())
        assert [t for t, _ in await events_of(db, sup["id"])] == ["supervisor.created"]

    async def test_admin_names_the_workspace(self, client: httpx.AsyncClient, admin_headers: Headers,
                                             workspace: dict[str, Any]) -> None:
        resp = await client.post(API, headers=admin_headers, json={"name": "a", "workspace_id": workspace["id"]})
        assert resp.status_code == 201
        assert resp.json()["workspace_id"] == workspace["id"]

    async def test_workspace_id_required_when_the_token_spans_several(
            self, client: httpx.AsyncClient, admin_headers: Headers, make_token: Any,
            workspace_factory: Any) -> None:
        a, b = await workspace_factory(), await workspace_factory()
        token = bearer(make_token("supervisor:write", workspaces=[a["id"], b["id"]]))
        for h in (admin_headers, token):
            body = assert_error(await client.post(API, headers=h, json={"name": "x"}), 400, "VALIDATION_ERROR")
            assert body["details"]["fields"][0]["loc"] == ["body", "workspace_id"]
        assert await count_supervisors(client, admin_headers) == 0

    async def test_a_workspace_the_token_cannot_see_is_400(self, client: httpx.AsyncClient, headers: Headers,
                                                          admin_headers: Headers, workspace_factory: Any) -> None:
        for target in ((await workspace_factory())["id"], str(uuid.uuid4())):
            resp = await client.post(API, headers=headers, json={"name": "x", "workspace_id": target})
            assert_error(resp, 400, "VALIDATION_ERROR")
        assert await count_supervisors(client, admin_headers) == 0

    async def test_child_is_one_level_below_its_parent(self, create: Callable[..., Any]) -> None:
        root = await create("root")
        child = await create("child", parent_id=root["id"])
        assert child["parent_id"] == root["id"] and child["hierarchy_level"] == 1

    async def test_at_most_five_levels(self, create: Callable[..., Any], client: httpx.AsyncClient,
                                       headers: Headers, admin_headers: Headers) -> None:
        parent = None
        for level in range(5):
            sup = await create(f"l{level}", **({"parent_id": parent} if parent else {}))
            assert sup["hierarchy_level"] == level
            parent = sup["id"]
        body = assert_error(await client.post(API, headers=headers, json={"name": "l5", "parent_id": parent}),
                            400, "MAX_DEPTH_EXCEEDED")
        assert body["details"]["max_levels"] == 5
        assert await count_supervisors(client, admin_headers) == 5

    async def test_parent_in_another_workspace_is_400_not_a_leak(
            self, client: httpx.AsyncClient, admin_headers: Headers, make_token: Any,
            workspace_factory: Any) -> None:
        a, b = await workspace_factory(), await workspace_factory()
        both = bearer(make_token("supervisor:write", "supervisor:read", workspaces=[a["id"], b["id"]]))
        only_a = bearer(make_token("supervisor:write", workspaces=[a["id"]]))
        parent = (await client.post(API, headers=both, json={"name": "p", "workspace_id": b["id"]})).json()
        for h in (both, only_a):
            resp = await client.post(API, headers=h, json={"name": "c", "workspace_id": a["id"],
                                                           "parent_id": parent["id"]})
            body = assert_error(resp, 400, "VALIDATION_ERROR")
            assert body["details"]["fields"][0]["loc"] == ["body", "parent_id"]
        assert await count_supervisors(client, admin_headers) == 1

    async def test_unknown_parent_is_400(self, client: httpx.AsyncClient, headers: Headers) -> None:
        resp = await client.post(API, headers=headers, json={"name": "c", "parent_id": str(uuid.uuid4())})
        assert_error(resp, 400, "VALIDATION_ERROR")

    BAD_BODIES = [
        {"name": "x", "color": "red"},
        {"name": 5},
        {"name": ""},
        {"name": "   "},
        {"name": "x" * 256},
        {},
        {"name": "x", "parent_id": "not-a-uuid"},
        {"name": "x", "workspace_id": 12},
        {"name": "x", "config": []},
        {"name": "x", "description": ["a"]},
        {"name": "x", "status": "ACTIVE"},
        {"name": "x", "hierarchy_level": 3},
    ]

    async def test_bad_input_is_400_and_creates_nothing(self, client: httpx.AsyncClient, headers: Headers,
                                                        admin_headers: Headers) -> None:
        for body in self.BAD_BODIES:
            assert_error(await client.post(API, headers=headers, json=body), 400, "VALIDATION_ERROR")
        assert_error(await client.post(API, headers=headers, content=b"{not json",
                                       ), 400, "VALIDATION_ERROR")
        assert await count_supervisors(client, admin_headers) == 0

    async def test_name_of_255_characters_is_fine(self, create: Callable[..., Any]) -> None:
        assert len((await create("x" * 255))["name"]) == 255

    async def test_scopes(self, client: httpx.AsyncClient, ws_headers: Callable[..., Headers]) -> None:
        assert_error(await client.post(API, headers=ws_headers("supervisor:read"), json={"name": "x"}), 403,
                     "FORBIDDEN")
        assert_error(await client.post(API, json={"name": "x"}), 401, "UNAUTHORIZED")
        assert_error(await client.get(API, headers=ws_headers("supervisor:write")), 403, "FORBIDDEN")


class TestListAndGet:
    async def test_paginates_and_filters_by_status(self, client: httpx.AsyncClient, headers: Headers,
                                                   create: Callable[..., Any], clock: ManualClock) -> None:
        made = []
        for i in range(3):
            made.append(await create(f"s{i}"))
            clock.advance(1)
        await client.post(f"{API}/{made[1]['id']}/start", headers=headers)
        page = (await client.get(API, headers=headers, params={"limit": 2})).json()
        assert page["total"] == 3 and page["limit"] == 2 and page["offset"] == 0
        assert [s["name"] for s in page["items"]] == ["s0", "s1"]
        page = (await client.get(API, headers=headers, params={"limit": 2, "offset": 2})).json()
        assert [s["name"] for s in page["items"]] == ["s2"]
        active = (await client.get(API, headers=headers, params={"status": "ACTIVE"})).json()
        assert [s["id"] for s in active["items"]] == [made[1]["id"]] and active["total"] == 1

    async def test_bad_query_is_400(self, client: httpx.AsyncClient, headers: Headers) -> None:
        for params in ({"status": "SLEEPY"}, {"limit": 0}, {"limit": 501}, {"offset": -1}, {"limit": "x"}):
            assert_error(await client.get(API, headers=headers, params=params), 400, "VALIDATION_ERROR")

    async def test_get_one(self, client: httpx.AsyncClient, headers: Headers, create: Callable[..., Any]) -> None:
        sup = await create("one")
        resp = await client.get(f"{API}/{sup['id']}", headers=headers)
        assert resp.status_code == 200 and resp.json() == sup

    async def test_missing_and_malformed_ids(self, client: httpx.AsyncClient, headers: Headers) -> None:
        assert_error(await client.get(f"{API}/{uuid.uuid4()}", headers=headers), 404, "NOT_FOUND")
        assert_error(await client.get(f"{API}/nope", headers=headers), 400, "VALIDATION_ERROR")


class TestUpdate:
    async def test_sets_sent_fields_clears_nulls_keeps_absent(self, client: httpx.AsyncClient, db: Database,
                                                               headers: Headers, create: Callable[..., Any]) -> None:
        sup = await create("old", description="desc", config={"a": 1})
        resp = await client.patch(f"{API}/{sup['id']}", headers=headers, json={"name": "new", "description": None})
        assert resp.status_code == 200
        body = resp.json()
        assert body["name"] == "new" and body["description"] is None and body["config"] == {"a": 1}
        assert (await events_of(db, sup["id"]))[-1] == (
            "supervisor.updated", {"fields": ["description", "name"], "actor": "tester"})

    async def test_bad_input_is_400_and_changes_nothing(self, client: httpx.AsyncClient, headers: Headers,
                                                        create: Callable[..., Any]) -> None:
        sup = await create("keep")
        for body in ({"name": None}, {"config": None}, {"name": "x" * 256}, {"status": "ACTIVE"},
                     {"parent_id": "zzz"}, {"name": 3}, {"hierarchy_level": 2}):
            assert_error(await client.patch(f"{API}/{sup['id']}", headers=headers, json=body), 400,
                         "VALIDATION_ERROR")
        assert (await client.get(f"{API}/{sup['id']}", headers=headers)).json() == sup

    async def test_moving_a_parent_relevels_the_subtree(self, client: httpx.AsyncClient, headers: Headers,
                                                        create: Callable[..., Any]) -> None:
        a = await create("a")
        b = await create("b")
        c = await create("c", parent_id=b["id"])
        resp = await client.patch(f"{API}/{b['id']}", headers=headers, json={"parent_id": a["id"]})
        assert resp.json()["hierarchy_level"] == 1
        assert (await client.get(f"{API}/{c['id']}", headers=headers)).json()["hierarchy_level"] == 2
        resp = await client.patch(f"{API}/{b['id']}", headers=headers, json={"parent_id": None})
        assert resp.json()["hierarchy_level"] == 0 and resp.json()["parent_id"] is None
        assert (await client.get(f"{API}/{c['id']}", headers=headers)).json()["hierarchy_level"] == 1

    async def test_cycles_are_400(self, client: httpx.AsyncClient, headers: Headers,
                                  create: Callable[..., Any]) -> None:
        a = await create("a")
        b = await create("b", parent_id=a["id"])
        c = await create("c", parent_id=b["id"])
        for target in (a, c):  # itself, and its grandchild
            body = assert_error(await client.patch(f"{API}/{a['id']}", headers=headers,
                                                   json={"parent_id": target["id"]}), 400, "VALIDATION_ERROR")
            assert "cycle" in body["message"]
        assert (await client.get(f"{API}/{a['id']}", headers=headers)).json()["parent_id"] is None

    async def test_a_move_that_would_make_a_sixth_level_is_400(self, client: httpx.AsyncClient, headers: Headers,
                                                               create: Callable[..., Any]) -> None:
        chain = [await create("l0")]
        for level in range(1, 5):
            chain.append(await create(f"l{level}", parent_id=chain[-1]["id"]))
        x = await create("x")
        y = await create("y", parent_id=x["id"])
        assert_error(await client.patch(f"{API}/{x['id']}", headers=headers, json={"parent_id": chain[3]["id"]}),
                     400, "MAX_DEPTH_EXCEEDED")  # x at 4 would put y at 5
        assert (await client.get(f"{API}/{y['id']}", headers=headers)).json()["hierarchy_level"] == 1
        resp = await client.patch(f"{API}/{x['id']}", headers=headers, json={"parent_id": chain[2]["id"]})
        assert resp.status_code == 200
        assert (await client.get(f"{API}/{y['id']}", headers=headers)).json()["hierarchy_level"] == 4

    async def test_parent_in_another_workspace_is_400(self, client: httpx.AsyncClient, make_token: Any,
                                                      workspace_factory: Any) -> None:
        a, b = await workspace_factory(), await workspace_factory()
        both = bearer(make_token("supervisor:write", "supervisor:read", workspaces=[a["id"], b["id"]]))
        in_a = (await client.post(API, headers=both, json={"name": "a", "workspace_id": a["id"]})).json()
        in_b = (await client.post(API, headers=both, json={"name": "b", "workspace_id": b["id"]})).json()
        assert_error(await client.patch(f"{API}/{in_a['id']}", headers=both, json={"parent_id": in_b["id"]}),
                     400, "VALIDATION_ERROR")


class TestLifecycle:
    async def test_start_pause_resume_stop_record_events(self, client: httpx.AsyncClient, db: Database,
                                                         headers: Headers, create: Callable[..., Any]) -> None:
        sup = await create("life")
        for verb, status in [("start", "ACTIVE"), ("pause", "PAUSED"), ("resume", "ACTIVE"),
                             ("pause", "PAUSED"), ("stop", "TERMINATED")]:
            resp = await client.post(f"{API}/{sup['id']}/{verb}", headers=headers)
            assert resp.status_code == 200, resp.text
            assert resp.json()["status"] == status
        events = await events_of(db, sup["id"])
        assert [t for t, _ in events] == ["supervisor.created", "supervisor.started", "supervisor.paused",
                                          "supervisor.resumed", "supervisor.paused", "supervisor.stopped"]
        assert events[1][1] == {"from_state": "SPAWNING", "to_state": "ACTIVE", "actor": "tester"}

    ILLEGAL = [
        ([], "pause", "SPAWNING", "PAUSED"),
        ([], "resume", "SPAWNING", "ACTIVE"),
        (["start"], "start", "ACTIVE", "ACTIVE"),
        (["start"], "resume", "ACTIVE", "ACTIVE"),
        (["start", "pause"], "pause", "PAUSED", "PAUSED"),
        (["start", "pause"], "start", "PAUSED", "ACTIVE"),
        (["stop"], "stop", "TERMINATED", "TERMINATED"),
        (["stop"], "start", "TERMINATED", "ACTIVE"),
    ]

    async def test_illegal_commands_are_409_and_change_nothing(
            self, client: httpx.AsyncClient, db: Database, headers: Headers, create: Callable[..., Any]) -> None:
        for setup, verb, current, requested in self.ILLEGAL:
            sup = await create("x")
            for step in setup:
                assert (await client.post(f"{API}/{sup['id']}/{step}", headers=headers)).status_code == 200
            before = await events_of(db, sup["id"])
            body = assert_error(await client.post(f"{API}/{sup['id']}/{verb}", headers=headers), 409,
                                "INVALID_STATE_TRANSITION")
            assert body["details"] == {"id": sup["id"], "supervisor_id": sup["id"], "current_state": current,
                                       "requested_state": requested}
            assert (await client.get(f"{API}/{sup['id']}", headers=headers)).json()["status"] == current
            assert await events_of(db, sup["id"]) == before

    async def test_a_failed_supervisor_can_be_started_again(self, client: httpx.AsyncClient, db: Database,
                                                            headers: Headers, create: Callable[..., Any],
                                                            clock: ManualClock) -> None:
        sup = await create("x")
        await client.post(f"{API}/{sup['id']}/start", headers=headers)
        async with db.session() as session:
            assert await service.fail(session, supervisor_id=uuid.UUID(sup["id"]), reason="boom", clock=clock)
        assert (await client.get(f"{API}/{sup['id']}", headers=headers)).json()["status"] == "FAILED"
        assert (await client.post(f"{API}/{sup['id']}/start", headers=headers)).json()["status"] == "ACTIVE"

    async def test_lifecycle_needs_write_scope(self, client: httpx.AsyncClient, ws_headers: Callable[..., Headers],
                                               create: Callable[..., Any]) -> None:
        sup = await create("x")
        assert_error(await client.post(f"{API}/{sup['id']}/start", headers=ws_headers("supervisor:read")), 403,
                     "FORBIDDEN")


class TestDelete:
    async def test_deletes_when_not_running_with_its_teams(self, client: httpx.AsyncClient, db: Database,
                                                           headers: Headers, create: Callable[..., Any]) -> None:
        for steps in ([], ["stop"], ["start", "stop"]):  # SPAWNING, TERMINATED, TERMINATED after running
            sup = await create("x")
            for step in steps:
                await client.post(f"{API}/{sup['id']}/{step}", headers=headers)
            team = (await client.post(f"{API}/{sup['id']}/teams", headers=headers, json={"name": "t"})).json()
            resp = await client.delete(f"{API}/{sup['id']}", headers=headers)
            assert resp.status_code == 204 and resp.content == b""
            assert_error(await client.get(f"{API}/{sup['id']}", headers=headers), 404, "NOT_FOUND")
            assert_error(await client.get(f"/api/v1/teams/{team['id']}", headers=headers), 404, "NOT_FOUND")
            assert (await events_of(db, sup["id"]))[-1][0] == "supervisor.deleted"

    async def test_a_running_supervisor_is_409(self, client: httpx.AsyncClient, headers: Headers,
                                               create: Callable[..., Any]) -> None:
        for steps, state in ((["start"], "ACTIVE"), (["start", "pause"], "PAUSED")):
            sup = await create("x")
            for step in steps:
                await client.post(f"{API}/{sup['id']}/{step}", headers=headers)
            body = assert_error(await client.delete(f"{API}/{sup['id']}", headers=headers), 409, "CONFLICT")
            assert body["details"]["current_state"] == state
            assert (await client.get(f"{API}/{sup['id']}", headers=headers)).status_code == 200

    async def test_a_supervisor_with_children_is_409(self, client: httpx.AsyncClient, headers: Headers,
                                                     create: Callable[..., Any]) -> None:
        parent = await create("p")
        child = await create("c", parent_id=parent["id"])
        body = assert_error(await client.delete(f"{API}/{parent['id']}", headers=headers), 409, "CONFLICT")
        assert body["details"]["children"] == [child["id"]]
        assert (await client.delete(f"{API}/{child['id']}", headers=headers)).status_code == 204
        assert (await client.delete(f"{API}/{parent['id']}", headers=headers)).status_code == 204


async def add_worker(db: Database, workspace_id: str, *, last_event_at: Any = None) -> str:
    async with db.session() as session:
        worker = Worker(id=uuid.uuid4(), workspace_id=uuid.UUID(workspace_id), last_event_at=last_event_at)
        session.add(worker)
    return str(worker.id)


class TestHealth:
    async def test_heartbeat_arithmetic_and_agent_health(self, client: httpx.AsyncClient, db: Database,
                                                         headers: Headers, create: Callable[..., Any],
                                                         workspace: dict[str, Any], clock: ManualClock,
                                                         settings: Settings) -> None:
        sup = await create("h")
        url = f"{API}/{sup['id']}/health"
        health = (await client.get(url, headers=headers)).json()
        assert health["status"] == "SPAWNING" and health["last_heartbeat"] is None
        assert health["missed_heartbeats"] is None and health["seconds_since_heartbeat"] is None
        assert health["agents"] == {"total": 0, "healthy": 0, "unhealthy": 0}
        assert health["heartbeat_interval_s"] == settings.supervisor_heartbeat_interval_s
        assert health["max_missed_heartbeats"] == 3

        team = (await client.post(f"{API}/{sup['id']}/teams", headers=headers, json={"name": "t"})).json()
        fresh = await add_worker(db, workspace["id"], last_event_at=clock.now())
        stale = await add_worker(db, workspace["id"], last_event_at=clock.now() - timedelta(seconds=91))
        never = await add_worker(db, workspace["id"])
        gone = await add_worker(db, workspace["id"], last_event_at=clock.now())
        for agent in (fresh, stale, never, gone):
            await client.post(f"/api/v1/teams/{team['id']}/members", headers=headers, json={"agent_id": agent})
        await client.delete(f"/api/v1/teams/{team['id']}/members/{gone}", headers=headers)

        await client.post(f"{API}/{sup['id']}/start", headers=headers)
        async with db.session() as session:
            await service.heartbeat(session, supervisor_id=uuid.UUID(sup["id"]), settings=settings, clock=clock)
        beat = clock.now()
        clock.advance(settings.supervisor_heartbeat_interval_s * 3.5)
        health = (await client.get(url, headers=headers)).json()
        assert health["status"] == "ACTIVE"
        assert health["missed_heartbeats"] == 3
        assert health["seconds_since_heartbeat"] == pytest.approx(settings.supervisor_heartbeat_interval_s * 3.5)
        assert health["last_heartbeat"].replace("Z", "+00:00") == beat.isoformat()
        assert health["agents"] == {"total": 3, "healthy": 1, "unhealthy": 2}
        clock.advance(settings.agent_healthy_window_s)  # now every agent is stale
        health = (await client.get(url, headers=headers)).json()
        assert health["agents"] == {"total": 3, "healthy": 0, "unhealthy": 3}


class TestTeamStatus:
    async def test_counts_teams_and_members(self, client: httpx.AsyncClient, db: Database, headers: Headers,
                                            create: Callable[..., Any], workspace: dict[str, Any],
                                            clock: ManualClock) -> None:
        sup = await create("s")
        t1 = (await client.post(f"{API}/{sup['id']}/teams", headers=headers,
                                json={"name": "t1", "objective": "ship"})).json()
        clock.advance(1)
        await client.post(f"{API}/{sup['id']}/teams", headers=headers, json={"name": "t2"})
        a, b = await add_worker(db, workspace["id"]), await add_worker(db, workspace["id"])
        for agent in (a, b):
            await client.post(f"/api/v1/teams/{t1['id']}/members", headers=headers, json={"agent_id": agent})
        await client.delete(f"/api/v1/teams/{t1['id']}/members/{a}", headers=headers)
        status = (await client.get(f"{API}/{sup['id']}/status", headers=headers)).json()
        assert status["supervisor_id"] == sup["id"] and status["status"] == "SPAWNING"
        assert status["total_teams"] == 2 and status["total_members"] == 1
        assert status["teams"] == [
            {"team_id": t1["id"], "team_name": "t1", "objective": "ship", "member_count": 2, "active_members": 1},
            {"team_id": status["teams"][1]["team_id"], "team_name": "t2", "objective": None, "member_count": 0,
             "active_members": 0},
        ]


class TestHierarchy:
    async def test_returns_the_subtree(self, client: httpx.AsyncClient, headers: Headers,
                                       create: Callable[..., Any]) -> None:
        root = await create("root")
        b = await create("b", parent_id=root["id"])
        a = await create("a", parent_id=root["id"])
        leaf = await create("leaf", parent_id=b["id"])
        tree = (await client.get(f"{API}/{root['id']}/hierarchy", headers=headers)).json()
        assert tree["id"] == root["id"] and tree["hierarchy_level"] == 0 and tree["parent_id"] is None
        assert [c["name"] for c in tree["children"]] == ["a", "b"]
        assert tree["children"][0]["children"] == []
        assert tree["children"][1]["children"] == [
            {"id": leaf["id"], "name": "leaf", "status": "SPAWNING", "hierarchy_level": 2, "parent_id": b["id"],
             "children": []}]
        sub = (await client.get(f"{API}/{b['id']}/hierarchy", headers=headers)).json()
        assert sub["parent_id"] == root["id"] and [c["id"] for c in sub["children"]] == [leaf["id"]]
        assert a["id"] not in str(sub)


class TestTenancy:
    ROUTES = [
        ("get", "", None), ("patch", "", {"name": "x"}), ("delete", "", None),
        ("post", "/start", None), ("post", "/pause", None), ("post", "/resume", None), ("post", "/stop", None),
        ("get", "/health", None), ("get", "/status", None), ("get", "/hierarchy", None),
        ("get", "/teams", None), ("post", "/teams", {"name": "t"}),
    ]

    async def test_another_workspaces_supervisor_is_404_on_every_route(
            self, client: httpx.AsyncClient, admin_headers: Headers, headers: Headers, workspace_factory: Any,
            db: Database) -> None:
        other = await workspace_factory()
        theirs = (await client.post(API, headers=admin_headers,
                                    json={"name": "theirs", "workspace_id": other["id"]})).json()
        for method, suffix, body in self.ROUTES:
            resp = await client.request(method.upper(), f"{API}/{theirs['id']}{suffix}", headers=headers, json=body)
            assert_error(resp, 404, "NOT_FOUND")
        assert [t for t, _ in await events_of(db, theirs["id"])] == ["supervisor.created"]
        after = (await client.get(f"{API}/{theirs['id']}", headers=admin_headers)).json()
        assert after["name"] == "theirs" and after["status"] == "SPAWNING"

    async def test_lists_show_only_the_tokens_workspaces(self, client: httpx.AsyncClient, admin_headers: Headers,
                                                         headers: Headers, create: Callable[..., Any],
                                                         workspace_factory: Any) -> None:
        mine = await create("mine")
        other = await workspace_factory()
        await client.post(API, headers=admin_headers, json={"name": "theirs", "workspace_id": other["id"]})
        listed = (await client.get(API, headers=headers)).json()
        assert [s["id"] for s in listed["items"]] == [mine["id"]] and listed["total"] == 1
        assert (await client.get(API, headers=admin_headers)).json()["total"] == 2
