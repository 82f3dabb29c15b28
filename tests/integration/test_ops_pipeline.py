"""The pipeline on a real database: projections written in the committing transaction equal the
log replayed through the same reducer (restore), and the read API serves them with tenancy."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from overseer.events import log as event_log
from overseer.events.models import Event
from overseer.ops.pipeline import PRUNABLE_KINDS, OpsPipeline
from overseer.ops.state import OpsState, replay
from tests.conftest import bearer
from tests.unit.test_reducer import WORKERS, _event_strategy, _materialize


def _hot(state: OpsState, ws: list[uuid.UUID]) -> tuple[Any, ...]:
    """What a restored node keeps in memory for ``ws`` (settled + acknowledged per-turn signals are pruned)."""
    keep = {str(w) for w in ws}
    sigs = {k: v for k, v in state.signals.items() if v.workspace_id in keep
            and not (v.kind in PRUNABLE_KINDS and v.acked_at is not None and not v.is_open)}
    return ({k: v for k, v in state.workspaces.items() if k in keep},
            {k: v for k, v in state.threads.items() if v.workspace_id in keep}, sigs)


def _fresh_ids(events: list[Any]) -> list[Any]:
    """Agents' thread and worker ids are globally unique: give each example its own."""
    nonce = uuid.uuid4().hex[:8]
    workers = {w: str(uuid.uuid4()) for w in WORKERS}
    workers.update({r: str(uuid.uuid4()) for r in ("r1", "r2", "r3")})

    def sub(v: Any) -> Any:
        if isinstance(v, str):
            return workers.get(v) or v.replace("th-", f"th-{nonce}-")
        return v

    for ev in events:
        ev.entity_id = sub(ev.entity_id)
        ev.payload = {k: sub(v) for k, v in ev.payload.items()}
    return events


async def _append_batches(app: Any, events: list[Any], cuts: list[int], ws_ids: list[uuid.UUID]) -> None:
    db = app.state.db
    i = 0
    for n in [*cuts, len(events)]:
        batch, i = events[i:i + n], i + n
        if not batch:
            continue
        async with db.session() as s:
            for ev in batch:
                event_log.defer(s, workspace_id=ws_ids[0] if ev.workspace_id.endswith("1") else ws_ids[1],
                                event_type=ev.event_type, entity_type=ev.entity_type, entity_id=ev.entity_id,
                                payload=ev.payload, at=ev.created_at)


class TestRestore:
    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(raw=st.lists(_event_strategy(), min_size=1, max_size=25),
           cuts=st.lists(st.integers(min_value=1, max_value=6), max_size=6))
    async def test_projections_equal_the_replayed_log(self, app: Any, workspace_factory: Any, raw: list[Any],
                                                      cuts: list[int]) -> None:
        ws = [uuid.UUID((await workspace_factory())["id"]) for _ in range(2)]
        await _append_batches(app, _fresh_ids(_materialize(raw)), cuts, ws)
        db = app.state.db
        restored = OpsPipeline(db)
        async with db.read_session() as s:
            await restored.load(s)
            rows = (await s.execute(select(Event).where(Event.workspace_id.in_(ws)).order_by(Event.id))).scalars().all()
        replayed = replay(list(rows))
        live = app.state.ops.state
        assert _hot(restored.state, ws) == _hot(replayed, ws)
        assert _hot(live, ws) == _hot(replayed, ws)


