"""The supervisor runtime (TSK-003; TKT-001 heartbeats and UNRESPONSIVE) against a real database, every backend.

Real-time tests use the 0.05 s heartbeat interval of the ``settings`` fixture and poll with a
deadline; the arithmetic itself is pinned by the ManualClock tests at the end (no sleeps).
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select

from overseer.app import create_app
from overseer.auth.tokens import Principal
from overseer.clock import Clock, ManualClock, SystemClock
from overseer.config import Settings
from overseer.db.engine import Database, make_engine
from overseer.events.bus import EventBus
from overseer.events.models import Event
from overseer.runtime.supervisor import Runtime
from overseer.runtime.supervisor_agent import SupervisorManager, register
from overseer.supervisors import repository, service
from overseer.supervisors.models import Supervisor
from overseer.supervisors.models import SupervisorStatus as S
from overseer.supervisors.schemas import SupervisorCreate
from overseer.workspaces import service as workspaces
from overseer.workspaces.schemas import WorkspaceCreate
from tests.conftest import bearer

ADMIN = Principal("tester", frozenset({"admin"}), None)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(make_engine(db_url), EventBus())
    yield database
    await database.dispose()


@pytest.fixture
async def workspace_id(db: Database, tmp_path: Path) -> uuid.UUID:
    async with db.session() as session:
        ws = await workspaces.create(session, data=WorkspaceCreate(name="rt", root_path=str(tmp_path / "rt")),
                                     actor="tester")
    return ws.id


@pytest.fixture
def new_supervisor(db: Database, workspace_id: uuid.UUID, settings: Settings) -> Callable[..., Awaitable[uuid.UUID]]:
    """Create a supervisor and walk it through ``commands`` (service functions), as the API would."""

    async def _make(*commands: Callable[..., Awaitable[Supervisor]], clock: Clock | None = None) -> uuid.UUID:
        clock = clock or SystemClock()
        async with db.session() as session:
            sup = await service.create(session, principal=ADMIN, settings=settings, clock=clock,
                                       data=SupervisorCreate(name="s", workspace_id=workspace_id))
        for command in commands:
            async with db.session() as session:
                await command(session, principal=ADMIN, supervisor_id=sup.id, clock=clock)
        return sup.id

    return _make


@pytest.fixture
async def manager(db: Database, settings: Settings) -> AsyncIterator[SupervisorManager]:
    mgr = SupervisorManager(db=db, settings=settings, clock=SystemClock())
    yield mgr
    await mgr.stop()


async def load(db: Database, supervisor_id: uuid.UUID) -> Supervisor:
    async with db.read_session() as session:
        return (await session.execute(select(Supervisor).where(Supervisor.id == supervisor_id))).scalar_one()


async def event_types(db: Database, supervisor_id: uuid.UUID) -> list[str]:
    async with db.read_session() as session:
        rows = await session.execute(select(Event.event_type).where(Event.entity_id == str(supervisor_id))
                                     .order_by(Event.id))
        return list(rows.scalars())


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll ``check`` until it holds (the runtime works in real time); TimeoutError after 5 s."""
    async with asyncio.timeout(5):
        while True:
            if await check():
                return
            await asyncio.sleep(0.02)  # polling the database: there is no in-process signal to wait on


async def heartbeats_advance(db: Database, supervisor_id: uuid.UUID, times: int = 2) -> None:
    """Wait until ``last_heartbeat`` has moved forward ``times`` times."""
    seen = [(await load(db, supervisor_id)).last_heartbeat]

    async def moved() -> bool:
        current = (await load(db, supervisor_id)).last_heartbeat
        if current is not None and current != seen[-1]:
            seen.append(current)
        return len(seen) > times

    await eventually(moved)


