"""Supervisor heartbeats on this node (TSK-003 SupervisorAgent; TKT-001 heartbeats and UNRESPONSIVE).

- :class:`SupervisorAgent`: one asyncio task per running supervisor. Every
  ``supervisor_heartbeat_interval_s`` it runs one unit of work (``service.heartbeat``): write
  ``last_heartbeat`` and, while ACTIVE, ``health_metrics`` of its team (PAUSED: heartbeat only; back
  from UNRESPONSIVE: ``supervisor.recovered``). It exits when the supervisor no longer runs. A
  database error is retried next interval; any other error marks the supervisor FAILED
  (``supervisor.failed``, with the error) and ends the task.
- :class:`SupervisorManager`: the runtime component. ``start()`` starts an agent for every ACTIVE,
  PAUSED or UNRESPONSIVE supervisor and the missed-heartbeat sweep (``service.sweep``, every
  interval, reads only the database); ``stop()`` ends them all without changing any status (so
  they are restarted next time, and marked UNRESPONSIVE meanwhile if nobody heartbeats them).
  ``reconcile(id)`` is called after an API lifecycle command.

Status changes and their events are written by ``overseer.supervisors.service`` inside
``db.session()``; the bus publishes them after commit. No session is held across a sleep. Wall time
for sleeping comes from asyncio; timestamps come from the injected Clock.

Register with :func:`register` (``runtime.add("supervisors", SupervisorManager(...))``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from sqlalchemy.exc import DBAPIError

from overseer.clock import Clock
from overseer.config import Settings
from overseer.db.engine import Database
from overseer.runtime.supervisor import Runtime
from overseer.supervisors import service, states
from overseer.supervisors.models import SupervisorStatus

log = logging.getLogger(__name__)

COMPONENT_NAME = "supervisors"
STOP_GRACE_S = 5.0
"""Seconds an agent or the sweep gets to finish its unit of work on stop before it is cancelled."""


class SupervisorAgent:
    """The heartbeat loop of one supervisor on this node (TSK-003 ``_heartbeat_loop``).

    ``status`` is the status seen at the last heartbeat (None before the first, or after the
    supervisor stopped running). ``wake()`` makes the next heartbeat happen now.
    """

    def __init__(self, supervisor_id: uuid.UUID, *, db: Database, settings: Settings, clock: Clock) -> None:
        self.supervisor_id = supervisor_id
        self.status: SupervisorStatus | None = None
        self.task: asyncio.Task[None] | None = None
        self._db = db
        self._settings = settings
        self._clock = clock
        self._wake = asyncio.Event()
        self._stopping = False

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def start(self) -> asyncio.Task[None]:
        self.task = asyncio.create_task(self.run(), name=f"supervisor-agent-{self.supervisor_id}")
        return self.task

    def wake(self) -> None:
        self._wake.set()

    async def stop(self, *, grace_s: float = STOP_GRACE_S) -> None:
        """End the loop after its current heartbeat (cancelled after ``grace_s`` seconds); the stored
        status is left as it is. Ending between units of work, rather than cancelling one midway,
        never leaves a database connection in an unknown state.
        """
        self._stopping = True
        self._wake.set()
        if self.task is None or self.task.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(self.task), timeout=grace_s)
        except TimeoutError:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def tick(self) -> SupervisorStatus | None:
        """One heartbeat in its own unit of work; returns the status after it (None: no longer runs)."""
        async with self._db.session() as session:
            status = await service.heartbeat(session, supervisor_id=self.supervisor_id, settings=self._settings,
                                             clock=self._clock)
        self.status = status
        return status

    async def run(self) -> None:
        while not self._stopping:
            try:
                if await self.tick() is None:
                    log.info("supervisor %s no longer runs; its agent exits", self.supervisor_id)
                    return
            except (DBAPIError, OSError) as exc:  # busy or unreachable database: try again next interval
                log.warning("heartbeat of supervisor %s failed: %s", self.supervisor_id, exc)
            except Exception as exc:
                log.exception("supervisor %s agent crashed", self.supervisor_id)
                await self._mark_failed(exc)
                return
            await self._sleep(self._settings.supervisor_heartbeat_interval_s)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):  # asyncio.timeout: 3.11's wait_for can swallow a cancel
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        self._wake.clear()

    async def _mark_failed(self, exc: Exception) -> None:
        try:
            async with self._db.session() as session:
                await service.fail(session, supervisor_id=self.supervisor_id, reason=f"{type(exc).__name__}: {exc}",
                                   clock=self._clock)
        except Exception:  # the sweep still marks it UNRESPONSIVE when heartbeats stop
            log.exception("could not mark supervisor %s FAILED", self.supervisor_id)


class SupervisorManager:
    """Runtime component owning this node's supervisor agents and the missed-heartbeat sweep.

    ``agents`` maps supervisor id -> its live :class:`SupervisorAgent` (an agent is forgotten when its
    task ends). All intervals are ``settings.supervisor_heartbeat_interval_s`` seconds.
    """

    def __init__(self, *, db: Database, settings: Settings, clock: Clock) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.agents: dict[uuid.UUID, SupervisorAgent] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        """Restart an agent for every ACTIVE, PAUSED and UNRESPONSIVE supervisor, then start the sweep."""
        async with self.db.read_session() as session:
            ids = await service.running_ids(session)
        for supervisor_id in ids:
            self._spawn(supervisor_id)
        log.info("supervisor manager started %d agent(s)", len(ids))
        self._stopping.clear()
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="supervisor-sweep")

    async def stop(self) -> None:
        """End the sweep and every agent (each after its current unit of work); stored statuses are left
        unchanged."""
        self._stopping.set()
        if self._sweeper is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._sweeper), timeout=STOP_GRACE_S)
            except TimeoutError:
                self._sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._sweeper
            self._sweeper = None
        agents = list(self.agents.values())
        self.agents.clear()
        await asyncio.gather(*(agent.stop() for agent in agents))

    async def reconcile(self, supervisor_id: uuid.UUID) -> None:
        """Make this node's agent match the stored status: run one (and heartbeat now) while the
        supervisor is ACTIVE/PAUSED/UNRESPONSIVE, none otherwise. Call after every lifecycle command.
        """
        async with self.db.read_session() as session:
            status = await service.stored_status(session, supervisor_id=supervisor_id)
        agent = self.agents.get(supervisor_id)
        if status in states.RUNNING:
            if agent is None or not agent.running:
                self._spawn(supervisor_id)
            else:
                agent.wake()
        elif agent is not None:
            self.agents.pop(supervisor_id, None)
            await agent.stop()

    async def sweep_once(self) -> list[uuid.UUID]:
        """Run the missed-heartbeat sweep once; returns the ids it marked UNRESPONSIVE."""
        async with self.db.session() as session:
            marked = await service.sweep(session, settings=self.settings, clock=self.clock)
        for supervisor_id in marked:
            log.warning("supervisor %s missed more than %d heartbeats: UNRESPONSIVE", supervisor_id,
                        self.settings.supervisor_max_missed_heartbeats)
        return marked

    def _spawn(self, supervisor_id: uuid.UUID) -> SupervisorAgent:
        agent = SupervisorAgent(supervisor_id, db=self.db, settings=self.settings, clock=self.clock)
        self.agents[supervisor_id] = agent
        agent.start().add_done_callback(lambda _task: self._forget(agent))
        return agent

    def _forget(self, agent: SupervisorAgent) -> None:
        if self.agents.get(agent.supervisor_id) is agent:
            del self.agents[agent.supervisor_id]

    async def _sweep_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):  # asyncio.timeout: 3.11's wait_for can swallow a cancel
                async with asyncio.timeout(self.settings.supervisor_heartbeat_interval_s):
                    await self._stopping.wait()
            if self._stopping.is_set():
                return
            try:
                await self.sweep_once()
            except Exception:  # keep sweeping: the next interval may find the database back
                log.exception("supervisor sweep failed")


def register(runtime: Runtime) -> SupervisorManager:
    """Add the supervisor manager to ``runtime`` as component ``"supervisors"``; returns it."""
    manager = SupervisorManager(db=runtime.db, settings=runtime.settings, clock=runtime.clock)
    runtime.add(COMPONENT_NAME, manager)
    return manager
