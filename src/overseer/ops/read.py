"""The read side of live operations (CM-007): snapshot, unified feed, signals, acknowledgement.

Everything here reads the projections and the log through the tenant filter; nothing reads the
in-memory fold, so any node answers the same.
"""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import case, func, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import UserDefinedType

from overseer.auth.tokens import Principal
from overseer.clock import utcnow
from overseer.db.repository import get_scoped, scoped
from overseer.events import log as event_log
from overseer.events.models import REQUEST_EVENT_TYPES, REQUEST_EVENTS, Event
from overseer.jobs.service import snapshot as jobs_snapshot
from overseer.ops.models import ApprovalStatus, OpenQuestion, PendingApproval, QuestionStatus
from overseer.ops.projections import OpsThread, OpsWorkspace, Signal
from overseer.ops.state import NEEDS_INPUT_KINDS
from overseer.workers.models import Worker
from overseer.workspaces.models import Workspace
from overseer.workspaces.service import scoped_ws

FEED_NOISE = ("message.delta", "command.output_delta", "status", "token_usage", "protocol.malformed", "chat.message")
NEEDS_INPUT_EVENTS = REQUEST_EVENT_TYPES
FEED_MAX = 1000
SNAPSHOT_THREADS = 100
"""The snapshot lists this many threads of the caller's fleet, the ones a person looks at first."""
SNAPSHOT_SIGNALS = 50
SNAPSHOT_REQUESTS = 50
"""At most this many pending approvals, and as many open questions, in the snapshot (oldest first)."""
SNAPSHOT_WORKERS = 50
SNAPSHOT_DIFF_CHARS = 2000
SNAPSHOT_TEXT_CHARS = 500
"""A thread's ``last_message`` and a worker's ``last_error`` are clipped to this many characters in the snapshot."""
THREAD_STATUSES = ("waiting_input", "failed", "stalled", "running", "idle", "completed")
"""The statuses the reducer gives a thread (``ops.state``), in the order a person reads them (the page's
``THREAD_ORDER``). A status not listed here sorts last and is counted as ``other``."""
THREAD_ATTENTION = {status: rank for rank, status in enumerate(THREAD_STATUSES)}
WORKER_ENDED = ("TERMINATED", "COMPLETED")