class TestHeartbeats:
    async def test_a_started_supervisor_heartbeats_and_monitors(
            self, db: Database, manager: SupervisorManager, new_supervisor: Callable[..., Any]) -> None:
        sid = await new_supervisor(service.start)
        await manager.reconcile(sid)
        assert sid in manager.agents
        await heartbeats_advance(db, sid)
        sup = await load(db, sid)
        assert sup.status == S.ACTIVE
        assert sup.health_metrics["monitoring"] is True
        assert sup.health_metrics["agents"] == {"total": 0, "healthy": 0, "unhealthy": 0}

    async def test_pause_keeps_heartbeating_but_stops_monitoring(
            self, db: Database, manager: SupervisorManager, new_supervisor: Callable[..., Any]) -> None:
        sid = await new_supervisor(service.start)
        await manager.reconcile(sid)
        await eventually(lambda: _has_metrics(db, sid))
        async with db.session() as session:
            await service.pause(session, principal=ADMIN, supervisor_id=sid, clock=SystemClock())
        await manager.reconcile(sid)
        await eventually(lambda: _monitoring_is(db, sid, False))
        computed_at = (await load(db, sid)).health_metrics["computed_at"]
        await heartbeats_advance(db, sid, times=3)
        sup = await load(db, sid)
        assert sup.status == S.PAUSED
        assert sup.health_metrics["computed_at"] == computed_at  # no monitoring while paused
        async with db.session() as session:
            await service.resume(session, principal=ADMIN, supervisor_id=sid, clock=SystemClock())
        await manager.reconcile(sid)
        await eventually(lambda: _monitoring_is(db, sid, True))

    async def test_stop_ends_the_agent(self, db: Database, manager: SupervisorManager,
                                       new_supervisor: Callable[..., Any]) -> None:
        sid = await new_supervisor(service.start)
        await manager.reconcile(sid)
        async with db.session() as session:
            await service.stop(session, principal=ADMIN, supervisor_id=sid, clock=SystemClock())
        await manager.reconcile(sid)
        assert sid not in manager.agents
        last = (await load(db, sid)).last_heartbeat
        await asyncio.sleep(0.15)
        sup = await load(db, sid)
        assert sup.status == S.TERMINATED and sup.last_heartbeat == last

    async def test_an_agent_that_crashes_marks_its_supervisor_failed(
            self, db: Database, manager: SupervisorManager, new_supervisor: Callable[..., Any],
            monkeypatch: pytest.MonkeyPatch) -> None:
        async def broken(*_: Any, **__: Any) -> None:
            raise RuntimeError("monitoring bug")

        sid = await new_supervisor(service.start)
        monkeypatch.setattr(service, "heartbeat", broken)
        await manager.reconcile(sid)
        await eventually(lambda: _status_is(db, sid, S.FAILED))
        assert (await event_types(db, sid))[-1] == "supervisor.failed"
        await eventually(lambda: _no_agent(manager, sid))


class TestUnresponsive:
    @pytest.mark.parametrize("paused", [False, True])
    async def test_a_dead_task_is_swept_to_unresponsive_and_recovers_when_restarted(
            self, db: Database, manager: SupervisorManager, new_supervisor: Callable[..., Any],
            paused: bool) -> None:
        commands = [service.start, service.pause] if paused else [service.start]
        sid = await new_supervisor(*commands)
        published = db.bus.subscribe(lambda e: e.entity_id == str(sid))
        await manager.start()
        await eventually(lambda: _has_heartbeat(db, sid))
        task = manager.agents[sid].task
        assert task is not None
        task.cancel()  # the agent dies without a word; only the sweep can notice
        await eventually(lambda: _status_is(db, sid, S.UNRESPONSIVE))
        assert sid not in manager.agents

        await manager.reconcile(sid)  # restarted (by an operator, a restart policy or a node restart)
        before = S.PAUSED if paused else S.ACTIVE
        await eventually(lambda: _status_is(db, sid, before))
        types = await event_types(db, sid)
        assert types[-2:] == ["supervisor.unresponsive", "supervisor.recovered"]
        seen = [published.queue.get_nowait().event_type for _ in range(published.queue.qsize())]
        assert seen[-2:] == ["supervisor.unresponsive", "supervisor.recovered"]
        await heartbeats_advance(db, sid, times=1)

    async def test_start_restarts_agents_for_running_supervisors_only(
            self, db: Database, new_supervisor: Callable[..., Any], settings: Settings) -> None:
        # A loaded test machine must not make a live agent look UNRESPONSIVE here: only `lost` is.
        calm = settings.model_copy(update={"supervisor_max_missed_heartbeats": 50})
        manager = SupervisorManager(db=db, settings=calm, clock=SystemClock())
        active = await new_supervisor(service.start)
        paused = await new_supervisor(service.start, service.pause)
        spawning = await new_supervisor()
        stopped = await new_supervisor(service.start, service.stop)
        # An UNRESPONSIVE supervisor: paused, then swept long after its last heartbeat.
        clock = ManualClock()
        lost = await new_supervisor(service.start, service.pause, clock=clock)
        clock.advance(settings.supervisor_heartbeat_interval_s * 100)
        async with db.session() as session:
            assert await service.sweep(session, settings=settings, clock=clock) == [lost]

        await manager.start()
        try:
            assert set(manager.agents) == {active, paused, lost}
            await eventually(lambda: _status_is(db, lost, S.PAUSED))
            for sid in (active, paused, lost):
                await eventually(functools.partial(_has_heartbeat, db, sid))
            assert (await load(db, spawning)).last_heartbeat is None
            assert (await load(db, stopped)).last_heartbeat is None
        finally:
            await manager.stop()  # leaves every status as it is, for the next start
        assert manager.agents == {}
        assert [(await load(db, sid)).status for sid in (active, paused, lost)] == [S.ACTIVE, S.PAUSED, S.PAUSED]


