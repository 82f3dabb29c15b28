"""The read side of live operations (CM-007): snapshot, unified feed, signals, acknowledgement.

Everything here reads the projections and the log through the tenant filter; nothing reads the
in-memory fold, so any node answers the same.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from overseer.auth.tokens import Principal
from overseer.clock import utcnow
from overseer.db.repository import get_scoped, scoped
from overseer.events import log as event_log
from overseer.events.models import Event
from overseer.jobs.service import snapshot as jobs_snapshot
from overseer.ops.models import ApprovalStatus, OpenQuestion, PendingApproval, QuestionStatus
from overseer.ops.projections import OpsThread, OpsWorkspace, Signal
from overseer.ops.state import NEEDS_INPUT_KINDS
from overseer.workers.models import Worker
from overseer.workspaces.models import Workspace
from overseer.workspaces.service import scoped_ws

FEED_NOISE = ("message.delta", "command.output_delta", "status", "token_usage", "protocol.malformed", "chat.message")
NEEDS_INPUT_EVENTS = ("approval.requested", "question.requested")
FEED_MAX = 1000
LIVE_THREAD_STATUSES = frozenset({"running", "waiting_input", "stalled", "failed"})
SNAPSHOT_QUIET_THREADS = 10
"""Per workspace, the snapshot lists every thread with live work plus this many of the most recent others."""


def _iso(v: datetime | None) -> str | None:
    return v.isoformat() if v else None


def signal_dict(s: Any) -> dict[str, Any]:
    """A ``signals`` row (ORM object or plain row) as the API shows it."""
    return {"id": s.id, "workspace_id": str(s.workspace_id), "kind": s.kind, "title": s.title,
            "context": s.context, "thread_id": s.thread_id, "worker_id": s.worker_id, "job_id": s.job_id,
            "is_open": s.is_open, "raised_at": _iso(s.raised_at), "first_raised_at": _iso(s.first_raised_at),
            "raise_count": s.raise_count, "acked_at": _iso(s.acked_at), "acked_by": s.acked_by,
            "severity": s.severity, "needs_input": s.kind in NEEDS_INPUT_KINDS}


def thread_dict(t: Any) -> dict[str, Any]:
    """An ``ops_threads`` row (ORM object or plain row) as the API shows it."""
    return {"thread_id": t.thread_id, "workspace_id": str(t.workspace_id),
            "worker_id": str(t.worker_id) if t.worker_id else None, "agent_kind": t.agent_kind, "status": t.status,
            "current_task": t.current_task, "last_activity_at": _iso(t.last_activity_at), "next_step": t.next_step,
            "blockers": t.blockers, "active_turn_id": t.active_turn_id, "last_message": t.last_message,
            "turn_count": t.turn_count, "job_id": t.job_id}


async def list_signals(session: AsyncSession, *, principal: Principal, unacked_only: bool = True,
                       workspace_id: uuid.UUID | None = None, kinds: list[str] | None = None,
                       limit: int = 500) -> list[Signal]:
    """Signals ordered for an action center: most severe first, then newest."""
    stmt = scoped(select(Signal.__table__), Signal, principal)  # plain rows: no ORM instances to build
    if unacked_only:
        stmt = stmt.where(Signal.acked_at.is_(None))
    if workspace_id:
        stmt = stmt.where(Signal.workspace_id == workspace_id)
    if kinds:
        stmt = stmt.where(Signal.kind.in_(kinds))
    stmt = stmt.order_by(Signal.severity.desc(), Signal.raised_at.desc()).limit(limit)
    return list((await session.execute(stmt)).all())  # type: ignore[arg-type]


async def ack_signal(session: AsyncSession, *, principal: Principal, signal_id: str) -> Signal:
    """Acknowledge a signal (idempotent). Raises NotFound for an unknown or invisible signal."""
    stmt = scoped(select(Signal).where(Signal.id == signal_id), Signal, principal)
    sig = (await session.execute(stmt)).scalar_one_or_none()
    if sig is None:
        from overseer.errors import NotFound

        raise NotFound("signal", signal_id)
    if sig.acked_at is None:
        await event_log.append(session, workspace_id=sig.workspace_id, event_type="signal.acked", entity_type="signal",
                               entity_id=sig.id, payload={"by": principal.subject, "kind": sig.kind,
                                                          "thread_id": sig.thread_id})
        sig.acked_at = utcnow()  # the pipeline writes the same value from the event at commit
        sig.acked_by = principal.subject
    return sig


async def snapshot(session: AsyncSession, *, principal: Principal) -> dict[str, Any]:
    """The whole live picture the caller may see (workspaces with threads, signals, requests, workers)."""
    workspaces = list((await session.execute(scoped_ws(select(Workspace), principal).order_by(Workspace.name)))
                      .scalars())
    ops = {w.workspace_id: w for w in (await session.execute(scoped(select(OpsWorkspace), OpsWorkspace, principal)))
           .scalars()}
    threads: dict[uuid.UUID, list[dict[str, Any]]] = {}
    thread_totals: dict[uuid.UUID, int] = {}
    for t in (await session.execute(scoped(select(OpsThread.__table__), OpsThread, principal)
                                    .order_by(OpsThread.last_activity_at.desc()))).all():
        # Every thread with live work, and the most recent quiet ones: the snapshot stays small with
        # thousands of threads (the rest: GET /api/v1/ops/threads).
        n = thread_totals[t.workspace_id] = thread_totals.get(t.workspace_id, 0) + 1
        if t.status in LIVE_THREAD_STATUSES or n <= SNAPSHOT_QUIET_THREADS:
            threads.setdefault(t.workspace_id, []).append(thread_dict(t))
    unacked = dict((await session.execute(
        scoped(select(Signal.workspace_id, func.count()), Signal, principal)
        .where(Signal.acked_at.is_(None)).group_by(Signal.workspace_id))).all())
    signals = [signal_dict(s) for s in await list_signals(session, principal=principal)]
    approvals = (await session.execute(scoped(select(PendingApproval), PendingApproval, principal)
                                       .where(PendingApproval.status == ApprovalStatus.pending)
                                       .order_by(PendingApproval.created_at))).scalars().all()
    questions = (await session.execute(scoped(select(OpenQuestion), OpenQuestion, principal)
                                       .where(OpenQuestion.status == QuestionStatus.open)
                                       .order_by(OpenQuestion.created_at))).scalars().all()
    workers = (await session.execute(scoped(select(
        Worker.id, Worker.workspace_id, Worker.kind, Worker.name, Worker.status, Worker.thread_id, Worker.active_turn_id,
        Worker.last_event_at, Worker.last_error, Worker.tokens_used), Worker, principal).order_by(Worker.created_at))
               ).all()
    last_event_id = (await session.execute(scoped(select(func.max(Event.id)), Event, principal))).scalar_one()
    out_ws = []
    for w in workspaces:
        o = ops.get(w.id)
        out_ws.append({
            "id": str(w.id), "name": w.name, "root_path": w.root_path,
            "health": o.health if o else "healthy", "current_task": o.current_task if o else None,
            "last_activity_at": _iso(o.last_activity_at) if o else None, "next_step": o.next_step if o else None,
            "blockers": o.blockers if o else [], "active_thread_id": o.active_thread_id if o else None,
            "unacked_signals": int(unacked.get(w.id, 0)), "threads": threads.get(w.id, []),
            "threads_total": thread_totals.get(w.id, 0),
        })
    return {
        "generated_at": utcnow().isoformat(),
        "last_event_id": int(last_event_id or 0),
        "workspaces": out_ws,
        "signals": signals,
        "pending_approvals": [_approval(a) for a in approvals],
        "open_questions": [_question(q) for q in questions],
        "workers": [{"id": str(w.id), "workspace_id": str(w.workspace_id), "kind": w.kind, "name": w.name,
                     "status": w.status, "thread_id": w.thread_id, "active_turn_id": w.active_turn_id,
                     "last_event_at": _iso(w.last_event_at), "last_error": w.last_error,
                     "tokens_used": w.tokens_used} for w in workers],
        "jobs": await jobs_snapshot(session, principal=principal),
        "counts": {"unacked_signals": sum(int(v) for v in unacked.values()),
                   "needs_input": len(approvals) + len(questions),
                   "unacked_by_workspace": {str(k): int(v) for k, v in unacked.items()}},
    }


def _approval(a: PendingApproval) -> dict[str, Any]:
    return {"id": str(a.id), "workspace_id": str(a.workspace_id), "worker_id": str(a.worker_id),
            "thread_id": a.thread_id, "turn_id": a.turn_id, "kind": a.kind, "command": a.command, "cwd": a.cwd,
            "diff": a.diff, "reason": a.reason, "tool_name": a.tool_name, "status": a.status,
            "created_at": _iso(a.created_at)}


def _question(q: OpenQuestion) -> dict[str, Any]:
    return {"id": str(q.id), "workspace_id": str(q.workspace_id), "worker_id": str(q.worker_id),
            "thread_id": q.thread_id, "turn_id": q.turn_id, "questions": q.questions, "status": q.status,
            "created_at": _iso(q.created_at)}


async def feed(session: AsyncSession, *, principal: Principal, limit: int = 100, needs_input: bool = False,
               workspace_id: uuid.UUID | None = None, before: int | None = None) -> dict[str, Any]:
    """The unified activity feed, newest first, cursor by event id (``before``).

    ``needs_input`` keeps exactly the approval and question requests still waiting for an answer.
    """
    limit = max(1, min(limit, FEED_MAX))
    stmt = scoped(select(Event), Event, principal).order_by(Event.id.desc())
    if workspace_id:
        stmt = stmt.where(Event.workspace_id == workspace_id)
    if before:
        stmt = stmt.where(Event.id < before)
    if needs_input:
        pending = [str(i) for i in (await session.execute(
            scoped(select(PendingApproval.id), PendingApproval, principal)
            .where(PendingApproval.status == ApprovalStatus.pending))).scalars()]
        open_q = [str(i) for i in (await session.execute(
            scoped(select(OpenQuestion.id), OpenQuestion, principal)
            .where(OpenQuestion.status == QuestionStatus.open))).scalars()]
        # One indexed range per event type ((event_type, id) index), instead of a scan of the whole
        # log for an OR across types; only the few request events are then checked for "still open".
        approvals_q = stmt.where(Event.event_type == "approval.requested",
                                 Event.payload["approval_id"].as_string().in_(pending or [""]))
        questions_q = stmt.where(Event.event_type == "question.requested",
                                 Event.payload["question_id"].as_string().in_(open_q or [""]))
        rows_a = (await session.execute(approvals_q.limit(limit))).scalars().all()
        rows_q = (await session.execute(questions_q.limit(limit))).scalars().all()
        merged = sorted([*rows_a, *rows_q], key=lambda e: e.id, reverse=True)[:limit]
        return _feed_page(merged, limit)
    else:
        stmt = stmt.where(Event.event_type.not_in(FEED_NOISE))
    rows = (await session.execute(stmt.limit(limit))).scalars().all()
    return _feed_page(list(rows), limit)


def _feed_page(rows: list[Event], limit: int) -> dict[str, Any]:
    items = [{"id": e.id, "workspace_id": str(e.workspace_id), "event_type": e.event_type,
              "entity_type": e.entity_type, "entity_id": e.entity_id, "payload": e.payload,
              "created_at": _iso(e.created_at), "needs_input": e.event_type in NEEDS_INPUT_EVENTS}
             for e in rows]
    return {"items": items, "next_before": items[-1]["id"] if len(items) == limit else None}


async def list_threads(session: AsyncSession, *, principal: Principal, workspace_id: uuid.UUID | None = None,
                       status: str | None = None, limit: int = 100, offset: int = 0) -> dict[str, Any]:
    """All threads (most recently active first), paginated; the snapshot lists only the recent ones."""
    stmt = scoped(select(OpsThread.__table__), OpsThread, principal)
    if workspace_id:
        stmt = stmt.where(OpsThread.workspace_id == workspace_id)
    if status:
        stmt = stmt.where(OpsThread.status == status)
    total = (await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
    rows = (await session.execute(stmt.order_by(OpsThread.last_activity_at.desc()).limit(limit).offset(offset))).all()
    return {"items": [thread_dict(t) for t in rows], "total": int(total), "limit": limit, "offset": offset}


async def get_signal(session: AsyncSession, *, principal: Principal, signal_id: str) -> Signal:
    return await get_scoped(session, Signal, signal_id, principal, entity="signal")  # type: ignore[arg-type]