def _iso(v: datetime | str | None) -> str | None:
    """ISO 8601 text of a time (already text when read with :class:`_TextTime`)."""
    return v if v is None or isinstance(v, str) else v.isoformat()


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
    """The live picture the caller may see, sized for a person's first screen (the page, ``overseer status``).

    Shape (every id a string, every time an ISO 8601 string; CM-007 ``supervisor_snapshot``)::

        generated_at, last_event_id          # newest event the caller may see (resume the stream after it)
        workspaces: [{id, name, root_path, health, current_task, last_activity_at, next_step, blockers,
                      active_thread_id, unacked_signals, threads_total, threads_by_status: {status: n},
                      threads: [thread_dict]}]                         # by name, every visible workspace
        signals: [signal_dict]
        pending_approvals: [{id, workspace_id, worker_id, thread_id, turn_id, kind, command, cwd, diff,
                             diff_truncated, reason, tool_name, status, created_at}]
        open_questions: [{id, workspace_id, worker_id, thread_id, turn_id, questions, status, created_at}]
        workers: [{id, workspace_id, kind, name, status, thread_id, active_turn_id, last_event_at,
                   last_error, tokens_used}]
        jobs: [jobs.service.snapshot rows]
        counts: {unacked_signals, needs_input, pending_approvals, open_questions, workers, workers_ended,
                 unacked_by_workspace: {workspace_id: n}}

    Lists are capped so the snapshot stays small and fast with a big fleet (100 workspaces, 1,000
    threads); the totals are in ``counts`` / ``threads_total`` and everything cut is one request away:

    - ``threads``: the :data:`SNAPSHOT_THREADS` threads of the fleet a person looks at first, each under
      its workspace, in :data:`THREAD_STATUSES` order (waiting for input, failed, stalled, running, idle,
      completed), most recent first within each. ``threads_total`` / ``threads_by_status`` count every
      thread of the workspace; all of them: ``GET /api/v1/ops/threads?workspace_id=``.
    - ``signals``: :data:`SNAPSHOT_SIGNALS` unacknowledged signals, most severe then newest, with the open
      ``needs_approval`` / ``needs_input`` ones last (their requests are in ``pending_approvals`` /
      ``open_questions``). All: ``GET /api/v1/ops/signals``.
    - ``pending_approvals`` / ``open_questions``: the :data:`SNAPSHOT_REQUESTS` oldest; an approval's
      ``diff`` is clipped to :data:`SNAPSHOT_DIFF_CHARS` (``diff_truncated``). Full rows:
      ``GET /api/v1/ops/approvals``, ``GET /api/v1/ops/questions``.
    - ``workers``: :data:`SNAPSHOT_WORKERS`, live ones first, then oldest first; ``last_error`` (and a
      thread's ``last_message``) clipped to :data:`SNAPSHOT_TEXT_CHARS`. All: ``GET /api/v1/workers``.

    Six statements (a seventh counts the rows of a list that was cut) plus the jobs' ones, each
    tenant-filtered and built once per set of visible workspaces (:func:`_snapshot_queries`), read as
    plain rows (no ORM instances), ids and times as text. Uncached: every call reads the database.
    """
    q = _snapshot_queries(principal.workspace_ids)
    run = (await session.connection()).execute  # plain rows: no ORM instances, no ORM result machinery
    by_id: dict[str, dict[str, Any]] = {}
    unacked: dict[str, int] = {}
    last_event_id = 0
    for (ws_id, name, root_path, health, task, last_at, next_step, blockers, active_thread, n_unacked, last_id,
         n_threads, *by_status) in (await run(q.workspaces)).all():
        counts = {status: n for status, n in zip(THREAD_STATUSES, by_status, strict=True) if n}
        if n_threads and (other := n_threads - sum(counts.values())):
            counts["other"] = other
        by_id[ws_id] = {"id": ws_id, "name": name, "root_path": root_path, "health": health or "healthy",
                        "current_task": task, "last_activity_at": last_at, "next_step": next_step,
                        "blockers": blockers or [], "active_thread_id": active_thread, "unacked_signals": n_unacked,
                        "threads_total": n_threads or 0, "threads_by_status": counts, "threads": []}
        if n_unacked:
            unacked[ws_id] = n_unacked
        if last_id and last_id > last_event_id:
            last_event_id = last_id
    for (thread_id, ws_id, worker_id, agent_kind, status, task, last_at, next_step, blockers, turn_id, message,
         turn_count, job_id) in (await run(q.threads)).all():
        if (entry := by_id.get(ws_id)) is not None:
            entry["threads"].append({
                "thread_id": thread_id, "workspace_id": ws_id, "worker_id": worker_id, "agent_kind": agent_kind,
                "status": status, "current_task": task, "last_activity_at": last_at, "next_step": next_step,
                "blockers": blockers, "active_turn_id": turn_id, "last_message": _clip(message, SNAPSHOT_TEXT_CHARS),
                "turn_count": turn_count, "job_id": job_id})
    signals = (await run(q.signals)).all()
    approvals = (await run(q.approvals)).all()
    questions = (await run(q.questions)).all()
    workers = (await run(q.workers)).all()
    if len(approvals) < SNAPSHOT_REQUESTS and len(questions) < SNAPSHOT_REQUESTS and len(workers) < SNAPSHOT_WORKERS:
        n_approvals, n_questions, n_workers = len(approvals), len(questions), len(workers)
        n_ended = sum(1 for w in workers if w[4] in WORKER_ENDED)
    else:  # a list was cut: count them all (one statement)
        n_approvals, n_questions, n_workers, n_ended = (await run(q.totals)).one()
    return {
        "generated_at": utcnow().isoformat(),
        "last_event_id": last_event_id,
        "workspaces": list(by_id.values()),
        "signals": [signal_dict(s) for s in signals],
        "pending_approvals": [
            {"id": a_id, "workspace_id": ws_id, "worker_id": worker_id, "thread_id": thread_id, "turn_id": turn_id,
             "kind": kind, "command": command, "cwd": cwd, "diff": _clip(diff, SNAPSHOT_DIFF_CHARS),
             "diff_truncated": diff is not None and len(diff) > SNAPSHOT_DIFF_CHARS, "reason": reason,
             "tool_name": tool_name, "status": status, "created_at": created_at}
            for (a_id, ws_id, worker_id, thread_id, turn_id, kind, command, cwd, diff, reason, tool_name, status,
                 created_at) in approvals],
        "open_questions": [
            {"id": q_id, "workspace_id": ws_id, "worker_id": worker_id, "thread_id": thread_id, "turn_id": turn_id,
             "questions": qs, "status": status, "created_at": created_at}
            for q_id, ws_id, worker_id, thread_id, turn_id, qs, status, created_at in questions],
        "workers": [
            {"id": w_id, "workspace_id": ws_id, "kind": kind, "name": name, "status": status, "thread_id": thread_id,
             "active_turn_id": turn_id, "last_event_at": last_at, "last_error": _clip(error, SNAPSHOT_TEXT_CHARS),
             "tokens_used": tokens}
            for w_id, ws_id, kind, name, status, thread_id, turn_id, last_at, error, tokens in workers],
        "jobs": await jobs_snapshot(session, principal=principal),
        "counts": {"unacked_signals": sum(unacked.values()), "needs_input": n_approvals + n_questions,
                   "pending_approvals": n_approvals, "open_questions": n_questions,
                   "workers": n_workers, "workers_ended": int(n_ended or 0), "unacked_by_workspace": unacked},
    }