class TestSweepArithmetic:
    """The sweep and heartbeat with a ManualClock: no sleeps."""

    async def test_more_than_three_missed_intervals_is_unresponsive(
            self, db: Database, new_supervisor: Callable[..., Any], settings: Settings) -> None:
        clock = ManualClock()
        interval = settings.supervisor_heartbeat_interval_s
        mgr = SupervisorManager(db=db, settings=settings, clock=clock)
        sid = await new_supervisor(service.start, clock=clock)
        async with db.session() as session:
            assert await service.heartbeat(session, supervisor_id=sid, settings=settings, clock=clock) == S.ACTIVE
        clock.advance(interval * 3.99)
        assert await mgr.sweep_once() == []
        clock.advance(interval * 0.01)
        assert await mgr.sweep_once() == [sid]
        assert await mgr.sweep_once() == []  # already UNRESPONSIVE: not marked twice
        async with db.session() as session:
            assert await service.heartbeat(session, supervisor_id=sid, settings=settings, clock=clock) == S.ACTIVE
        sup = await load(db, sid)
        assert sup.status == S.ACTIVE and sup.last_heartbeat == clock.now()
        assert (await event_types(db, sid))[-2:] == ["supervisor.unresponsive", "supervisor.recovered"]

    async def test_a_supervisor_that_never_heartbeated_is_judged_from_its_start(
            self, db: Database, new_supervisor: Callable[..., Any], settings: Settings) -> None:
        clock = ManualClock()
        mgr = SupervisorManager(db=db, settings=settings, clock=clock)
        sid = await new_supervisor(service.start, clock=clock)
        clock.advance(settings.supervisor_heartbeat_interval_s * 3.5)
        assert await mgr.sweep_once() == []
        clock.advance(settings.supervisor_heartbeat_interval_s)
        assert await mgr.sweep_once() == [sid]

    async def test_a_heartbeat_written_after_the_sweep_read_wins(
            self, db: Database, new_supervisor: Callable[..., Any], settings: Settings,
            monkeypatch: pytest.MonkeyPatch) -> None:
        clock = ManualClock()
        sid = await new_supervisor(service.start, clock=clock)
        clock.advance(settings.supervisor_heartbeat_interval_s * 10)
        read = repository.supervisors_in

        async def beat() -> S | None:
            async with db.session() as other:
                return await service.heartbeat(other, supervisor_id=sid, settings=settings, clock=clock)

        if db.dialect == "sqlite":
            # A unit of work on SQLite holds the write lock from its start (Database.session: BEGIN
            # IMMEDIATE, this process's writers in turn), so no heartbeat can land between the sweep's
            # read and its write: it waits, then finds the supervisor UNRESPONSIVE and recovers it.
            beats: list[asyncio.Task[S | None]] = []

            async def read_then_a_heartbeat_waits(session: Any, statuses: frozenset[str]) -> list[Supervisor]:
                rows = await read(session, statuses)
                beats.append(asyncio.create_task(beat()))
                await asyncio.sleep(0.1)
                assert not beats[0].done()  # waiting for the sweep's transaction
                return rows

            monkeypatch.setattr(repository, "supervisors_in", read_then_a_heartbeat_waits)
            async with db.session() as session:
                assert await service.sweep(session, settings=settings, clock=clock) == [sid]
            assert await asyncio.wait_for(beats[0], 5) == S.ACTIVE
            assert (await load(db, sid)).status == S.ACTIVE
            assert (await event_types(db, sid))[-2:] == ["supervisor.unresponsive", "supervisor.recovered"]
            return

        async def read_then_a_heartbeat_lands(session: Any, statuses: frozenset[str]) -> list[Supervisor]:
            rows = await read(session, statuses)
            await beat()  # PostgreSQL: another connection's write between the sweep's read and write
            return rows

        monkeypatch.setattr(repository, "supervisors_in", read_then_a_heartbeat_lands)
        async with db.session() as session:
            assert await service.sweep(session, settings=settings, clock=clock) == []
        assert (await load(db, sid)).status == S.ACTIVE
        assert (await event_types(db, sid))[-1] == "supervisor.started"


