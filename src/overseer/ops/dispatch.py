"""The dispatch executor: runs a validated ``overseer.dispatch.v1`` contract (CM-005; the contract is
:mod:`overseer.ops.contract`, CM-006).

Execution:
- Actions are grouped by workspace; the groups run concurrently (``asyncio.gather``), the actions of one
  workspace run in contract order (``ack_signal`` actions form one more group). A failed action never
  stops the others. Results come back in contract order.
- ``dispatch_turn`` picks its worker: ``worker_id`` if given (it must be in the workspace, else
  ``NOT_FOUND``); else, with ``thread_id``, the live worker of the workspace that is on that thread
  (agents keep threads in the worker's private home, so only it can resume one; none: ``THREAD_NOT_FOUND``);
  else an IDLE live worker of ``agent_kind`` (and ``access_mode`` when given), least recently used first,
  trying the next one when a worker turns out to be busy; else it creates and launches a new worker the
  way ``POST /api/v1/workers`` does (a worker whose agent cannot start is marked FAILED and the action
  fails ``AGENT_UNAVAILABLE``). The turn is started with ``WorkerManager.send_turn`` (``thread_id`` given:
  ``thread/resume``; else the worker's current thread, or a new one). An explicit ``agent_kind`` or
  ``access_mode`` that the chosen worker does not have is ``WORKER_MISMATCH``.
- ``steer_turn`` / ``interrupt_turn`` act on the worker's running turn (none running: ``CONFLICT``).
- ``ack_signal`` acknowledges through ``ops.read.ack_signal`` (the same rule as the API route).
- Idempotency (``dispatch_turn`` with ``dedupe_key``): a ``dispatch_records`` row is inserted before the
  action acts, so of two concurrent twins only one acts; the other replays. A key seen before returns the
  stored result with ``idempotent_replay: true`` and does nothing (``DISPATCH_IN_PROGRESS`` while the first
  is still running). Only dispatched results are kept: a failed action releases its key, so a retry acts.
  A reservation left by a crash is taken over after :data:`STALE_RESERVATION`.
- Each dispatch appends one ``dispatch.executed`` event per workspace touched, with that workspace's
  results only (``entity_type="dispatch"``, ``entity_id`` = the dispatch id), so the feed shows it.
- No DB session is held across an ``await`` on an agent.

Result per action (``ActionResult``)::

    {"action_id", "type", "status": "dispatched" | "failed", "workspace_id", "worker_id", "thread_id",
     "turn_id", "job_id": null, "error": {"code", "message"} | null, "idempotent_replay": bool}
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from overseer.auth.tokens import Principal
from overseer.clock import utcnow
from overseer.db.engine import Database
from overseer.db.repository import scoped
from overseer.errors import AgentUnavailable, Conflict, InvalidStateTransition, NotFound, OverseerError
from overseer.events import log as event_log
from overseer.ops import read
from overseer.ops.contract import VERSION, AckSignal, Action, Contract, DispatchTurn, InterruptTurn, SteerTurn
from overseer.ops.dispatch_models import DispatchRecord
from overseer.runtime.workers import WorkerManager
from overseer.workers import service as workers_service
from overseer.workers.models import Worker, WorkerStatus
from overseer.workers.schemas import WorkerConfig, WorkerCreate
from overseer.workers.states import LIVE_STATES
from overseer.workspaces.models import Workspace
from overseer.workspaces.service import scoped_ws

log = logging.getLogger(__name__)

STALE_RESERVATION = timedelta(minutes=10)
"""A dedupe reservation with no result after this long was left by a crash and may be taken over."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ActionError(BaseModel):
    code: str
    message: str


class ActionResult(BaseModel):
    action_id: str
    type: str
    status: Literal["dispatched", "failed"]
    workspace_id: uuid.UUID | None = None
    worker_id: uuid.UUID | None = None
    thread_id: str | None = None
    turn_id: str | None = None
    job_id: uuid.UUID | None = None
    """Always null for now: jobs come later."""
    error: ActionError | None = None
    idempotent_replay: bool = False


class DispatchResponse(BaseModel):
    version: Literal["overseer.dispatch.v1"] = VERSION
    results: list[ActionResult]


