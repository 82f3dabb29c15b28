"""Approvals and questions: list them, decide/answer them, deliver the answer to the waiting agent.

Rules (issue 4 item 5): only a ``pending`` approval / ``open`` question can be answered (else 409
``REQUEST_CLOSED`` with its status); the answer is delivered to the agent first and then recorded
with who and when (audited as an ``approval.decided`` / ``question.answered`` event); an agent that
is gone closes the request as expired (409).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from overseer.auth.tokens import Principal
from overseer.clock import utcnow
from overseer.db.engine import Database
from overseer.db.repository import get_scoped, scoped
from overseer.errors import Conflict
from overseer.events import log as event_log
from overseer.ops.models import ApprovalStatus, OpenQuestion, PendingApproval, QuestionStatus
from overseer.runtime.workers import WorkerManager

DECISION_STATUS = {
    "accept": ApprovalStatus.accepted,
    "accept_for_session": ApprovalStatus.accepted_for_session,
    "decline": ApprovalStatus.declined,
    "cancel": ApprovalStatus.canceled,
}


async def list_approvals(session: AsyncSession, *, principal: Principal, status: str | None = "pending",
                         workspace_id: uuid.UUID | None = None, limit: int = 200) -> list[PendingApproval]:
    stmt = scoped(select(PendingApproval), PendingApproval, principal).order_by(PendingApproval.created_at)
    if status:
        stmt = stmt.where(PendingApproval.status == status)
    if workspace_id:
        stmt = stmt.where(PendingApproval.workspace_id == workspace_id)
    return list((await session.execute(stmt.limit(limit))).scalars())


async def list_questions(session: AsyncSession, *, principal: Principal, status: str | None = "open",
                         workspace_id: uuid.UUID | None = None, limit: int = 200) -> list[OpenQuestion]:
    stmt = scoped(select(OpenQuestion), OpenQuestion, principal).order_by(OpenQuestion.created_at)
    if status:
        stmt = stmt.where(OpenQuestion.status == status)
    if workspace_id:
        stmt = stmt.where(OpenQuestion.workspace_id == workspace_id)
    return list((await session.execute(stmt.limit(limit))).scalars())


def _closed(kind: str, row: Any) -> Conflict:
    return Conflict(f"This {kind} is no longer waiting for an answer ({row.status})", code="REQUEST_CLOSED",
                    details={"id": str(row.id), "status": row.status})


async def decide(db: Database, manager: Callable[[], WorkerManager], *, principal: Principal, approval_id: uuid.UUID,
                 decision: str) -> PendingApproval:
    """Deliver ``decision`` to the agent and record it. Raises NotFound, Conflict (REQUEST_CLOSED).

    ``manager`` is called only once the approval is known to be visible and pending, so a node
    without a runtime still answers 404 for another tenant's approval.
    """
    async with db.read_session() as session:
        approval = await get_scoped(session, PendingApproval, approval_id, principal, entity="approval")
        if approval.status != ApprovalStatus.pending:
            raise _closed("approval", approval)
    workers = manager()  # 503 when this node has no runtime; nothing is changed
    try:
        await workers.answer_approval(approval.worker_id, approval.request_id, decision)  # type: ignore[arg-type]
    except Exception as exc:
        async with db.session() as session:
            await session.execute(update(PendingApproval).where(PendingApproval.id == approval_id,
                                                                PendingApproval.status == ApprovalStatus.pending)
                                  .values(status=ApprovalStatus.expired))
            await event_log.append(session, workspace_id=approval.workspace_id, event_type="approval.expired",
                                   entity_type="approval", entity_id=approval_id,
                                   payload={"worker_id": str(approval.worker_id), "reason": f"agent unreachable: {exc}"})
        approval.status = ApprovalStatus.expired
        raise _closed("approval", approval) from exc
    async with db.session() as session:
        row = await session.get(PendingApproval, approval_id)
        assert row is not None
        row.status = DECISION_STATUS[decision]
        row.decided_by = principal.subject
        row.decided_at = utcnow()
        await event_log.append(session, workspace_id=row.workspace_id, event_type="approval.decided",
                               entity_type="approval", entity_id=row.id,
                               payload={"decision": decision, "by": principal.subject, "worker_id": str(row.worker_id),
                                        "command": row.command, "thread_id": row.thread_id})
        return row


async def answer(db: Database, manager: Callable[[], WorkerManager], *, principal: Principal, question_id: uuid.UUID,
                 answers: dict[str, str]) -> OpenQuestion:
    """Deliver ``answers`` to the agent and record them. Raises NotFound, Conflict (REQUEST_CLOSED)."""
    async with db.read_session() as session:
        question = await get_scoped(session, OpenQuestion, question_id, principal, entity="question")
        if question.status != QuestionStatus.open:
            raise _closed("question", question)
    workers = manager()
    try:
        await workers.answer_question(question.worker_id, question.request_id, answers)
    except Exception as exc:
        async with db.session() as session:
            await session.execute(update(OpenQuestion).where(OpenQuestion.id == question_id,
                                                             OpenQuestion.status == QuestionStatus.open)
                                  .values(status=QuestionStatus.expired))
        question.status = QuestionStatus.expired
        raise _closed("question", question) from exc
    async with db.session() as session:
        row = await session.get(OpenQuestion, question_id)
        assert row is not None
        row.status = QuestionStatus.answered
        row.answers = answers
        row.answered_by = principal.subject
        row.answered_at = utcnow()
        await event_log.append(session, workspace_id=row.workspace_id, event_type="question.answered",
                               entity_type="question", entity_id=row.id,
                               payload={"answers": answers, "by": principal.subject, "worker_id": str(row.worker_id)})
        return row