class TestReadApi:
    async def _approval_flow(self, app: Any, ws_id: str) -> str:
        worker = str(uuid.uuid4())
        async with app.state.db.session() as s:
            for t, p in [("thread.started", {}), ("turn.started", {"turn_id": "t1", "prompt": "deploy"}),
                         ("approval.requested", {"approval_id": "a1", "command": "make deploy", "turn_id": "t1"})]:
                await event_log.append(s, workspace_id=uuid.UUID(ws_id), event_type=t, entity_type="worker",
                                       entity_id=worker, payload={"thread_id": f"th-{ws_id[:4]}", **p})
        return worker

    async def test_snapshot_shows_task_blockers_and_signal(self, app: Any, client: httpx.AsyncClient,
                                                           workspace: dict[str, Any], ws_headers: Any) -> None:
        await self._approval_flow(app, workspace["id"])
        snap = (await client.get("/api/v1/ops/snapshot", headers=ws_headers("supervisor:read"))).json()
        (w,) = snap["workspaces"]
        assert w["current_task"] == "deploy" and w["blockers"][0]["kind"] == "approval"
        assert w["threads"][0]["status"] == "waiting_input"
        assert snap["signals"][0]["kind"] == "needs_approval"
        assert snap["counts"]["unacked_by_workspace"] == {workspace["id"]: 1}

    async def test_other_workspace_sees_nothing(self, app: Any, client: httpx.AsyncClient,
                                                workspace_factory: Any, make_token: Any) -> None:
        a, b = await workspace_factory(), await workspace_factory()
        await self._approval_flow(app, a["id"])
        h = bearer(make_token("supervisor:read", "supervisor:write", workspaces=[b["id"]]))
        snap = (await client.get("/api/v1/ops/snapshot", headers=h)).json()
        assert [w["id"] for w in snap["workspaces"]] == [b["id"]]
        assert snap["signals"] == [] and snap["counts"]["unacked_signals"] == 0
        feed = (await client.get("/api/v1/ops/feed", headers=h)).json()["items"]
        assert {i["workspace_id"] for i in feed} == {b["id"]}
        sig = "needs_approval:a1"
        assert (await client.post(f"/api/v1/ops/signals/{sig}/ack", headers=h)).status_code == 404

    async def test_ack_persists_and_feed_pages_newest_first(self, app: Any, client: httpx.AsyncClient,
                                                            workspace: dict[str, Any], ws_headers: Any) -> None:
        await self._approval_flow(app, workspace["id"])
        h = ws_headers()
        acked = await client.post("/api/v1/ops/signals/needs_approval:a1/ack", headers=h)
        assert acked.status_code == 200 and acked.json()["acked_by"] == "tester"
        assert (await client.get("/api/v1/ops/signals", headers=h)).json() == []
        restored = OpsPipeline(app.state.db)
        async with app.state.db.read_session() as s:
            await restored.load(s)
        assert restored.state.signals["needs_approval:a1"].acked_at is not None
        page = (await client.get("/api/v1/ops/feed?limit=2", headers=h)).json()
        ids = [i["id"] for i in page["items"]]
        assert ids == sorted(ids, reverse=True) and page["next_before"] == ids[-1]
        rest = (await client.get(f"/api/v1/ops/feed?before={ids[-1]}", headers=h)).json()
        assert all(i["id"] < ids[-1] for i in rest["items"]) and rest["items"]


class TestThreads:
    async def test_snapshot_lists_the_running_thread_first_and_pages_the_rest(self, app: Any,
                                                                              client: httpx.AsyncClient,
                                                                              workspace: dict[str, Any],
                                                                              ws_headers: Any) -> None:
        ws_id = uuid.UUID(workspace["id"])
        async with app.state.db.session() as s:
            for i in range(14):
                worker = uuid.uuid4()
                for t, p in [("turn.started", {"turn_id": f"t{i}", "prompt": f"task {i}"}),
                             *([("turn.completed", {"turn_id": f"t{i}", "status": "completed"})] if i else [])]:
                    await event_log.append(s, workspace_id=ws_id, event_type=t, entity_type="worker", entity_id=worker,
                                           payload={"thread_id": f"th-{i:02d}", **p})
        h = ws_headers("supervisor:read")
        (w,) = (await client.get("/api/v1/ops/snapshot", headers=h)).json()["workspaces"]
        listed = [t["thread_id"] for t in w["threads"]]  # all 14 (under the cap): running first, then newest
        assert w["threads_total"] == 14 and w["threads_by_status"] == {"running": 1, "completed": 13}
        assert listed == ["th-00", *[f"th-{i:02d}" for i in range(13, 0, -1)]]
        page = (await client.get("/api/v1/ops/threads?limit=5&offset=10", headers=h)).json()
        assert page["total"] == 14 and len(page["items"]) == 4
        running = (await client.get("/api/v1/ops/threads?status=running", headers=h)).json()
        assert [t["thread_id"] for t in running["items"]] == ["th-00"]