class _Failed(Exception):
    """Ends an action with ``status: failed`` (internal control flow)."""

    def __init__(self, code: str, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.fields = code, message, fields


async def visible_workspaces(session: AsyncSession, *, principal: Principal, ids: set[uuid.UUID]) -> set[uuid.UUID]:
    """The subset of ``ids`` that exist and that ``principal`` may see (for ``validate_contract``)."""
    if not ids:
        return set()
    rows = await session.execute(scoped_ws(select(Workspace.id).where(Workspace.id.in_(ids)), principal))
    return set(rows.scalars())


async def execute(db: Database, manager: WorkerManager | None, *, principal: Principal,
                  contract: Contract) -> DispatchResponse:
    """Run every action of a validated contract; returns one result per action, in contract order.

    ``manager`` None (no runtime on this node) fails the agent actions with ``RUNTIME_UNAVAILABLE``.
    Never raises for a failed action; raises only if the closing ``dispatch.executed`` events cannot be written.
    """
    return await _Executor(db, manager, principal).run(contract)


class _Executor:
    def __init__(self, db: Database, manager: WorkerManager | None, principal: Principal) -> None:
        self.db, self.manager, self.principal = db, manager, principal
        self.dispatch_id = uuid.uuid4()

    async def run(self, contract: Contract) -> DispatchResponse:
        groups: dict[Any, list[int]] = {}
        for i, action in enumerate(contract.actions):
            key = action.workspace_id if not isinstance(action, AckSignal) else "signals"
            groups.setdefault(key, []).append(i)
        results: list[ActionResult | None] = [None] * len(contract.actions)

        async def run_group(indexes: list[int]) -> None:
            for i in indexes:
                results[i] = await self._one(contract.actions[i])

        await asyncio.gather(*(run_group(ix) for ix in groups.values()))
        done = [r for r in results if r is not None]
        await self._record(done)
        return DispatchResponse(results=done)

    async def _one(self, action: Action) -> ActionResult:
        base: dict[str, Any] = {"action_id": action.action_id, "type": action.type,
                                "workspace_id": getattr(action, "workspace_id", None)}
        handlers: dict[str, Callable[[Any], Awaitable[ActionResult]]] = {
            "dispatch_turn": self._dispatch_turn, "steer_turn": self._steer_turn,
            "interrupt_turn": self._interrupt_turn, "ack_signal": self._ack_signal}
        try:
            return await handlers[action.type](action)
        except _Failed as exc:
            return ActionResult(**{**base, **exc.fields}, status="failed",
                                error=ActionError(code=exc.code, message=exc.message))
        except OverseerError as exc:
            return ActionResult(**base, status="failed", error=ActionError(code=exc.code, message=exc.message))
        except Exception:
            log.exception("dispatch action %s (%s) failed unexpectedly", action.action_id, action.type)
            return ActionResult(**base, status="failed",
                                error=ActionError(code="INTERNAL_ERROR", message="Unexpected error"))

    def _require_manager(self) -> WorkerManager:
        if self.manager is None:
            raise _Failed("RUNTIME_UNAVAILABLE", "The agent runtime is not running on this node")
        return self.manager

    async def _worker_in(self, workspace_id: uuid.UUID, worker_id: uuid.UUID) -> Worker:
        async with self.db.read_session() as session:
            try:
                worker = await workers_service.get(session, principal=self.principal, worker_id=worker_id)
            except NotFound:
                worker = None
        if worker is None or worker.workspace_id != workspace_id:
            raise _Failed("NOT_FOUND", f"worker {worker_id} not found in workspace {workspace_id}")
        return worker

    # ------------------------------------------------------------------ dispatch_turn

    async def _dispatch_turn(self, a: DispatchTurn) -> ActionResult:
        if a.dedupe_key is None:
            return await self._dispatch_turn_now(a)
        replay, record_id = await self._reserve(a)
        if replay is not None:
            return replay
        assert record_id is not None
        result: ActionResult | None = None
        try:
            try:
                result = await self._dispatch_turn_now(a)
            except _Failed as exc:
                result = ActionResult(action_id=a.action_id, type=a.type, workspace_id=a.workspace_id,
                                      **exc.fields, status="failed",
                                      error=ActionError(code=exc.code, message=exc.message))
            return result
        finally:
            if result is not None and result.status == "dispatched":
                async with self.db.session() as session:
                    await session.execute(update(DispatchRecord).where(DispatchRecord.id == record_id)
                                          .values(result=result.model_dump(mode="json")))
            else:  # failed, crashed or cancelled: release the key so a retry acts
                async with self.db.session() as session:
                    await session.execute(delete(DispatchRecord).where(DispatchRecord.id == record_id))

    async def _reserve(self, a: DispatchTurn) -> tuple[ActionResult | None, uuid.UUID | None]:
        """Insert the dedupe row first; returns (replay, None) when the key was seen, else (None, row id)."""
        assert a.dedupe_key is not None
        for _ in range(3):
            record_id = uuid.uuid4()
            try:
                async with self.db.session() as session:
                    session.add(DispatchRecord(id=record_id, workspace_id=a.workspace_id, dedupe_key=a.dedupe_key,
                                               action_id=a.action_id, result=None, created_at=utcnow()))
                    await session.flush()
                return None, record_id
            except IntegrityError:
                pass
            async with self.db.read_session() as session:
                row = (await session.execute(scoped(select(DispatchRecord), DispatchRecord, self.principal).where(
                    DispatchRecord.workspace_id == a.workspace_id, DispatchRecord.dedupe_key == a.dedupe_key))
                ).scalar_one_or_none()
            if row is None:  # released in between (the earlier attempt failed): try to reserve again
                continue
            if row.result is None:
                if utcnow() - row.created_at > STALE_RESERVATION:
                    async with self.db.session() as session:
                        await session.execute(delete(DispatchRecord).where(DispatchRecord.id == row.id,
                                                                           DispatchRecord.result.is_(None)))
                    continue
                return ActionResult(action_id=a.action_id, type=a.type, workspace_id=a.workspace_id,
                                    status="failed", idempotent_replay=True,
                                    error=ActionError(code="DISPATCH_IN_PROGRESS",
                                                      message=f"An action with dedupe_key {a.dedupe_key!r} "
                                                              f"({row.action_id}) is still being dispatched")), None
            earlier = {**row.result, "action_id": a.action_id, "idempotent_replay": True}
            return ActionResult.model_validate(earlier), None
        raise _Failed("DISPATCH_IN_PROGRESS", f"dedupe_key {a.dedupe_key!r} is contended; retry")

    async def _dispatch_turn_now(self, a: DispatchTurn) -> ActionResult:
        self._require_manager()
        explicit = a.worker_id is not None or a.thread_id is not None
        if a.worker_id is not None:
            candidates = [await self._worker_in(a.workspace_id, a.worker_id)]
        elif a.thread_id is not None:
            candidates = [await self._thread_worker(a.workspace_id, a.thread_id)]
        else:
            candidates = await self._idle_workers(a)
        if explicit:
            self._check_fit(a, candidates[0])
        last_error: OverseerError | None = None
        for worker in candidates:
            try:
                return await self._send(a, worker.id)
            except OverseerError as exc:
                if explicit:
                    raise _Failed(exc.code, exc.message, worker_id=worker.id) from exc
                # busy (Conflict / InvalidStateTransition) or its agent just failed: try the next one
                if not isinstance(exc, Conflict | InvalidStateTransition):
                    last_error = exc
        worker_id = await self._create_worker(a)
        try:
            return await self._send(a, worker_id)
        except OverseerError as exc:
            raise _Failed(exc.code, exc.message if last_error is None else f"{exc.message} (and an idle worker "
                          f"failed before: {last_error.message})", worker_id=worker_id) from exc

    async def _send(self, a: DispatchTurn, worker_id: uuid.UUID) -> ActionResult:
        manager = self._require_manager()
        thread_id, turn_id = await manager.send_turn(
            worker_id, a.prompt, thread_id=a.thread_id, model=a.model, effort=a.effort,
            reason=f"dispatched by {self.principal.subject} (action {a.action_id})"[:500])
        return ActionResult(action_id=a.action_id, type=a.type, status="dispatched", workspace_id=a.workspace_id,
                            worker_id=worker_id, thread_id=thread_id, turn_id=turn_id)

    def _check_fit(self, a: DispatchTurn, worker: Worker) -> None:
        if "agent_kind" in a.model_fields_set and worker.kind != a.agent_kind:
            raise _Failed("WORKER_MISMATCH", f"worker {worker.id} is a {worker.kind} worker, not {a.agent_kind}",
                          worker_id=worker.id)
        mode = (worker.config or {}).get("access_mode", "default")
        if a.access_mode is not None and mode != a.access_mode:
            raise _Failed("WORKER_MISMATCH", f"worker {worker.id} runs with access_mode {mode!r}, not "
                                             f"{a.access_mode!r}", worker_id=worker.id)

    async def _thread_worker(self, workspace_id: uuid.UUID, thread_id: str) -> Worker:
        async with self.db.read_session() as session:
            rows = (await session.execute(
                scoped(select(Worker), Worker, self.principal)
                .where(Worker.workspace_id == workspace_id, Worker.thread_id == thread_id,
                       Worker.status.in_([s.value for s in LIVE_STATES]))
                .order_by(Worker.updated_at.desc()))).scalars().all()
        if not rows:
            raise _Failed("THREAD_NOT_FOUND", f"no live worker in workspace {workspace_id} is on thread {thread_id}; "
                                              "pass worker_id, or omit thread_id to start a new thread")
        return rows[0]

    async def _idle_workers(self, a: DispatchTurn) -> list[Worker]:
        """IDLE workers of the kind (and access mode) with a live agent, least recently used first."""
        manager = self._require_manager()
        async with self.db.read_session() as session:
            rows = (await session.execute(
                scoped(select(Worker), Worker, self.principal)
                .where(Worker.workspace_id == a.workspace_id, Worker.kind == a.agent_kind,
                       Worker.status == WorkerStatus.IDLE))).scalars().all()
        fits = [w for w in rows if manager.is_alive(w.id)
                and (a.access_mode is None or (w.config or {}).get("access_mode", "default") == a.access_mode)]
        return sorted(fits, key=lambda w: (w.last_event_at or _EPOCH, w.created_at))

    async def _create_worker(self, a: DispatchTurn) -> uuid.UUID:
        """Create and launch a worker like ``POST /api/v1/workers``; an agent that cannot start fails it."""
        manager = self._require_manager()
        data = WorkerCreate(workspace_id=a.workspace_id, kind=a.agent_kind, name=f"dispatch:{a.action_id}"[:255],
                            config=WorkerConfig(access_mode=a.access_mode or "default"))
        async with self.db.session() as session:
            worker = await workers_service.create(session, principal=self.principal, data=data)
            workspace = await session.get(Workspace, worker.workspace_id)
            assert workspace is not None
            manager.agent_config(worker, workspace)  # a missing binary raises here: nothing is created
        try:
            await manager.launch(worker.id)
        except AgentUnavailable as exc:
            await manager.mark_failed(worker.id, reason=exc.message)
            raise _Failed(exc.code, exc.message, worker_id=worker.id) from exc
        return worker.id

    # ------------------------------------------------------------------ steer / interrupt / ack

    async def _steer_turn(self, a: SteerTurn) -> ActionResult:
        manager = self._require_manager()
        await self._worker_in(a.workspace_id, a.worker_id)
        try:
            await manager.steer(a.worker_id, a.prompt)
        except OverseerError as exc:
            raise _Failed(exc.code, exc.message, worker_id=a.worker_id) from exc
        live = manager.agents.get(a.worker_id)
        return ActionResult(action_id=a.action_id, type=a.type, status="dispatched", workspace_id=a.workspace_id,
                            worker_id=a.worker_id, thread_id=live.thread_id if live else None,
                            turn_id=live.turn_id if live else None)

    async def _interrupt_turn(self, a: InterruptTurn) -> ActionResult:
        manager = self._require_manager()
        await self._worker_in(a.workspace_id, a.worker_id)
        live = manager.agents.get(a.worker_id)
        if not manager.is_alive(a.worker_id) or live is None or not live.turn_id:
            raise _Failed("CONFLICT", "No turn is running on this worker", worker_id=a.worker_id)
        thread_id, turn_id = live.thread_id, live.turn_id
        await manager.interrupt(a.worker_id)
        return ActionResult(action_id=a.action_id, type=a.type, status="dispatched", workspace_id=a.workspace_id,
                            worker_id=a.worker_id, thread_id=thread_id, turn_id=turn_id)

    async def _ack_signal(self, a: AckSignal) -> ActionResult:
        try:
            async with self.db.session() as session:
                signal = await read.ack_signal(session, principal=self.principal, signal_id=a.signal_id)
                workspace_id = signal.workspace_id
        except NotFound as exc:
            raise _Failed("NOT_FOUND", exc.message) from exc
        return ActionResult(action_id=a.action_id, type=a.type, status="dispatched", workspace_id=workspace_id)

    # ------------------------------------------------------------------ audit

    async def _record(self, results: list[ActionResult]) -> None:
        """Append one ``dispatch.executed`` event per workspace touched (its own results only)."""
        by_ws: dict[uuid.UUID, list[ActionResult]] = {}
        for r in results:
            if r.workspace_id is not None:
                by_ws.setdefault(r.workspace_id, []).append(r)
        if not by_ws:
            return
        async with self.db.session() as session:
            for workspace_id, rs in by_ws.items():
                await event_log.append(
                    session, workspace_id=workspace_id, event_type="dispatch.executed", entity_type="dispatch",
                    entity_id=self.dispatch_id,
                    payload={"dispatch_id": self.dispatch_id, "version": VERSION, "actor": self.principal.subject,
                             "dispatched": sum(r.status == "dispatched" for r in rs),
                             "failed": sum(r.status == "failed" for r in rs),
                             "results": [r.model_dump(mode="json") for r in rs]})


__all__ = ["STALE_RESERVATION", "ActionError", "ActionResult", "DispatchResponse", "execute", "visible_workspaces"]
