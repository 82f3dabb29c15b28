"""Worker rules: creation in a visible workspace, tenant-scoped reads, derived liveness, metrics.

Commands that touch the agent (turns, pause, resume, terminate) live in
:class:`overseer.runtime.workers.WorkerManager`, which commits state before acting on the agent.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from overseer.auth.tokens import Principal
from overseer.config import Settings
from overseer.db.repository import get_scoped, scoped
from overseer.errors import ValidationFailed
from overseer.events import log as event_log
from overseer.ops.models import ApprovalStatus, OpenQuestion, PendingApproval, QuestionStatus
from overseer.workers import states
from overseer.workers.models import StateTransition, Worker, WorkerStatus
from overseer.workers.schemas import WorkerCreate
from overseer.workspaces import service as workspaces


def target_workspace(principal: Principal, workspace_id: uuid.UUID | None) -> uuid.UUID:
    """The workspace a create request is for: the body's, or the token's only one. Raises 400/404."""
    if workspace_id is None:
        workspace_id = principal.default_workspace_id
        if workspace_id is None:
            raise ValidationFailed("workspace_id is required for a token that spans several workspaces",
                                   details={"fields": [{"loc": ["body", "workspace_id"], "msg": "required"}]})
    return workspace_id


async def create(session: AsyncSession, *, principal: Principal, data: WorkerCreate) -> Worker:
    """Insert an IDLE worker in a visible workspace. Raises NotFound (workspace), ValidationFailed."""
    ws = await workspaces.get(session, principal=principal,
                              workspace_id=target_workspace(principal, data.workspace_id))
    worker = Worker(id=uuid.uuid4(), workspace_id=ws.id, kind=data.kind, name=data.name,
                    config=data.config.model_dump(), status=WorkerStatus.IDLE)
    session.add(worker)
    await session.flush()
    await event_log.append(session, workspace_id=ws.id, event_type="worker.created", entity_type="worker",
                           entity_id=worker.id, payload={"kind": worker.kind, "name": worker.name,
                                                         "actor": principal.subject})
    return worker


async def get(session: AsyncSession, *, principal: Principal, worker_id: uuid.UUID) -> Worker:
    return await get_scoped(session, Worker, worker_id, principal, entity="worker")


async def list_(session: AsyncSession, *, principal: Principal, status: str | None = None,
                workspace_id: uuid.UUID | None = None) -> list[Worker]:
    stmt = scoped(select(Worker), Worker, principal).order_by(Worker.created_at)
    if status:
        stmt = stmt.where(Worker.status == status)
    if workspace_id:
        stmt = stmt.where(Worker.workspace_id == workspace_id)
    return list((await session.execute(stmt)).scalars())


async def transitions(session: AsyncSession, *, worker: Worker, limit: int = 100) -> list[StateTransition]:
    rows = await session.execute(select(StateTransition).where(StateTransition.worker_id == worker.id)
                                 .order_by(StateTransition.id.desc()).limit(limit))
    return list(reversed(rows.scalars().all()))


def liveness(worker: Worker, *, alive: bool, now: datetime, settings: Settings) -> str:
    """Derived liveness: from process facts and event freshness, never from the agent's self-report."""
    if worker.status not in {s.value for s in states.LIVE_STATES} or worker.status == WorkerStatus.PAUSED:
        return "stopped"
    if not alive:
        return "disconnected"
    if worker.last_event_at is None:
        return "healthy"
    age = (now - worker.last_event_at).total_seconds()
    if worker.active_turn_id and age > settings.disconnect_after_s:
        return "disconnected"
    return "stale" if worker.active_turn_id and age > settings.stale_after_s else "healthy"


async def metrics(session: AsyncSession, *, principal: Principal) -> dict[str, Any]:
    """Counts over the caller's workspaces: workers by status, active turns, requests, tokens."""
    by_status = dict((await session.execute(
        scoped(select(Worker.status, func.count()), Worker, principal).group_by(Worker.status))).all())
    active = (await session.execute(scoped(select(func.count()).select_from(Worker), Worker, principal)
                                    .where(Worker.active_turn_id.is_not(None)))).scalar_one()
    tokens = (await session.execute(scoped(select(func.coalesce(func.sum(Worker.tokens_used), 0)), Worker,
                                           principal))).scalar_one()
    approvals = (await session.execute(scoped(select(func.count()).select_from(PendingApproval), PendingApproval,
                                              principal).where(PendingApproval.status == ApprovalStatus.pending))
                 ).scalar_one()
    questions = (await session.execute(scoped(select(func.count()).select_from(OpenQuestion), OpenQuestion,
                                              principal).where(OpenQuestion.status == QuestionStatus.open))
                 ).scalar_one()
    return {
        "workers_total": sum(by_status.values()),
        "workers_by_status": {s.value: int(by_status.get(s.value, 0)) for s in WorkerStatus},
        "active_turns": int(active),
        "pending_approvals": int(approvals),
        "open_questions": int(questions),
        "tokens_used": int(tokens),
    }