class TestApiTellsTheManager:
    async def test_lifecycle_routes_start_and_stop_the_agent(self, settings: Settings, make_token: Any,
                                                             tmp_path: Path) -> None:
        # Real clock: with the suite's 0.05 s heartbeat, a 0.15 s stall of a loaded CI machine between the
        # heartbeat and the health read already means UNRESPONSIVE (it did once). 0.5 s leaves 1.5 s.
        settings = settings.model_copy(update={"supervisor_heartbeat_interval_s": 0.5})
        application = create_app(settings, migrate_on_start=False, start_runtime=False)
        async with LifespanManager(application) as lifespan:
            state = application.state
            runtime = Runtime(db=state.db, settings=settings, clock=state.clock)
            manager = register(runtime)
            assert runtime.components["supervisors"] is manager
            await runtime.start()
            state.runtime = runtime
            try:
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=lifespan.app),
                                             base_url="http://test") as client:
                    admin = bearer(make_token("admin"))
                    ws = (await client.post("/api/v1/workspaces", headers=admin,
                                            json={"name": "api", "root_path": str(tmp_path / "api")})).json()
                    headers = bearer(make_token("supervisor:read", "supervisor:write", workspaces=[ws["id"]]))
                    sup = (await client.post("/api/v1/supervisors", headers=headers, json={"name": "s"})).json()
                    sid = uuid.UUID(sup["id"])
                    assert (await client.post(f"/api/v1/supervisors/{sid}/start", headers=headers)).is_success
                    assert sid in manager.agents
                    await eventually(lambda: _has_heartbeat(state.db, sid))
                    health = (await client.get(f"/api/v1/supervisors/{sid}/health", headers=headers)).json()
                    assert health["status"] == "ACTIVE" and health["last_heartbeat"] is not None
                    assert (await client.post(f"/api/v1/supervisors/{sid}/stop", headers=headers)).is_success
                    assert sid not in manager.agents
            finally:
                await runtime.stop()


async def _status_is(db: Database, sid: uuid.UUID, status: S) -> bool:
    return (await load(db, sid)).status == status


async def _has_heartbeat(db: Database, sid: uuid.UUID) -> bool:
    return (await load(db, sid)).last_heartbeat is not None


async def _has_metrics(db: Database, sid: uuid.UUID) -> bool:
    return "computed_at" in (await load(db, sid)).health_metrics


async def _monitoring_is(db: Database, sid: uuid.UUID, value: bool) -> bool:
    return (await load(db, sid)).health_metrics.get("monitoring") is value


async def _no_agent(manager: SupervisorManager, sid: uuid.UUID) -> bool:
    return sid not in manager.agents