class _AsText(UserDefinedType[str]):
    """A column read straight as the text the snapshot renders (subclasses: :meth:`text`, None kept)."""

    cache_ok = True
    spec = ""

    def get_col_spec(self, **kw: Any) -> str:  # pragma: no cover - only used in selects, never in DDL
        return self.spec

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        text = self.text

        def process(v: Any) -> str | None:
            return None if v is None else text(v)
        return process

    @staticmethod
    def text(v: Any) -> str:
        raise NotImplementedError


class _TextId(_AsText):
    """A ``Uuid`` column read straight as its text (``8-4-4-4-12``, what ``str(uuid.UUID)`` gives).

    The snapshot renders every id it reads; on SQLite, where the column holds ``uuid.hex``, building a
    ``uuid.UUID`` and printing it again costs ~3 us an id, this ~1 us. Any other value (asyncpg's UUID)
    is printed with ``str``. ``tests/integration/test_snapshot.py`` checks the text equals the ORM's.
    """

    cache_ok = True  # SQLAlchemy reads it from each class's own __dict__
    spec = "UUID"

    @staticmethod
    def text(v: Any) -> str:
        if type(v) is str and len(v) == 32:  # SQLite: CHAR(32) hex
            v = v.lower()
            return f"{v[:8]}-{v[8:12]}-{v[12:16]}-{v[16:20]}-{v[20:]}"
        return str(v if isinstance(v, uuid.UUID) else uuid.UUID(str(v)))  # asyncpg's UUID prints in C


class _TextTime(_AsText):
    """A ``UTCDateTime`` column read straight as ``datetime.isoformat()`` of the aware UTC value.

    SQLite holds SQLAlchemy's ``YYYY-MM-DD HH:MM:SS.ffffff`` (naive UTC) text: rewritten without parsing
    (~1.4 us instead of ~6 us; ``isoformat`` drops a zero fraction, so does this). Anything else (an
    asyncpg ``datetime``, other text) goes through ``datetime``.
    """

    cache_ok = True
    spec = "TIMESTAMP"

    @staticmethod
    def text(v: Any) -> str:
        if type(v) is str:
            if len(v) == 26 and v[10] == " " and v[19] == ".":
                return f"{v[:10]}T{v[11:19]}{'' if v[20:] == '000000' else v[19:]}+00:00"
            v = datetime.fromisoformat(v)
        return (v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)).isoformat()


def _text_id(column: Any) -> Any:
    return type_coerce(column, _TextId()).label(column.key)


def _text_time(column: Any) -> Any:
    return type_coerce(column, _TextTime()).label(column.key)


_SIGNAL_COLUMNS = [_text_id(c) if c.key == "workspace_id" else
                   _text_time(c) if c.key in ("raised_at", "first_raised_at", "acked_at") else c
                   for c in Signal.__table__.c if c.key != "last_event_id"]


class _SnapshotQueries(NamedTuple):
    workspaces: Any
    threads: Any
    signals: Any
    approvals: Any
    questions: Any
    workers: Any
    totals: Any


