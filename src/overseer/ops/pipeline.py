"""The live half of the event pipeline: fold committed events into the operations projections.

Registered as a ``Database.before_commit`` hook, so *every* transaction that appends events (agent
ingest, approvals, health sweeps, acks, dispatch) updates ``ops_workspaces``, ``ops_threads`` and
``signals`` in the same transaction, through the one reducer (``ops.state.reduce``).

The node keeps the folded :class:`OpsState` in memory (loaded from the projection tables at start,
then any events past ``ops_checkpoint`` replayed). A transaction that rolls back after the hook ran
invalidates it; the next use reloads from the tables. Only rows the reducer marked dirty are written.
Settled, acknowledged per-turn signals (completed/failed/needs_*) are dropped from memory (their rows
stay), which bounds memory by live work, not history.

Known limit: with several nodes on one PostgreSQL, each node folds only its own commits; a node that
restarts reloads everything from the tables.
"""

from __future__ import annotations

import logging
import operator
import uuid
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from overseer.db.engine import Database
from overseer.db.upsert import upsert
from overseer.events.bus import PublishedEvent
from overseer.events.models import Event
from overseer.ops.projections import OpsCheckpoint, OpsThread, OpsWorkspace, Signal
from overseer.ops.state import OpsState, SignalView, ThreadView, WorkspaceView, reduce_many

log = logging.getLogger(__name__)
PRUNABLE_KINDS = frozenset({"completed", "failed", "needs_approval", "needs_input"})


_FIELDS: dict[type, tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]] = {}


def _row(view: Any) -> dict[str, Any]:
    """A shallow copy of a view's fields (``dataclasses.asdict`` deep-copies, which is slow here),
    read by one ``attrgetter`` (in C)."""
    spec = _FIELDS.get(type(view))
    if spec is None:
        names = tuple(f.name for f in fields(view))
        spec = _FIELDS[type(view)] = (names, operator.attrgetter(*names))  # views have many fields
    names, get = spec
    return dict(zip(names, get(view), strict=True))


_UUIDS: dict[str, uuid.UUID] = {}
"""Parsed ids of the views' text keys (workspaces, workers: few, written every batch). Bounded: cleared
past 10,000 entries."""


def _uuid(v: str | None) -> uuid.UUID | None:
    if not v:
        return None
    u = _UUIDS.get(v)
    if u is None:
        if len(_UUIDS) > 10_000:
            _UUIDS.clear()
        u = _UUIDS[v] = uuid.UUID(v)
    return u


class OpsPipeline:
    """Owns this node's folded operations state and writes its dirty rows at commit."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.state = OpsState()
        self.loaded = False
        self.last_event_id = 0

    def install(self) -> None:
        self.db.before_commit.append(self.on_commit)
        self.db.on_rollback.append(self.invalidate)

    def invalidate(self) -> None:
        self.loaded = False

    async def on_commit(self, session: AsyncSession, events: list[PublishedEvent]) -> None:
        """Reduce ``events`` (id order) and write what they changed, inside ``session``'s transaction."""
        if not self.loaded:
            await self.load(session)  # sees this transaction's own events too, and replays them
        else:
            reduce_many(self.state, events)
        self.last_event_id = max(self.last_event_id, events[-1].id)
        await self.save(session)

    async def load(self, session: AsyncSession) -> None:
        """Restore: read the projections, then replay any logged event past the checkpoint."""
        state = OpsState()
        for w in (await session.execute(select(OpsWorkspace))).scalars():
            state.workspaces[str(w.workspace_id)] = WorkspaceView(
                workspace_id=str(w.workspace_id), health=w.health, current_task=w.current_task,
                last_activity_at=w.last_activity_at, next_step=w.next_step, blockers=list(w.blockers or []),
                active_thread_id=w.active_thread_id, last_event_id=w.last_event_id)
        for t in (await session.execute(select(OpsThread).order_by(OpsThread.last_event_id))).scalars():
            state.threads[t.thread_id] = ThreadView(
                thread_id=t.thread_id, workspace_id=str(t.workspace_id),
                worker_id=str(t.worker_id) if t.worker_id else None, agent_kind=t.agent_kind, status=t.status,
                current_task=t.current_task, last_activity_at=t.last_activity_at, next_step=t.next_step,
                blockers=list(t.blockers or []), active_turn_id=t.active_turn_id, last_message=t.last_message,
                turn_count=t.turn_count, job_id=t.job_id, last_event_id=t.last_event_id)
            if t.worker_id:
                state.worker_threads[str(t.worker_id)] = t.thread_id
        stmt = select(Signal).where((Signal.acked_at.is_(None)) | (Signal.is_open.is_(True))
                                    | (Signal.kind.not_in(PRUNABLE_KINDS)))
        for s in (await session.execute(stmt)).scalars():
            state.signals[s.id] = SignalView(
                id=s.id, workspace_id=str(s.workspace_id), kind=s.kind, title=s.title, context=dict(s.context or {}),
                thread_id=s.thread_id, worker_id=s.worker_id, job_id=s.job_id, is_open=s.is_open,
                raised_at=s.raised_at, first_raised_at=s.first_raised_at, raise_count=s.raise_count,
                acked_at=s.acked_at, acked_by=s.acked_by, severity=s.severity, last_event_id=s.last_event_id)
        checkpoint = (await session.execute(select(OpsCheckpoint.last_event_id).where(OpsCheckpoint.id == 1))
                      ).scalar_one_or_none() or 0
        replayed = 0
        while True:
            rows = (await session.execute(select(Event).where(Event.id > checkpoint).order_by(Event.id).limit(5000))
                    ).scalars().all()
            if not rows:
                break
            reduce_many(state, rows)
            checkpoint = rows[-1].id
            replayed += len(rows)
        if replayed:
            log.info("ops state: replayed %d events past the checkpoint", replayed)
        self.state = state
        self.last_event_id = checkpoint
        self.loaded = True

    async def save(self, session: AsyncSession) -> None:
        st = self.state
        if not st.dirty:
            return
        ws_rows: list[dict[str, Any]] = []
        th_rows: list[dict[str, Any]] = []
        sig_rows: list[dict[str, Any]] = []
        for kind, key in sorted(st.dirty):  # a fixed lock order across transactions
            if kind == "workspace" and key in st.workspaces:
                w = _row(st.workspaces[key])
                w["workspace_id"] = _uuid(key)
                ws_rows.append(w)
            elif kind == "thread" and key in st.threads:
                t = _row(st.threads[key])
                t["workspace_id"] = _uuid(t["workspace_id"])
                t["worker_id"] = _uuid(t["worker_id"])
                th_rows.append(t)
            elif kind == "signal" and key in st.signals:
                s = _row(st.signals[key])
                s["workspace_id"] = _uuid(s["workspace_id"])
                sig_rows.append(s)
        await upsert(session, OpsWorkspace.__table__, ws_rows, ["workspace_id"])  # type: ignore[arg-type]
        await upsert(session, OpsThread.__table__, th_rows, ["thread_id"])  # type: ignore[arg-type]
        await upsert(session, Signal.__table__, sig_rows, ["id"])  # type: ignore[arg-type]
        await upsert(session, OpsCheckpoint.__table__, [{"id": 1, "last_event_id": self.last_event_id}],  # type: ignore[arg-type]
                     ["id"])
        for row in sig_rows:  # bound memory: settled + acknowledged per-turn signals leave the hot state
            if row["kind"] in PRUNABLE_KINDS and row["acked_at"] is not None and not row["is_open"]:
                st.signals.pop(row["id"], None)
        st.dirty.clear()
