"""The job scheduler on this node (manager-ai-mvp-spec.md §1.2 B, UC-4, UC-5; issue 5 item 4).

:class:`JobScheduler` is a runtime component (``register(runtime)`` adds it as ``"jobs"``). One task runs
scheduling passes; a pass is woken by an ``asyncio.Event`` (a submit, cancel, release or quota change from
the API; a ``turn.completed`` or ``agent.exited`` of a job's worker from ``WorkerManager.on_committed``; a
``worker.state_changed`` of a job's worker from the bus), with a slow safety poll (``poll_s``).

A pass, each step its own unit of work (no session is held across an ``await`` on an agent):

1. Turn endings of job workers: the job's own turn ended, so its allocation is released at once (a parent
   waiting for its children holds no worker slot: that is what keeps a tree from deadlocking at the quota
   limits) and its worker is terminated. ``completed`` -> the job waits in RUNNING for its children (a
   ``job.waiting`` blocker) or completes; ``failed`` / ``interrupted`` -> FAILED (unfinished descendants are
   canceled); ``interrupted`` while the worker is PAUSED -> the job stays RUNNING, its allocation released,
   blocker ``worker_paused``, and it finishes with the turn the resume runs.
2. Reconcile: a RUNNING job whose worker is gone (FAILED / TERMINATED / COMPLETED, or not alive on this node)
   without a turn ending -> FAILED ("agent lost"), allocation released.
3. PENDING jobs with a FAILED or CANCELED dependency -> CANCELED with that reason.
4. RUNNING parents whose turn ended and whose children are all terminal -> COMPLETED (or FAILED naming
   the child that did not complete).
5. RUNNING jobs that hold an allocation but have no agent yet (allocated through the API, or a crash between
   allocation and launch) are launched.
6. The pure policy (``jobs.quotas.plan``) chooses PENDING jobs whose dependencies are COMPLETED; each is
   started with ``quotas.allocate(start=True)`` (allocation + PENDING -> RUNNING in one transaction), then
   launched. Jobs that cannot start get a ``job.waiting`` blocker (``dependencies`` / ``quota`` /
   ``worker``), appended once per reason change.

Launch (worker per job): a fresh worker of the job's kind and access mode is created for each job, because an
agent's environment is fixed when it spawns, and the job's agent gets ``OVERSEER_URL``, ``OVERSEER_JOB_ID``,
``OVERSEER_TOKEN`` (a short-lived JWT: its workspace, ``jobs:read`` + ``jobs:write``, claim ``job_id``),
``OVERSEER_CLI`` (absolute path of the ``overseer`` command) and the venv's ``bin`` first on ``PATH``. The
token is never stored: it is added to the agent's ``AgentConfig.extra_env`` by wrapping the worker manager's
agent factory. Codex workers also get the ``overseer`` MCP server in their private ``CODEX_HOME/config.toml``
(see ``jobs.mcp_server``). A job submitted with ``worker_id`` / ``thread_id`` runs on that worker instead (no
job token: its environment was fixed before the job existed).

Restart: RUNNING jobs whose agent is gone are FAILED with the reason; parents waiting for children and
allocated-but-not-launched jobs are re-adopted. The scheduler never imports the web layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import sys
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from overseer.auth.scopes import Scope
from overseer.auth.tokens import Principal
from overseer.clock import Clock, utcnow
from overseer.config import Settings
from overseer.db.engine import Database
from overseer.errors import InvalidStateTransition, OverseerError, QuotaExceeded
from overseer.events.bus import PublishedEvent
from overseer.jobs import quotas, service, states
from overseer.jobs.models import Job, JobDependency, JobStatus, ResourceAllocation
from overseer.runtime.agent import AgentConfig, AgentEvent, EventSink
from overseer.runtime.supervisor import Runtime
from overseer.runtime.workers import WorkerManager
from overseer.workers.models import Worker, WorkerStatus
from overseer.workers.states import LIVE_STATES

log = logging.getLogger(__name__)

COMPONENT_NAME = "jobs"
_UNKNOWN = object()
S = JobStatus
SYSTEM = Principal("overseer:scheduler", frozenset({Scope.admin.value}), None)
GONE_WORKER_STATES = (WorkerStatus.FAILED.value, WorkerStatus.TERMINATED.value, WorkerStatus.COMPLETED.value)

JobStarter = Callable[[uuid.UUID], Awaitable[None]]
"""Runs a job that was just moved to RUNNING (default: :meth:`JobScheduler.launch`)."""


@dataclasses.dataclass(slots=True)
class PassStats:
    started: int = 0
    finished: int = 0
    blocked: int = 0
    seconds: float = 0.0


class JobScheduler:
    """Starts PENDING jobs when their dependencies, quota and a worker allow, and finishes them.

    ``starter`` replaces the agent launch (benchmarks). ``poll_s``: the safety poll, seconds.
    ``max_starts_per_pass`` bounds one pass (another pass follows at once when it was reached);
    ``start_batch`` jobs are started per unit of work.
    """

    def __init__(self, *, db: Database, settings: Settings, clock: Clock, workers: WorkerManager | None,
                 starter: JobStarter | None = None, poll_s: float = 2.0, max_starts_per_pass: int = 100,
                 max_candidates: int = 20_000, start_batch: int = 25) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.workers = workers
        self.starter = starter or self.launch
        self.poll_s = poll_s
        self.max_starts_per_pass = max_starts_per_pass
        self.max_candidates = max_candidates
        self.start_batch = max(1, start_batch)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._cursor = 0
        self._turn_endings: deque[tuple[uuid.UUID, AgentEvent]] = deque()
        self._job_endings: deque[tuple[uuid.UUID, dict[str, Any]]] = deque()
        self._job_workers: dict[uuid.UUID, uuid.UUID] = {}
        """worker id -> job id, for workers running a job's turn on this node."""
        self._agent_env: dict[uuid.UUID, dict[str, str]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._launching: set[uuid.UUID] = set()
        self._launched: set[uuid.UUID] = set()
        self._wait_keys: dict[uuid.UUID, Any] = {}
        """The blocker this node last recorded per PENDING job (saves re-reading ``waiting`` every pass)."""
        """Jobs this node launched since it started (re-adoption is only for jobs no node here launched)."""
        self._orig_factory: Any = None
        self.passes = 0
        self.last_pass = PassStats()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self.workers is not None:
            self.workers.on_committed.append(self._on_agent_events)
            self._orig_factory = self.workers.agent_factory
            self.workers.agent_factory = self._agent_factory
        self.db.bus.add_listener(self._on_event)
        await self.reconcile_after_restart()
        self._stopping = False
        self._task = asyncio.create_task(self._loop(), name="overseer-job-scheduler")
        self.wake()

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=5.0)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.workers is not None:
            with contextlib.suppress(ValueError):
                self.workers.on_committed.remove(self._on_agent_events)
            if self._orig_factory is not None:
                self.workers.agent_factory = self._orig_factory

    def wake(self) -> None:
        """Ask for a scheduling pass now (cheap; callable from any code on the loop)."""
        self._wake.set()

    async def _loop(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):  # asyncio.timeout: 3.11's wait_for can swallow a cancel
                async with asyncio.timeout(self.poll_s):
                    await self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                stats = await self.run_once()
                if stats.started >= self.max_starts_per_pass:
                    self._wake.set()
            except Exception:  # keep scheduling: the next wake or poll retries
                log.exception("job scheduling pass failed")
                await asyncio.sleep(min(self.poll_s, 0.5))

    # ------------------------------------------------------------------ hooks

    def _on_agent_events(self, batch: list[tuple[uuid.UUID, AgentEvent]]) -> None:
        """WorkerManager.on_committed: note the turn endings of job workers and wake the scheduler."""
        woke = False
        for worker_id, ev in batch:
            if ev.type == "turn.completed" and worker_id in self._job_workers:
                self._turn_endings.append((worker_id, ev))
                woke = True
            elif ev.type == "agent.exited" and worker_id in self._job_workers:
                woke = True
        if woke:
            self._wake.set()

    def _on_event(self, ev: PublishedEvent) -> None:
        if ev.event_type == "worker.state_changed" and ev.payload.get("to") in ("PAUSED", *GONE_WORKER_STATES):
            with contextlib.suppress(ValueError):
                if uuid.UUID(ev.entity_id) in self._job_workers:
                    self._wake.set()

    def _agent_factory(self, config: AgentConfig, sink: EventSink) -> Any:
        """Add the job's env (token included, never stored) to the agent of a job's worker."""
        raw = config.extra_env.get("OVERSEER_WORKER_ID")
        extra = self._agent_env.get(uuid.UUID(raw)) if raw else None
        if extra:
            env = {**config.extra_env, **extra}
            if "PATH" in extra:
                env["PATH"] = f"{extra['PATH']}{os.pathsep}{os.environ.get('PATH', '')}"
            config = dataclasses.replace(config, extra_env=env)
        return self._orig_factory(config, sink)

    # ------------------------------------------------------------------ one pass

    async def run_once(self) -> PassStats:
        """One scheduling pass (see the module docstring); returns what it did."""
        t0 = time.perf_counter()
        stats = PassStats()
        self.passes += 1
        while self._turn_endings:
            worker_id, ev = self._turn_endings.popleft()
            stats.finished += await self._turn_ended(worker_id, ev)
        while self._job_endings:
            batch = [self._job_endings.popleft() for _ in range(min(len(self._job_endings), 100))]
            stats.finished += await self._finish_turns(batch)
        stats.finished += await self._reconcile_running()
        async with self.db.session() as session:
            await quotas.begin_write(session)
            stats.finished += len(await service.cancel_blocked_dependents(session))
        async with self.db.session() as session:
            await quotas.begin_write(session)
            stats.finished += len(await service.settle_parents(session))
        await self._adopt_allocated()
        started, blocked = await self._start_ready()
        stats.started, stats.blocked = started, blocked
        stats.seconds = time.perf_counter() - t0
        self.last_pass = stats
        return stats

    async def _turn_ended(self, worker_id: uuid.UUID, ev: AgentEvent) -> int:
        async with self.db.read_session() as session:
            job_id = (await session.execute(select(Job.id).where(
                Job.worker_id == worker_id, Job.status == S.RUNNING, Job.turn_ended_at.is_(None)))).scalar()
        if job_id is None:
            return 0
        return await self.finish_turn(job_id, status=str(ev.payload.get("status") or "completed"),
                                      final_message=ev.payload.get("final_message"),
                                      error=ev.payload.get("error"), turn_id=ev.turn_id)

    def notify_turn_ended(self, job_id: uuid.UUID, *, status: str, final_message: str | None = None,
                          error: str | None = None) -> None:
        """Queue a turn ending for the next pass (what ``on_committed`` does for agent events; benchmarks)."""
        self._job_endings.append((job_id, {"status": status, "final_message": final_message, "error": error}))
        self._wake.set()

    async def finish_turn(self, job_id: uuid.UUID, *, status: str, final_message: str | None = None,
                          error: str | None = None, turn_id: str | None = None) -> int:
        """The job's own turn ended with ``status`` (completed | failed | interrupted); returns 1 if it
        finished the job. Releases its allocation; the job then waits for its children or finishes."""
        return await self._finish_turns([(job_id, {"status": status, "final_message": final_message,
                                                   "error": error, "turn_id": turn_id})])

    async def _finish_turns(self, endings: list[tuple[uuid.UUID, dict[str, Any]]]) -> int:
        """Apply turn endings in one unit of work; stop the finished jobs' workers after it commits."""
        terminate: list[uuid.UUID] = []
        forget: list[uuid.UUID] = []
        finished = 0
        async with self.db.session() as session:
            await quotas.begin_write(session)
            for job_id, kw in endings:
                done, worker_id, stop = await self._finish_turn_in(session, job_id, **kw)
                finished += done
                if worker_id is not None:
                    forget.append(worker_id)
                if stop is not None:
                    terminate.append(stop)
        for worker_id in forget:
            self._job_workers.pop(worker_id, None)
            self._agent_env.pop(worker_id, None)
        for worker_id in terminate:
            self._spawn(self._terminate(worker_id, reason="job's turn ended"))
        self._wake.set()
        return finished

    async def _finish_turn_in(self, session: Any, job_id: uuid.UUID, *, status: str, final_message: str | None,
                              error: str | None, turn_id: str | None = None
                              ) -> tuple[int, uuid.UUID | None, uuid.UUID | None]:
        """(finished, worker to forget, worker to terminate) for one turn ending, in ``session``."""
        job = await quotas.lock_job(session, job_id)
        if job is None or job.status != S.RUNNING or job.turn_ended_at is not None:
            return 0, None, None
        worker_id = job.worker_id
        worker = await session.get(Worker, worker_id) if worker_id else None
        if status == "interrupted" and worker is not None and worker.status == WorkerStatus.PAUSED:
            await quotas.release_job(session, job, reason="worker paused")
            await service.set_waiting(session, job, {"kind": "worker_paused", "worker_id": str(worker_id),
                                                     "reason": "the job's worker is paused; resume it to "
                                                               "continue (its slot was released)"})
            return 0, None, None
        job.turn_ended_at = utcnow()
        job.turn_id = turn_id or job.turn_id
        job.result = final_message
        await quotas.release_job(session, job, reason=f"turn {status}")
        finished = 0
        if status == "completed":
            kids = (await session.execute(select(Job.status).where(Job.parent_job_id == job.id))).scalars().all()
            pending = sum(1 for k in kids if not states.is_terminal(k))
            if pending:
                await service.set_waiting(session, job, {"kind": "children", "pending": pending,
                                                         "reason": f"waiting for {pending} child job(s)"})
        else:
            why = str(error or f"turn {status}")
            await self._fail_tree(session, job, reason=f"turn {status}: {why}"[:500], error=why)
            finished = 1
        return finished, worker_id, None if job.pinned_worker else worker_id

    async def _fail_tree(self, session: Any, job: Job, *, reason: str, error: str) -> None:
        await service.finish(session, job, S.FAILED, reason=reason, error=error)
        for child in await service.subtree(session, job.id, include_root=False):
            locked = await quotas.lock_job(session, child.id)
            if locked is not None and not states.is_terminal(locked.status):
                await service.finish(session, locked, S.CANCELED, reason=f"parent job {job.id} failed")

    async def _reconcile_running(self) -> int:
        """RUNNING jobs (own turn not ended) whose worker is gone or, on this node, has no live agent."""
        async with self.db.read_session() as session:
            rows = (await session.execute(
                select(Job.id, Job.worker_id, Worker.status, Job.updated_at)
                .join(Worker, Worker.id == Job.worker_id)
                .where(Job.status == S.RUNNING, Job.turn_ended_at.is_(None)))).all()
        lost: list[tuple[uuid.UUID, str]] = []
        paused: list[uuid.UUID] = []
        for job_id, worker_id, wstatus, _ in rows:
            if job_id in self._launching or worker_id is None:
                continue
            if wstatus in GONE_WORKER_STATES:
                lost.append((job_id, f"the job's worker is {wstatus}"))
            elif wstatus == WorkerStatus.PAUSED:
                paused.append(job_id)
            elif self.workers is not None and wstatus == WorkerStatus.IDLE and not self.workers.is_alive(worker_id) \
                    and worker_id not in self._job_workers:
                lost.append((job_id, "the job's agent is not running on this node"))
        n = 0
        for job_id, why in lost:
            async with self.db.session() as session:
                await quotas.begin_write(session)
                job = await quotas.lock_job(session, job_id)
                if job is None or job.status != S.RUNNING or job.turn_ended_at is not None:
                    continue
                await self._fail_tree(session, job, reason=f"agent lost: {why}", error=f"agent lost: {why}")
                n += 1
        for job_id in paused:
            async with self.db.session() as session:
                await quotas.begin_write(session)
                job = await quotas.lock_job(session, job_id)
                if job is None or job.status != S.RUNNING:
                    continue
                if await quotas.release_job(session, job, reason="worker paused"):
                    await service.set_waiting(session, job, {"kind": "worker_paused", "worker_id": str(job.worker_id),
                                                             "reason": "the job's worker is paused"})
        return n

    async def reconcile_after_restart(self) -> None:
        """Fail RUNNING jobs whose agent did not survive a restart (waiting parents are re-adopted)."""
        async with self.db.read_session() as session:
            rows = (await session.execute(select(Job.id, Job.worker_id).where(
                Job.status == S.RUNNING, Job.turn_ended_at.is_(None), Job.worker_id.is_not(None)))).all()
        for job_id, worker_id in rows:
            if worker_id is None:
                continue
            if self.workers is not None and self.workers.is_alive(worker_id):
                self._job_workers[worker_id] = job_id
                continue
            async with self.db.session() as session:
                await quotas.begin_write(session)
                job = await quotas.lock_job(session, job_id)
                if job is None or job.status != S.RUNNING or job.turn_ended_at is not None:
                    continue
                await self._fail_tree(session, job, reason="agent lost on server restart",
                                      error="agent process lost: the server restarted")

    async def _adopt_allocated(self) -> None:
        """Launch RUNNING jobs that hold an allocation but never got an agent (API allocate, crash)."""
        async with self.db.read_session() as session:
            ids = (await session.execute(
                select(Job.id).where(Job.status == S.RUNNING, Job.turn_ended_at.is_(None), Job.turn_id.is_(None),
                                     (Job.worker_id.is_(None)) | Job.pinned_worker.is_(True))
                .where(Job.id.in_(select(ResourceAllocation.job_id)
                                  .where(ResourceAllocation.released_at.is_(None)))))).scalars().all()
        for job_id in ids:
            if job_id not in self._launching and job_id not in self._launched:
                self._begin_launch(job_id)

    async def _start_ready(self) -> tuple[int, int]:
        """Plan and start ready PENDING jobs; record why the others wait."""
        async with self.db.read_session() as session:
            # plain rows, not ORM objects: a pass reads every PENDING job (10,000 in the benchmark)
            pending = (await session.execute(
                select(Job.id, Job.workspace_id, Job.depth, Job.priority, Job.created_at, Job.pinned_worker,
                       Job.worker_id)
                .where(Job.status == S.PENDING).order_by(Job.priority.desc(), Job.created_at)
                .limit(self.max_candidates))).all()
            if not pending:
                return 0, 0
            dep_rows = (await session.execute(
                select(JobDependency.job_id, JobDependency.depends_on_id, Job.status)
                .join(Job, Job.id == JobDependency.depends_on_id)
                .where(JobDependency.job_id.in_(select(Job.id).where(Job.status == S.PENDING))))).all()
            table = await quotas.load_quotas(session, default=self.settings.default_depth_quota)
            usage = await quotas.load_usage(session)
            pinned_status: dict[uuid.UUID, str] = {}
            pinned_ids = {j.worker_id for j in pending if j.pinned_worker and j.worker_id}
            if pinned_ids:
                pinned_status = dict((await session.execute(
                    select(Worker.id, Worker.status).where(Worker.id.in_(pinned_ids)))).all())
        waiting_deps: dict[uuid.UUID, list[str]] = {}
        for job_id, dep_id, dep_status in dep_rows:
            if dep_status != S.COMPLETED:
                waiting_deps.setdefault(job_id, []).append(str(dep_id))
        waits: dict[uuid.UUID, dict[str, Any] | None] = {}
        candidates: list[quotas.Candidate] = []
        for job in pending:
            if job.id in waiting_deps:
                deps = sorted(waiting_deps[job.id])
                waits[job.id] = {"kind": "dependencies", "dependencies": deps,
                                 "reason": f"waiting for {len(deps)} dependenc{'y' if len(deps) == 1 else 'ies'}"}
                continue
            if job.pinned_worker and job.worker_id is not None:
                st = pinned_status.get(job.worker_id)
                if st != WorkerStatus.IDLE or (self.workers is not None and not self.workers.is_alive(job.worker_id)):
                    waits[job.id] = {"kind": "worker", "worker_id": str(job.worker_id),
                                     "reason": f"waiting for worker {job.worker_id} to be idle ({st})"}
                    continue
            candidates.append(quotas.Candidate(job.id, job.workspace_id, job.depth, job.priority, job.created_at))
        plan = quotas.plan(candidates, usage, table, max_starts=self.max_starts_per_pass, start_depth=self._cursor)
        self._cursor = plan.next_depth
        for blocked_id, denial in plan.blocked.items():
            waits[uuid.UUID(str(blocked_id))] = {"kind": "quota", **denial.details(), "reason": denial.message()}
        # Only blockers that changed since this node last recorded them are written (set_waiting compares with
        # the stored one again, so a restarted node appends no duplicate job.waiting events).
        changed = [jid for jid, w in waits.items() if self._wait_keys.get(jid, _UNKNOWN) != service.wait_key(w)]
        for k in range(0, len(changed), 500):
            chunk = changed[k:k + 500]
            async with self.db.session() as session:
                await quotas.begin_write(session)
                blocked_jobs = (await session.execute(select(Job).where(Job.id.in_(chunk), Job.status == S.PENDING))
                                ).scalars().all()
                for blocked_job in blocked_jobs:
                    await service.set_waiting(session, blocked_job, waits[blocked_job.id])
            for jid in chunk:
                self._wait_keys[jid] = service.wait_key(waits[jid])
        if len(self._wait_keys) > 4 * self.max_candidates:  # forget jobs that left PENDING
            live = {j.id for j in pending}
            self._wait_keys = {k: v for k, v in self._wait_keys.items() if k in live}
        started = 0
        for k in range(0, len(plan.start), self.start_batch):
            started += await self._start_batch(plan.start[k:k + self.start_batch])
        return started, len(plan.blocked)

    async def _start_batch(self, batch: list[quotas.Candidate]) -> int:
        """Allocate + PENDING -> RUNNING for each job (one unit of work for the batch), then launch them.

        Each job's allocation and state change still commit together. ``quotas.allocate`` raises before it
        writes anything, so a job that no longer fits (another scheduler or an API call took the slot) or
        that was canceled meanwhile is skipped without undoing the others. Jobs are taken in (depth,
        workspace, id) order, so concurrent schedulers take the quota locks in the same order.
        """
        ok: list[uuid.UUID] = []
        denied: list[tuple[uuid.UUID, QuotaExceeded]] = []
        cache: quotas.SlotCache = {}
        async with self.db.session() as session:
            await quotas.begin_write(session)
            for c in sorted(batch, key=lambda c: (c.depth, str(c.workspace_id), str(c.job_id))):
                assert isinstance(c.job_id, uuid.UUID) and isinstance(c.workspace_id, uuid.UUID)
                try:
                    await quotas.allocate(session, job_id=c.job_id, workspace_id=c.workspace_id, depth=c.depth,
                                          worker_count=c.worker_count,
                                          default_quota=self.settings.default_depth_quota, start=True,
                                          reason=f"scheduled: a slot is free at depth {c.depth}",
                                          cache=cache, flush=False)
                    ok.append(c.job_id)
                except QuotaExceeded as refused:
                    denied.append((c.job_id, refused))
                except InvalidStateTransition:  # canceled (or started elsewhere) meanwhile
                    continue
        if denied:
            async with self.db.session() as session:
                await quotas.begin_write(session)
                for job_id, refusal in denied:
                    job = await session.get(Job, job_id)
                    if job is not None and job.status == S.PENDING:
                        await service.set_waiting(session, job, {"kind": "quota", **refusal.details,
                                                                 "reason": refusal.message})
        for job_id in ok:
            self._begin_launch(job_id)
        return len(ok)

    # ------------------------------------------------------------------ launching a job's agent

    def _begin_launch(self, job_id: uuid.UUID) -> None:
        self._launching.add(job_id)
        self._launched.add(job_id)

        async def run() -> None:
            try:
                await self.starter(job_id)
            except Exception as exc:
                log.exception("launching job %s failed", job_id)
                await self._launch_failed(job_id, f"{type(exc).__name__}: {exc}")
            finally:
                self._launching.discard(job_id)
                self._wake.set()

        self._spawn(run())

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def launch(self, job_id: uuid.UUID) -> None:
        """Start the job's turn: on a fresh worker with the job's env, or on the pinned worker/thread."""
        if self.workers is None:
            raise RuntimeError("no worker manager on this node")
        manager = self.workers
        async with self.db.session() as session:
            await quotas.begin_write(session)
            job = await quotas.lock_job(session, job_id)
            if job is None or job.status != S.RUNNING or job.turn_id is not None:
                return
            if job.pinned_worker:
                worker_id = job.worker_id or await self._thread_worker(session, job)
                job.worker_id = worker_id
            else:
                from overseer.workers import service as workers_service
                from overseer.workers.schemas import WorkerConfig, WorkerCreate

                data = WorkerCreate(workspace_id=job.workspace_id, kind=job.agent_kind,  # type: ignore[arg-type]
                                    name=f"job:{job.id}", config=WorkerConfig(access_mode=job.access_mode,  # type: ignore[arg-type]
                                                                              model=job.model))
                worker = await workers_service.create(session, principal=SYSTEM, data=data)
                worker.worker_metadata = {"job_id": str(job.id), "depth": job.depth}
                job.worker_id = worker_id = worker.id
                self._agent_env[worker_id] = self._job_env(job, worker_id)
            prompt, model, thread_id, pinned = job.prompt, job.model, job.thread_id, job.pinned_worker
            await service.set_waiting(session, job, None)
        self._job_workers[worker_id] = job_id
        if not pinned:
            await manager.launch(worker_id)
        thread, turn = await manager.send_turn(worker_id, prompt, thread_id=thread_id if pinned else None,
                                               model=model, reason=f"running job {job_id}")
        async with self.db.session() as session:
            await quotas.begin_write(session)
            job = await quotas.lock_job(session, job_id)
            if job is not None and job.turn_ended_at is None:
                job.thread_id, job.turn_id = thread, turn

    async def _thread_worker(self, session: Any, job: Job) -> uuid.UUID:
        rows = (await session.execute(select(Worker.id).where(
            Worker.workspace_id == job.workspace_id, Worker.thread_id == job.thread_id,
            Worker.status.in_([s.value for s in LIVE_STATES])).order_by(Worker.updated_at.desc()))).scalars().all()
        if not rows:
            raise OverseerError(f"no live worker in the workspace is on thread {job.thread_id}", code="THREAD_NOT_FOUND")
        return uuid.UUID(str(rows[0]))

    def _job_env(self, job: Job, worker_id: uuid.UUID) -> dict[str, str]:
        """The job's agent environment. Codex runs commands with ``bash -lc``, whose login profile resets
        ``PATH``; ``BASH_ENV`` (read by every non-interactive bash, login or not) puts the venv's ``bin``
        back in front, so ``overseer`` is found in the agent's shell."""
        bin_dir = str(Path(sys.executable).parent)
        cli = Path(bin_dir) / "overseer"
        home = self.settings.data_dir / "agents" / str(worker_id)
        home.mkdir(parents=True, exist_ok=True)
        bash_env = home / "overseer-env.sh"
        chained = os.environ.get("BASH_ENV")
        bash_env.write_text(f'export PATH="{bin_dir}:$PATH"\n'
                            + (f'[ -f "{chained}" ] && . "{chained}"\n' if chained else ""))
        return {
            "OVERSEER_URL": self.settings.resolved_public_url,
            "OVERSEER_JOB_ID": str(job.id),
            "OVERSEER_WORKSPACE_ID": str(job.workspace_id),
            "OVERSEER_TOKEN": service.job_token(self.settings.jwt_key(), job, issuer=self.settings.jwt_issuer),
            "OVERSEER_CLI": str(cli) if cli.exists() else f"{sys.executable} -m overseer.cli.main",
            "PATH": bin_dir,
            "BASH_ENV": str(bash_env),
        }

    async def _launch_failed(self, job_id: uuid.UUID, error: str) -> None:
        worker_id: uuid.UUID | None = None
        async with self.db.session() as session:
            await quotas.begin_write(session)
            job = await quotas.lock_job(session, job_id)
            if job is None or states.is_terminal(job.status):
                return
            worker_id = None if job.pinned_worker else job.worker_id
            await self._fail_tree(session, job, reason=f"agent could not start: {error}"[:500], error=error)
        if worker_id is not None and self.workers is not None:
            self._job_workers.pop(worker_id, None)
            self._agent_env.pop(worker_id, None)
            with contextlib.suppress(Exception):
                await self.workers.mark_failed(worker_id, reason=f"job launch failed: {error}"[:500])
            self._spawn(self._terminate(worker_id, reason="job launch failed"))

    async def _terminate(self, worker_id: uuid.UUID, *, reason: str) -> None:
        if self.workers is None:
            return
        try:
            await self.workers.terminate(worker_id, reason=reason)
        except OverseerError as exc:  # already terminal: nothing to stop
            log.debug("terminate worker %s: %s", worker_id, exc)

    async def stop_workers(self, worker_ids: list[uuid.UUID], *, reason: str) -> None:
        """After a cancel committed: interrupt the turns of the canceled jobs (terminating fresh workers)."""
        for worker_id in worker_ids:
            self._job_workers.pop(worker_id, None)
            self._agent_env.pop(worker_id, None)
            async with self.db.read_session() as session:
                pinned = (await session.execute(select(Job.pinned_worker).where(Job.worker_id == worker_id)
                                                .order_by(Job.created_at.desc()).limit(1))).scalar()
            if pinned:
                if self.workers is not None:
                    self._spawn(self.workers.interrupt(worker_id))
            else:
                self._spawn(self._terminate(worker_id, reason=reason))

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Wait for background launches and terminations (tests)."""
        deadline = time.monotonic() + timeout_s
        while self._tasks and time.monotonic() < deadline:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def register(runtime: Runtime) -> JobScheduler:
    """Add the job scheduler to ``runtime`` as component ``"jobs"`` (after ``"workers"``); returns it."""
    scheduler = JobScheduler(db=runtime.db, settings=runtime.settings, clock=runtime.clock,
                             workers=runtime.components.get("workers"))
    runtime.add(COMPONENT_NAME, scheduler)
    return scheduler


__all__ = ["COMPONENT_NAME", "JobScheduler", "PassStats", "register"]
