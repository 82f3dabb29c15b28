"""The worker manager: owns this node's agent processes and the ingest half of the event pipeline.

Data flow (ARCHITECTURE.md "How data flows")::

    adapter sink ─► ingest queue ─► one transaction per batch: append events + apply to projections
                                   (workers, pending_approvals, open_questions) ─► publish after commit

Contracts:
- Every :class:`AgentEvent` of every worker is appended to the event log (``entity_type="worker"``)
  before anyone is told (the bus publishes after commit).
- Events of one node are applied in arrival order by one consumer task; under load the consumer
  drains up to ``batch_max`` queued events into one transaction (no commit per event).
- Commands (send turn, pause, resume, terminate) commit their state change *before* acting on the
  agent, so an agent event that arrives at once can never be overwritten by the command's older view.
  The ingest path only moves RUNNING -> IDLE (turn ended) and live -> FAILED (process died).
- A DB session is never held across an ``await`` on an agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import shutil
import subprocess
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from overseer.clock import Clock
from overseer.config import Settings
from overseer.db.engine import Database
from overseer.db.upsert import upsert
from overseer.errors import AgentUnavailable, Conflict, InvalidStateTransition
from overseer.events import log as event_log
from overseer.jobs.mcp_server import mcp_server_spec
from overseer.ops.models import ApprovalStatus, OpenQuestion, PendingApproval, QuestionStatus
from overseer.queues import TrackedInbox
from overseer.runtime.agent import (
    AgentBinaryError,
    AgentConfig,
    AgentError,
    AgentEvent,
    AgentFactory,
    AgentSession,
    ApprovalDecision,
    EventSink,
    ThreadNotFound,
)
from overseer.workers import states
from overseer.workers.models import Worker, WorkerStatus
from overseer.workspaces.models import Workspace

log = logging.getLogger(__name__)
S = WorkerStatus

# Events too chatty for INFO logs; still appended to the log.
_DELTA_TYPES = frozenset({"message.delta", "command.output_delta"})
# Agent events that change nothing but the log and the worker's ``last_event_at`` (see ``_apply``,
# which handles every other type): the ingest loop appends them without the per-event call.
_PLAIN_TYPES = frozenset({"message.delta", "command.output_delta", "item.started", "item.completed",
                          "status", "plan.updated", "error", "protocol.malformed"})


@dataclass(slots=True)
class _BatchWorker:
    """What one ingest batch needs of a worker row, read once per batch instead of once per event."""

    worker: Worker
    id_str: str
    workspace_id: uuid.UUID
    kind: str
    last_at: Any = None


def default_agent_factory(config: AgentConfig, sink: EventSink) -> AgentSession:
    """Build the adapter for ``config.kind`` (imported lazily: each pulls in its own protocol code)."""
    if config.kind == "codex":
        from overseer.runtime.codex.adapter import CodexSession

        return CodexSession(config, sink)
    from overseer.runtime.claude.adapter import ClaudeSession

    return ClaudeSession(config, sink)


def check_binary(path: str, *, setting: str) -> str:
    """Return the resolved binary path or raise :class:`AgentUnavailable` naming ``setting``."""
    resolved = shutil.which(path) if os.sep not in path else (path if os.access(path, os.X_OK) else None)
    if not resolved:
        raise AgentUnavailable(
            f"Agent binary {path!r} not found or not executable; set {setting} or run `make agents`",
            details={"setting": setting, "binary": path},
        )
    return resolved


@dataclass
class LiveAgent:
    """One running agent process and what the manager knows about it."""

    worker_id: uuid.UUID
    workspace_id: uuid.UUID
    session: AgentSession
    config: AgentConfig
    stopping: bool = False
    thread_id: str | None = None
    """The thread this process has loaded (None right after spawn, even if the worker has one)."""
    turn_id: str | None = None
    prompt: str | None = None
    """The prompt of the turn being started (adapters may not echo it in ``turn.started``)."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    turn_ended: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True, slots=True)
class OpenRequest:
    entity: str  # "approval" | "question"
    row_id: uuid.UUID
    turn_id: str | None
    pending: Any = None
    """The row (a dict) when it was recorded by this node's ingest; it is inserted at the end of
    that batch, so an expiry in the same batch edits the dict (see ``_NEW_REQUESTS_KEY``)."""


@dataclass
class IngestStats:
    events: int = 0
    batches: int = 0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))

    def rate(self, window_s: float = 10.0) -> float:
        """Events per second over the last ``window_s`` seconds (monotonic clock)."""
        cutoff = time.monotonic() - window_s
        n = sum(1 for t in self.recent if t >= cutoff)
        return n / window_s