@functools.lru_cache(maxsize=256)
def _snapshot_queries(workspace_ids: frozenset[uuid.UUID] | None) -> _SnapshotQueries:
    """The snapshot's statements for one set of visible workspaces (None: all), built once.

    Every statement goes through the tenant filter. Building one (and its SQL cache key) costs
    ~0.25 ms, about half of running it, and a node serves few distinct token scopes.
    """
    who = Principal("snapshot", frozenset(), workspace_ids)
    attention = case(THREAD_ATTENTION, value=OpsThread.status, else_=len(THREAD_ATTENTION))
    # Per workspace, correlated to its (visible) row: an index probe each.
    unacked = scoped(select(func.count()).where(Signal.workspace_id == Workspace.id, Signal.acked_at.is_(None)),
                     Signal, who).scalar_subquery()
    newest = select(func.max(Event.id))  # every event has a workspace: for all of them, one probe
    if workspace_ids is not None:  # max over an IN list would read every event of those workspaces
        newest = scoped(newest.where(Event.workspace_id == Workspace.id), Event, who)
    last_event = newest.scalar_subquery()
    thread_counts = scoped(select(OpsThread.workspace_id, func.count().label("total"), *[
        func.sum(case((OpsThread.status == status, 1), else_=0)).label(status) for status in THREAD_STATUSES]),
        OpsThread, who).group_by(OpsThread.workspace_id).subquery()
    workspaces = scoped_ws(select(
        _text_id(Workspace.id), Workspace.name, Workspace.root_path, OpsWorkspace.health, OpsWorkspace.current_task,
        _text_time(OpsWorkspace.last_activity_at), OpsWorkspace.next_step, OpsWorkspace.blockers,
        OpsWorkspace.active_thread_id, unacked, last_event, thread_counts.c.total,
        *[thread_counts.c[status] for status in THREAD_STATUSES])
        .outerjoin(OpsWorkspace, OpsWorkspace.workspace_id == Workspace.id)
        .outerjoin(thread_counts, thread_counts.c.workspace_id == Workspace.id).order_by(Workspace.name), who)
    # The most urgent threads are chosen on narrow rows (id, status, time); only those are read whole.
    urgency = (attention, OpsThread.last_activity_at.desc().nulls_last(), OpsThread.thread_id)
    first = scoped(select(OpsThread.thread_id).order_by(*urgency).limit(SNAPSHOT_THREADS), OpsThread, who)
    threads = scoped(select(
        OpsThread.thread_id, _text_id(OpsThread.workspace_id), _text_id(OpsThread.worker_id), OpsThread.agent_kind,
        OpsThread.status, OpsThread.current_task, _text_time(OpsThread.last_activity_at), OpsThread.next_step,
        OpsThread.blockers, OpsThread.active_turn_id, func.substr(OpsThread.last_message, 1, SNAPSHOT_TEXT_CHARS + 1),
        OpsThread.turn_count, OpsThread.job_id).where(OpsThread.thread_id.in_(first)).order_by(*urgency),
        OpsThread, who)
    # Open request signals go last: their approvals/questions are listed anyway, and 200 of them
    # must not push a failure out of the capped list.
    open_request = case((Signal.kind.in_(NEEDS_INPUT_KINDS) & Signal.is_open, 1), else_=0)
    signals = scoped(select(*_SIGNAL_COLUMNS).where(Signal.acked_at.is_(None))
                     .order_by(open_request, Signal.severity.desc(), Signal.raised_at.desc())
                     .limit(SNAPSHOT_SIGNALS), Signal, who)
    approvals = scoped(select(
        _text_id(PendingApproval.id), _text_id(PendingApproval.workspace_id), _text_id(PendingApproval.worker_id),
        PendingApproval.thread_id, PendingApproval.turn_id, PendingApproval.kind, PendingApproval.command,
        PendingApproval.cwd, func.substr(PendingApproval.diff, 1, SNAPSHOT_DIFF_CHARS + 1), PendingApproval.reason,
        PendingApproval.tool_name, PendingApproval.status, _text_time(PendingApproval.created_at))
        .where(PendingApproval.status == ApprovalStatus.pending).order_by(PendingApproval.created_at)
        .limit(SNAPSHOT_REQUESTS), PendingApproval, who)
    questions = scoped(select(
        _text_id(OpenQuestion.id), _text_id(OpenQuestion.workspace_id), _text_id(OpenQuestion.worker_id),
        OpenQuestion.thread_id, OpenQuestion.turn_id, OpenQuestion.questions, OpenQuestion.status,
        _text_time(OpenQuestion.created_at))
        .where(OpenQuestion.status == QuestionStatus.open).order_by(OpenQuestion.created_at)
        .limit(SNAPSHOT_REQUESTS), OpenQuestion, who)
    ended = Worker.status.in_(WORKER_ENDED)
    workers = scoped(select(
        _text_id(Worker.id), _text_id(Worker.workspace_id), Worker.kind, Worker.name, Worker.status,
        Worker.thread_id, Worker.active_turn_id, _text_time(Worker.last_event_at),
        func.substr(Worker.last_error, 1, SNAPSHOT_TEXT_CHARS + 1), Worker.tokens_used)
        .order_by(ended, Worker.created_at).limit(SNAPSHOT_WORKERS), Worker, who)
    totals = select(
        scoped(select(func.count()).where(PendingApproval.status == ApprovalStatus.pending), PendingApproval,
               who).scalar_subquery(),
        scoped(select(func.count()).where(OpenQuestion.status == QuestionStatus.open), OpenQuestion,
               who).scalar_subquery(),
        scoped(select(func.count(Worker.id)), Worker, who).scalar_subquery(),
        scoped(select(func.count()).where(ended), Worker, who).scalar_subquery())
    return _SnapshotQueries(workspaces=workspaces, threads=threads, signals=signals,
                            approvals=approvals, questions=questions, workers=workers, totals=totals)


def _clip(text: str | None, n: int) -> str | None:
    return text if text is None or len(text) <= n else text[: n - 1] + "\u2026"


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
        # One indexed range per event type (the partial request-type indexes, used only when the
        # query repeats their WHERE: REQUEST_EVENTS), instead of a scan of the whole log for an OR
        # across types; only the few request events are then checked for "still open".
        stmt = stmt.where(REQUEST_EVENTS)
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