class WorkerManager:
    """Starts, watches and commands the agent processes of this node's workers."""

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        clock: Clock,
        agent_factory: AgentFactory | None = None,
        batch_max: int = 500,
        linger_s: float = 0.005,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.agent_factory = agent_factory or default_agent_factory
        self.batch_max = batch_max
        self.linger_s = linger_s
        self.agents: dict[uuid.UUID, LiveAgent] = {}
        self.stats = IngestStats()
        self._queue = TrackedInbox[tuple[uuid.UUID, AgentEvent]]()
        self._ingest_task: asyncio.Task[None] | None = None
        self.on_committed: list[Callable[[list[tuple[uuid.UUID, AgentEvent]]], None]] = []
        self._restarts: dict[uuid.UUID, deque[float]] = {}
        self._open: dict[uuid.UUID, dict[str, OpenRequest]] = {}
        """Per worker, its pending approvals / open questions by request id, as this node knows them
        (a worker missing here is loaded from the database on first need). Lets the ingest path
        expire requests without querying for them on every turn end."""
        self._restart_tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._ingest_task = asyncio.create_task(self._ingest_loop(), name="overseer-ingest")
        await self.reconcile_after_restart()

    async def stop(self) -> None:
        """Stop every agent (gracefully, then killed) and flush the ingest queue."""
        self._stopping = True
        for task in list(self._restart_tasks):
            task.cancel()
        await asyncio.gather(*self._restart_tasks, return_exceptions=True)
        await asyncio.gather(
            *(
                self._stop_agent(a, grace_s=min(self.settings.terminate_grace_s, 2.0))
                for a in list(self.agents.values())
            ),
            return_exceptions=True,
        )
        await self.flush()
        if self._ingest_task:
            self._ingest_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ingest_task

    async def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until every queued agent event has been committed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout_s)

    async def reconcile_after_restart(self) -> None:
        """Workers left live by a previous run of this node have no process now: mark them FAILED.

        Their pending approvals and questions are closed as expired (the request died with the agent).
        """
        lost: list[tuple[uuid.UUID, bool]] = []
        async with self.db.session() as session:
            rows = (
                (
                    await session.execute(
                        select(Worker).where(Worker.status.in_([s.value for s in states.LIVE_STATES]))
                    )
                )
                .scalars()
                .all()
            )
            for worker in rows:
                if worker.id in self.agents:
                    continue
                worker.active_turn_id = None
                worker.pid = None
                if worker.status == S.PAUSED:
                    continue  # a paused worker holds no process by design; resume restarts it
                was_running = worker.status == S.RUNNING
                worker.last_error = "agent process lost: the server restarted"
                await states.transition(
                    session, worker, S.FAILED, reason="agent process lost on server restart"
                )
                await _expire_requests(session, worker, reason="agent process lost on server restart")
                self._open.pop(worker.id, None)
                event_log.defer(session, workspace_id=worker.workspace_id, event_type="health.disconnected",
                                entity_type="worker", entity_id=worker.id,
                                payload={"worker_id": str(worker.id), "thread_id": worker.thread_id,
                                         "reason": "agent process lost on server restart"})
                lost.append((worker.id, was_running))
        for worker_id, was_running in lost:
            self._schedule_restart(worker_id, resume_turn=was_running)

    # ------------------------------------------------------------------ commands

    def agent_config(self, worker: Worker, workspace: Workspace) -> AgentConfig:
        """Build the AgentConfig of ``worker``; its private home lives under the data directory."""
        kind = worker.kind
        binary = self.settings.codex_bin if kind == "codex" else self.settings.claude_bin
        setting = "OVERSEER_CODEX_BIN" if kind == "codex" else "OVERSEER_CLAUDE_BIN"
        binary = check_binary(binary, setting=setting)
        home = self.settings.data_dir / "agents" / str(worker.id)
        home.mkdir(parents=True, exist_ok=True)
        cfg = worker.config or {}
        model = cfg.get("model") or (
            self.settings.codex_model if kind == "codex" else self.settings.claude_model
        )
        return AgentConfig(
            kind=kind,  # type: ignore[arg-type]
            binary=binary,
            cwd=workspace.root_path,
            home=str(home),
            model=model,
            access_mode=cfg.get("access_mode", "default"),
            model_base_url=self.settings.model_base_url,
            extra_env={
                "OVERSEER_URL": self.settings.resolved_public_url,
                "OVERSEER_WORKER_ID": str(worker.id),
                **{str(k): str(v) for k, v in (cfg.get("env") or {}).items()},
            },
            request_timeout_s=self.settings.agent_request_timeout_s,
            mcp_server=mcp_server_spec(self.settings) if self.settings.agent_mcp else None,
        )

    async def launch(self, worker_id: uuid.UUID) -> LiveAgent:
        """Spawn the worker's agent and complete its handshake. Raises AgentUnavailable."""
        async with self.db.read_session() as session:
            worker = await session.get(Worker, worker_id)
            assert worker is not None
            workspace = await session.get(Workspace, worker.workspace_id)
            assert workspace is not None
            config = self.agent_config(worker, workspace)
        live = self.agents.get(worker_id)
        if live and live.session.alive:
            return live

        def sink(ev: AgentEvent) -> None:  # a plain function: adapters call it without an await
            self._queue.put_nowait((worker_id, ev))

        agent = self.agent_factory(config, sink)
        live = LiveAgent(worker_id, worker.workspace_id, agent, config)
        self.agents[worker_id] = live
        try:
            await agent.start()
        except AgentBinaryError as exc:
            self.agents.pop(worker_id, None)
            raise AgentUnavailable(str(exc), details={"setting": exc.setting}) from exc
        except (AgentError, OSError) as exc:
            self.agents.pop(worker_id, None)
            with contextlib.suppress(Exception):
                await agent.stop(grace_s=0.5)
            raise AgentUnavailable(
                f"Agent failed to start: {exc}", details={"worker_id": str(worker_id)}
            ) from exc
        async with self.db.session() as session:
            await session.execute(update(Worker).where(Worker.id == worker_id).values(pid=agent.pid))
        return live

    def is_alive(self, worker_id: uuid.UUID) -> bool:
        live = self.agents.get(worker_id)
        return bool(live and live.session.alive and not live.stopping)

    async def send_turn(
        self,
        worker_id: uuid.UUID,
        prompt: str,
        *,
        thread_id: str | None = None,
        model: str | None = None,
        effort: str | None = None,
        reason: str = "turn requested",
    ) -> tuple[str, str]:
        """Run ``prompt`` as a new turn; returns (thread_id, turn_id).

        The worker must be IDLE (or RUNNING→ a 409 says a turn is in progress; use steer). The RUNNING
        state is committed before the agent is asked, so the turn's own events always land after it.
        Raises Conflict, InvalidStateTransition, AgentUnavailable.
        """
        async with self.db.session() as session:
            worker = await _lock_worker(session, worker_id)
            if worker.status == S.RUNNING:
                raise Conflict(
                    "A turn is already running on this worker; steer or interrupt it",
                    details={"worker_id": str(worker_id), "active_turn_id": worker.active_turn_id},
                )
            if worker.status == S.PAUSED:  # a paused worker holds further turns until resumed (UC-2)
                raise InvalidStateTransition("worker", worker.id, worker.status, S.RUNNING.value)
            states.check(worker, S.RUNNING)
            await states.transition(session, worker, S.RUNNING, reason=reason)
            known_thread = worker.thread_id
        try:
            live = await self.launch(worker_id)
            async with live.lock:
                # Continue the worker's own thread (with its history) unless told otherwise; a freshly
                # spawned process has no thread loaded, so it resumes it first.
                target = thread_id or live.thread_id or known_thread
                if target is None or target != live.thread_id:
                    await self._attach_thread(worker_id, live, target, turn_interrupted=False)
                thread = live.thread_id
                assert thread is not None  # _attach_thread set it
                live.prompt = prompt
                turn_id = await live.session.start_turn(thread, prompt, model=model, effort=effort)
                live.turn_id = turn_id
        except Exception as exc:
            await self._turn_failed_to_start(worker_id, exc)
            if isinstance(exc, AgentError):
                raise AgentUnavailable(
                    f"Agent refused the turn: {exc}", details={"worker_id": str(worker_id)}
                ) from exc
            raise
        async with self.db.session() as session:
            await session.execute(
                update(Worker)
                .where(Worker.id == worker_id)
                .values(thread_id=thread, active_turn_id=turn_id)
            )
        return thread, turn_id

    async def _attach_thread(self, worker_id: uuid.UUID, live: LiveAgent, target: str | None, *,
                             turn_interrupted: bool) -> str | None:
        """Load ``target`` into ``live``'s process (resume it), or a new thread when ``target`` is None.

        When the agent has no saved conversation for ``target`` (:class:`ThreadNotFound`: it was killed
        before saving it, or its home was wiped) a new thread is started instead, the worker's
        ``thread_id`` moves to it and a ``thread.lost`` event (entity: the lost thread; payload
        ``worker_id``, ``thread_id``, ``new_thread_id``, ``error``, ``turn_interrupted``) raises a
        ``failed`` signal, so the person learns the agent lost that context. Returns the lost thread id,
        or None. Caller holds ``live.lock``. Raises AgentError for any other refusal.
        """
        if target is None:
            live.thread_id = await live.session.start_thread()
            return None
        try:
            live.thread_id = await live.session.start_thread(resume_thread_id=target)
            return None
        except ThreadNotFound as exc:
            error = str(exc)
        log.warning("worker %s: thread %s cannot be resumed (%s); starting a new thread", worker_id, target, error)
        live.thread_id = await live.session.start_thread()
        async with self.db.session() as session:
            worker = await _lock_worker(session, worker_id)
            worker.thread_id = live.thread_id
            event_log.defer(session, workspace_id=worker.workspace_id, event_type="thread.lost",
                            entity_type="thread", entity_id=target,
                            payload={"worker_id": str(worker_id), "thread_id": target,
                                     "new_thread_id": live.thread_id, "agent_kind": worker.kind,
                                     "error": error[:2000], "turn_interrupted": turn_interrupted})
        return target

    async def _turn_failed_to_start(self, worker_id: uuid.UUID, exc: BaseException) -> None:
        async with self.db.session() as session:
            worker = await _lock_worker(session, worker_id)
            if worker.status == S.RUNNING:
                alive = self.is_alive(worker_id)
                worker.last_error = str(exc)[:2000]
                await states.transition(
                    session,
                    worker,
                    S.IDLE if alive else S.FAILED,
                    reason=f"turn failed to start: {exc}"[:500],
                )

    async def mark_failed(self, worker_id: uuid.UUID, *, reason: str) -> None:
        """Move a live worker to FAILED (its agent could not start or was lost)."""
        async with self.db.session() as session:
            worker = await _lock_worker(session, worker_id)
            if worker.status in {s.value for s in states.LIVE_STATES}:
                worker.last_error = reason[:2000]
                worker.active_turn_id = None
                await states.transition(session, worker, S.FAILED, reason=reason[:500])
                await _expire_requests(session, worker, reason=reason[:200])
                self._open.pop(worker.id, None)

    async def steer(self, worker_id: uuid.UUID, prompt: str) -> None:
        live = self._require_live(worker_id)
        if not live.turn_id or not live.thread_id:
            raise Conflict("No turn is running on this worker", details={"worker_id": str(worker_id)})
        await live.session.steer_turn(live.thread_id, live.turn_id, prompt)

    async def interrupt(self, worker_id: uuid.UUID, *, wait_s: float = 10.0) -> None:
        """Interrupt the running turn and wait (up to ``wait_s``) until the agent reports it ended."""
        live = self.agents.get(worker_id)
        if live and live.turn_id and live.thread_id and live.session.alive:
            with contextlib.suppress(AgentError):
                await live.session.interrupt_turn(live.thread_id, live.turn_id)
            live.turn_ended.clear()
            if live.turn_id is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(live.turn_ended.wait(), wait_s)

    async def pause(self, worker_id: uuid.UUID, *, reason: str = "paused by request") -> None:
        """RUNNING/IDLE -> PAUSED, then interrupt the running turn (UC-2). The thread is kept."""
        async with self.db.session() as session:
            worker = await _lock_worker(session, worker_id)
            await states.transition(session, worker, S.PAUSED, reason=reason)  # a repeat is a no-op
        await self.interrupt(worker_id)

    async def resume(self, worker_id: uuid.UUID, *, reason: str = "resumed by request") -> str | None:
        """PAUSED -> RUNNING: reattach the thread and continue it with the resume prompt (UC-3).

        With no thread to continue the worker goes back to IDLE. Returns the new turn id or None.
        """
        async with self.db.session() as session:
            worker = await _lock_worker(session, worker_id)
            if worker.status != S.PAUSED:
                states.check(worker, S.RUNNING)  # raises the 409 with the spec's details
            thread_id = worker.thread_id
            if thread_id is None:
                await states.transition(session, worker, S.IDLE, reason=reason + " (no thread to continue)")
                return None
            await states.transition(session, worker, S.IDLE, reason=reason)
        _, turn_id = await self.send_turn(
            worker_id, self.settings.resume_prompt, thread_id=thread_id, reason=reason
        )
        return turn_id

    async def terminate(self, worker_id: uuid.UUID, *, reason: str = "terminated by request") -> None:
        """Any live state -> TERMINATED: interrupt, stop gracefully, kill after the grace period."""
        async with self.db.session() as session:
            worker = await _lock_worker(session, worker_id)
            await states.transition(session, worker, S.TERMINATED, reason=reason)  # a repeat is a no-op
            worker.active_turn_id = None
            await _expire_requests(session, worker, reason="worker terminated")
            self._open.pop(worker.id, None)
        live = self.agents.get(worker_id)
        if live:
            await self.interrupt(worker_id)
            await self._stop_agent(live, grace_s=self.settings.terminate_grace_s)

    async def answer_approval(
        self, worker_id: uuid.UUID, request_id: str, decision: ApprovalDecision
    ) -> None:
        live = self._require_live(worker_id)
        await live.session.answer_approval(request_id, decision)

    async def answer_question(self, worker_id: uuid.UUID, request_id: str, answers: dict[str, Any]) -> None:
        live = self._require_live(worker_id)
        await live.session.answer_question(request_id, answers)

    def _require_live(self, worker_id: uuid.UUID) -> LiveAgent:
        live = self.agents.get(worker_id)
        if not live or not live.session.alive:
            raise Conflict("The worker's agent is not running", details={"worker_id": str(worker_id)})
        return live

    async def _stop_agent(self, live: LiveAgent, *, grace_s: float) -> None:
        live.stopping = True
        try:
            await live.session.stop(grace_s=grace_s)
        finally:
            self.agents.pop(live.worker_id, None)

    async def _open_requests(self, session: AsyncSession, worker: Worker) -> dict[str, OpenRequest]:
        known = self._open.get(worker.id)
        if known is None:
            known = {}
            for a in (await session.execute(select(PendingApproval.id, PendingApproval.request_id,
                                                   PendingApproval.turn_id).where(
                    PendingApproval.worker_id == worker.id, PendingApproval.status == ApprovalStatus.pending))).all():
                known[a.request_id] = OpenRequest("approval", a.id, a.turn_id)
            for q in (await session.execute(select(OpenQuestion.id, OpenQuestion.request_id, OpenQuestion.turn_id)
                                            .where(OpenQuestion.worker_id == worker.id,
                                                   OpenQuestion.status == QuestionStatus.open))).all():
                known[q.request_id] = OpenRequest("question", q.id, q.turn_id)
            self._open[worker.id] = known
        return known

    async def _expire(self, session: AsyncSession, worker: Worker, *, reason: str, turn_id: str | None = None,
                      request_id: str | None = None) -> None:
        """Expire the worker's matching open requests (none when nothing is open, no query).

        Each ``<entity>.expired`` event is deferred here, in its place in the log. A request recorded
        in this same batch is closed in its row dict; the others are confirmed at the end of the batch
        by :func:`_confirm_expiries` (one guarded UPDATE per table for the whole batch): a request a
        person answered meanwhile keeps its decision, and its expiry event is withdrawn."""
        known = await self._open_requests(session, worker)
        hits = [(rid, r) for rid, r in known.items()
                if (turn_id is None or r.turn_id == turn_id) and (request_id is None or rid == request_id)]
        if not hits:
            return
        new_rows = session.info.get(_NEW_REQUESTS_KEY, {})
        to_confirm = session.info.setdefault(_EXPIRIES_KEY, [])
        for rid, r in hits:
            known.pop(rid, None)
            event = event_log.defer(session, workspace_id=worker.workspace_id, event_type=f"{r.entity}.expired",
                                    entity_type=r.entity, entity_id=r.row_id,
                                    payload={"worker_id": str(worker.id), "reason": reason, "request_id": rid})
            if r.pending is not None and r.pending is new_rows.get(r.row_id):
                r.pending["status"] = ApprovalStatus.expired if r.entity == "approval" else QuestionStatus.expired
            else:
                to_confirm.append((r.entity, r.row_id, event))

    # ------------------------------------------------------------------ restart policy

    def _schedule_restart(self, worker_id: uuid.UUID, *, resume_turn: bool) -> None:
        """Erlang/OTP-style intensity: at most ``worker_restart_max`` restarts per
        ``worker_restart_window_s``, with jittered exponential backoff; past that the worker stays
        FAILED and a ``worker.restart_exhausted`` event escalates it (ARCHITECTURE.md "Defaults")."""
        if self._stopping or self.settings.worker_restart_max <= 0:
            return
        history = self._restarts.setdefault(worker_id, deque())
        now = time.monotonic()
        while history and now - history[0] > self.settings.worker_restart_window_s:
            history.popleft()
        task: asyncio.Task[None]
        if len(history) >= self.settings.worker_restart_max:
            task = asyncio.create_task(self._restart_exhausted(worker_id, len(history)))
        else:
            base = self.settings.worker_restart_backoff_s
            delay = min(base * 2 ** len(history), 30.0) * (0.5 + random.random())
            history.append(now)
            task = asyncio.create_task(self._restart(worker_id, delay, resume_turn), name=f"restart-{worker_id}")
        self._restart_tasks.add(task)
        task.add_done_callback(self._restart_tasks.discard)

    async def _restart_exhausted(self, worker_id: uuid.UUID, count: int) -> None:
        async with self.db.session() as session:
            worker = await _lock_worker(session, worker_id)
            event_log.defer(session, workspace_id=worker.workspace_id, event_type="worker.restart_exhausted",
                            entity_type="worker", entity_id=worker.id,
                            payload={"restarts": count, "window_s": self.settings.worker_restart_window_s,
                                     "last_error": worker.last_error})

    async def _restart(self, worker_id: uuid.UUID, delay_s: float, resume_turn: bool) -> None:
        """FAILED -> RETRYING -> (new process, thread resumed) -> IDLE, then continue the lost turn."""
        await asyncio.sleep(delay_s)
        async with self.db.session() as session:
            worker = await _lock_worker(session, worker_id)
            if worker.status != S.FAILED:
                return
            worker.restart_count += 1
            attempt = worker.restart_count
            thread_id = worker.thread_id
            await states.transition(session, worker, S.RETRYING, reason=f"restart #{attempt} by policy")
        try:
            live = await self.launch(worker_id)
            lost = None
            if thread_id:
                async with live.lock:
                    lost = await self._attach_thread(worker_id, live, thread_id, turn_interrupted=resume_turn)
        except Exception as exc:
            log.warning("restart of worker %s failed: %s", worker_id, exc)
            await self.mark_failed(worker_id, reason=f"restart #{attempt} failed: {exc}")
            self._schedule_restart(worker_id, resume_turn=resume_turn)
            return
        async with self.db.session() as session:
            worker = await _lock_worker(session, worker_id)
            if worker.status != S.RETRYING:
                return
            worker.last_error = None
            outcome = (f"thread {thread_id} lost, new thread {live.thread_id}" if lost
                       else f"thread {thread_id or '-'} resumed")
            await states.transition(session, worker, S.IDLE, reason=f"restarted; {outcome}")
        if resume_turn and thread_id and not lost:  # a new thread has nothing to continue
            with contextlib.suppress(Exception):
                await self.send_turn(worker_id, self.settings.resume_prompt, thread_id=thread_id,
                                     reason="continuing the turn the crash interrupted")

    # ------------------------------------------------------------------ ingest

    async def _ingest_loop(self) -> None:
        while True:
            batch = await self._next_batch()
            try:
                await self._apply_batch(batch)
            except Exception:
                log.exception("ingest batch of %d failed; retrying one by one", len(batch))
                for item in batch:
                    try:
                        await self._apply_batch([item])
                    except Exception:
                        log.exception("dropping agent event %s after a failed retry", item[1].type)
            self._queue.task_done(len(batch))
            # On SQLite the batch ran on the loop's thread without a single yield (db/inline.py): let the
            # other tasks (agents' readers, HTTP, streams) have a turn before the next one.
            await asyncio.sleep(0)

    async def _next_batch(self) -> list[tuple[uuid.UUID, AgentEvent]]:
        """Wait for one event, then gather more (group commit): drain the queue, and while the
        producers (agent readers) keep adding, let them run a few more loop iterations, up to
        ``linger_s``. An idle system adds one loop iteration of latency; a busy one gets large
        batches, hence one transaction for many events instead of one each."""
        queue = self._queue
        batch = [await queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.linger_s
        while len(batch) < self.batch_max:
            queue.take(batch, self.batch_max - len(batch))
            if len(batch) >= self.batch_max or loop.time() >= deadline:
                break
            before = len(batch)
            await asyncio.sleep(0)
            if queue.empty() and len(batch) == before:
                await asyncio.sleep(0)  # one more chance: a reader may be between lines
                if queue.empty():
                    break
        return batch

    async def _apply_batch(self, batch: list[tuple[uuid.UUID, AgentEvent]]) -> None:
        now = time.monotonic()
        async with self.db.ingest_session() as session:
            ids = {wid for wid, _ in batch}
            workers = {w.id: w for w in (await session.execute(_WORKERS_BY_ID, {"ids": list(ids)})).scalars()}
            ctx: dict[uuid.UUID, _BatchWorker] = {}
            info = log.isEnabledFor(logging.INFO)
            rows = event_log.deferred_rows(session)
            add_row = rows.append
            last_id: uuid.UUID | None = None
            bw: _BatchWorker | None = None
            for worker_id, ev in batch:
                if worker_id is not last_id:  # events come in runs of one worker: no UUID hash per event
                    last_id = worker_id
                    bw = ctx.get(worker_id)
                    if bw is None and (worker := workers.get(worker_id)) is not None:
                        bw = ctx[worker_id] = _BatchWorker(worker, str(worker.id), worker.workspace_id, worker.kind)
                if bw is None:  # the worker row is gone (deleted with its workspace)
                    continue
                bw.last_at = ev.at
                if ev.type in _PLAIN_TYPES:  # the bulk of a stream: logged, no projection of the worker row
                    # the row events.log.defer(convert=False) would queue, built inline (no call per event)
                    add_row({"workspace_id": bw.workspace_id, "event_type": ev.type, "entity_type": "worker",
                             "entity_id": bw.id_str, "payload": {**ev.payload, "thread_id": ev.thread_id,
                                                                 "turn_id": ev.turn_id, "agent_kind": bw.kind},
                             "created_at": ev.at})
                    if info and ev.type not in _DELTA_TYPES:
                        log.info("worker %s %s %s", bw.id_str, ev.type,
                                 {k: v for k, v in ev.payload.items() if k != "input"})
                else:
                    await self._apply(session, bw, ev, info)
            for bw in ctx.values():  # once per worker and batch, not per event (the last event's time)
                if bw.last_at is not None:
                    bw.worker.last_event_at = bw.last_at
            await _insert_new_requests(session)
            await _confirm_expiries(session)
        self.stats.events += len(batch)
        self.stats.batches += 1
        self.stats.recent.extend([now] * len(batch))
        for fn in self.on_committed:
            fn(batch)

    async def _apply(self, session: AsyncSession, bw: _BatchWorker, ev: AgentEvent, info: bool) -> None:
        """Append one agent event and apply it to the worker and request projections."""
        worker = bw.worker
        payload = {**ev.payload, "thread_id": ev.thread_id, "turn_id": ev.turn_id, "agent_kind": bw.kind}
        live = self.agents.get(worker.id)
        if ev.type == "turn.started" and not payload.get("prompt") and live is not None:
            payload["prompt"] = live.prompt
        if ev.type == "approval.requested":
            approval = _record_approval(session, worker, ev)
            (await self._open_requests(session, worker))[str(ev.payload.get("request_id"))] = OpenRequest(
                "approval", approval["id"], ev.turn_id, approval)
            payload["approval_id"] = str(approval["id"])
        elif ev.type == "question.requested":
            question = _record_question(session, worker, ev)
            (await self._open_requests(session, worker))[str(ev.payload.get("request_id"))] = OpenRequest(
                "question", question["id"], ev.turn_id, question)
            payload["question_id"] = str(question["id"])
        event_log.defer(
            session,
            workspace_id=bw.workspace_id,
            event_type=ev.type,
            entity_type="worker",
            entity_id=bw.id_str,
            payload=payload,
            at=ev.at,
            convert=False,  # agent payloads are parsed JSON already: the hot path skips the walk
        )
        if info and ev.type not in _DELTA_TYPES:
            log.info("worker %s %s %s", bw.id_str, ev.type, {k: v for k, v in ev.payload.items() if k != "input"})
        t = ev.type
        if t == "agent.ready" and isinstance(ev.payload.get("pid"), int):
            worker.pid = ev.payload["pid"]  # a resume may replace the process (Claude)
        elif t == "thread.started" and ev.thread_id:
            worker.thread_id = ev.thread_id
        elif t == "turn.started" and ev.turn_id:
            worker.active_turn_id = ev.turn_id
        elif t == "token_usage":
            total = ev.payload.get("total_tokens")
            if isinstance(total, int):
                if ev.payload.get("scope") == "thread":
                    worker.tokens_used = max(worker.tokens_used, total)
                else:
                    worker.tokens_used += total
        elif t == "turn.completed":
            if worker.active_turn_id in (None, ev.turn_id):
                worker.active_turn_id = None
            if live and live.turn_id == ev.turn_id:
                live.turn_id = None
                live.turn_ended.set()
            status = ev.payload.get("status")
            if status == "failed":
                worker.last_error = str(ev.payload.get("error") or "turn failed")[:2000]
            await self._expire(session, worker, reason="turn ended", turn_id=ev.turn_id)
            if worker.status == S.RUNNING:
                await states.transition(session, worker, S.IDLE, reason=f"turn {status or 'ended'}")
        elif t == "approval.resolved":
            await self._expire(
                session, worker, reason="withdrawn by the agent", request_id=str(ev.payload.get("request_id"))
            )
        elif t == "agent.exited":
            expected = bool(ev.payload.get("expected")) or (live is not None and live.stopping)
            worker.pid = None
            worker.active_turn_id = None
            await self._expire(session, worker, reason="agent process exited")
            if live is not None and live.session is not None and not live.session.alive:
                self.agents.pop(worker.id, None)
            if not expected and worker.status in {s.value for s in states.LIVE_STATES}:
                rc = ev.payload.get("returncode")
                sig = ev.payload.get("signal")
                was_running = worker.status == S.RUNNING
                worker.last_error = f"agent process exited unexpectedly (returncode={rc}, signal={sig})"
                if worker.status != S.PAUSED:
                    await states.transition(session, worker, S.FAILED, reason=worker.last_error)
                    self._schedule_restart(worker.id, resume_turn=was_running)


_WORKERS_BY_ID = select(Worker).where(Worker.id.in_(bindparam("ids", expanding=True)))
"""The ingest's per-batch load of its workers (built once: statement construction showed in profiles)."""

_EXPIRE_STATEMENTS: dict[type, Any] = {}


def _expire_statement(model: type[PendingApproval] | type[OpenQuestion]) -> Any:
    """``UPDATE <requests> SET status = :closed WHERE id IN :ids AND status = :open RETURNING id, request_id``,
    built once per table (building it per turn was a visible part of the ingest profile)."""
    stmt = _EXPIRE_STATEMENTS.get(model)
    if stmt is None:
        table = cast(Table, model.__table__)
        stmt = _EXPIRE_STATEMENTS[model] = (
            update(table).where(table.c.id.in_(bindparam("ids", expanding=True)), table.c.status == bindparam("open"))
            .values(status=bindparam("closed")).returning(table.c.id, table.c.request_id))
    return stmt


_EXPIRIES_KEY = "overseer.ingest_expiries"
"""session.info: ``(entity, row id, deferred event)`` of the requests ``_expire`` closed in this batch
that are already in the database; :func:`_confirm_expiries` updates them at the end of the batch."""

_NEW_REQUESTS_KEY = "overseer.ingest_new_requests"
"""session.info: row id -> row dict of the approvals/questions recorded in this unit of work, inserted
by :func:`_insert_new_requests` (one executemany per table) at the end of the batch."""


def _record_request(session: AsyncSession, worker: Worker, ev: AgentEvent, **columns: Any) -> dict[str, Any]:
    """A new approval/question row (a dict, inserted at the end of the batch) with the columns both
    tables share, plus ``columns``."""
    row = {"id": uuid.uuid4(), "workspace_id": worker.workspace_id, "worker_id": worker.id,
           "thread_id": ev.thread_id, "turn_id": ev.turn_id, "request_id": str(ev.payload.get("request_id")),
           **columns, "created_at": ev.at}
    session.info.setdefault(_NEW_REQUESTS_KEY, {})[row["id"]] = row
    return row


def _record_approval(session: AsyncSession, worker: Worker, ev: AgentEvent) -> dict[str, Any]:
    p = ev.payload
    return _record_request(
        session, worker, ev, kind=str(p.get("approval_kind") or "command"), command=p.get("command"),
        cwd=p.get("cwd"), diff=p.get("diff"), reason=p.get("reason"), tool_name=p.get("tool_name"),
        tool_input=p.get("input"), status=ApprovalStatus.pending, decided_by=None, decided_at=None)


def _record_question(session: AsyncSession, worker: Worker, ev: AgentEvent) -> dict[str, Any]:
    return _record_request(session, worker, ev, questions=list(ev.payload.get("questions") or []),
                           status=QuestionStatus.open, answers=None, answered_by=None, answered_at=None)


async def _insert_new_requests(session: AsyncSession) -> None:
    """Insert the approvals/questions recorded in this batch (Core executemany: building ORM
    instances for them cost more than the rest of their events' work)."""
    rows = session.info.pop(_NEW_REQUESTS_KEY, None)
    if not rows:
        return
    await session.flush()  # the worker rows first, as the ORM unit of work ordered them (lock order)
    approvals = [r for r in rows.values() if "diff" in r]
    questions = [r for r in rows.values() if "questions" in r]
    # Fresh uuid4 keys never conflict: the upsert is an insert through its driver-level SQLite path
    # (SQLAlchemy's per-row parameter processing showed in the ingest's profile).
    if approvals:
        await upsert(session, PendingApproval.__table__, approvals, ["id"])  # type: ignore[arg-type]
    if questions:
        await upsert(session, OpenQuestion.__table__, questions, ["id"])  # type: ignore[arg-type]


async def _confirm_expiries(session: AsyncSession) -> None:
    """Close the requests ``_expire`` marked in this batch: one ``UPDATE .. WHERE id IN (..) AND status
    = open RETURNING id`` per table. A row no longer open (a person answered it in a transaction that
    committed first) keeps its decision, and its deferred ``*.expired`` event is taken back out."""
    items = session.info.pop(_EXPIRIES_KEY, None)
    if not items:
        return
    gone: set[uuid.UUID] = set()
    for entity, model, open_status, closed in (
            ("approval", PendingApproval, ApprovalStatus.pending, ApprovalStatus.expired),
            ("question", OpenQuestion, QuestionStatus.open, QuestionStatus.expired)):
        ids = [row_id for e, row_id, _ in items if e == entity]
        if ids:
            done = {row.id for row in (await session.execute(
                _expire_statement(model), {"ids": ids, "open": open_status, "closed": closed})).all()}
            gone.update(i for i in ids if i not in done)
    if gone:
        withdrawn = {id(event) for _, row_id, event in items if row_id in gone}
        deferred = session.info.get(event_log.DEFERRED_KEY, [])
        deferred[:] = [d for d in deferred if id(d) not in withdrawn]


async def _lock_worker(session: AsyncSession, worker_id: uuid.UUID) -> Worker:
    stmt = select(Worker).where(Worker.id == worker_id)
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    worker = (await session.execute(stmt)).scalar_one()
    return worker


async def _expire_requests(
    session: AsyncSession,
    worker: Worker,
    *,
    reason: str,
    turn_id: str | None = None,
    request_id: str | None = None,
) -> int:
    """Close the worker's still-pending approvals and open questions as expired (with events).

    ``turn_id`` / ``request_id`` narrow what is closed. Returns how many stay open afterwards, so the
    ingest path can remember a worker with nothing open and skip the queries next time.
    """
    await session.flush()  # requests recorded earlier in this unit of work must be seen
    approvals = (await session.execute(select(PendingApproval).where(
        PendingApproval.worker_id == worker.id, PendingApproval.status == ApprovalStatus.pending))).scalars().all()
    questions = (await session.execute(select(OpenQuestion).where(
        OpenQuestion.worker_id == worker.id, OpenQuestion.status == QuestionStatus.open))).scalars().all()
    remaining = 0
    row: Any
    for row, entity, status in [*((a, "approval", ApprovalStatus.expired) for a in approvals),
                                *((q, "question", QuestionStatus.expired) for q in questions)]:
        if (turn_id is not None and row.turn_id != turn_id) or (request_id is not None and row.request_id != request_id):
            remaining += 1
            continue
        row.status = status
        event_log.defer(session, workspace_id=worker.workspace_id, event_type=f"{entity}.expired",
                        entity_type=entity, entity_id=row.id,
                        payload={"worker_id": str(worker.id), "reason": reason, "request_id": row.request_id})
    return remaining


def agent_version(binary: str) -> str | None:
    """``<binary> --version`` output (first line), or None when it cannot run."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else None


__all__ = ["LiveAgent", "Path", "WorkerManager", "agent_version", "check_binary", "default_agent_factory"]
