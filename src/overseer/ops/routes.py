"""``/api/v1/ops``: approvals and questions (issue 4 item 5)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request

from overseer.auth.deps import SupervisorRead, SupervisorWrite
from overseer.deps import DbDep
from overseer.errors import COMMON_ERRORS
from overseer.ops import approvals as service
from overseer.ops.schemas import ApprovalDecision, ApprovalRead, QuestionAnswer, QuestionRead
from overseer.workers.routes import manager_of

router = APIRouter(prefix="/api/v1/ops", tags=["operations"], responses=COMMON_ERRORS)
StatusQ = Annotated[str | None, Query(max_length=30)]


@router.get("/approvals", response_model=list[ApprovalRead])
async def list_approvals(principal: SupervisorRead, db: DbDep, status: StatusQ = "pending",
                         workspace_id: uuid.UUID | None = None) -> list[ApprovalRead]:
    """Approvals (default: pending ones) in the caller's workspaces, oldest first."""
    async with db.read_session() as session:
        rows = await service.list_approvals(session, principal=principal, status=status or None,
                                            workspace_id=workspace_id)
        return [ApprovalRead.model_validate(r) for r in rows]


@router.post("/approvals/{approval_id}", response_model=ApprovalRead)
async def decide_approval(request: Request, approval_id: uuid.UUID, body: ApprovalDecision,
                          principal: SupervisorWrite, db: DbDep) -> ApprovalRead:
    """Answer an approval: accept | accept_for_session | decline | cancel. 409 if no longer pending."""
    row = await service.decide(db, manager_of(request), principal=principal, approval_id=approval_id,
                               decision=body.decision)
    return ApprovalRead.model_validate(row)


@router.get("/questions", response_model=list[QuestionRead])
async def list_questions(principal: SupervisorRead, db: DbDep, status: StatusQ = "open",
                         workspace_id: uuid.UUID | None = None) -> list[QuestionRead]:
    async with db.read_session() as session:
        rows = await service.list_questions(session, principal=principal, status=status or None,
                                            workspace_id=workspace_id)
        return [QuestionRead.model_validate(r) for r in rows]


@router.post("/questions/{question_id}/answer", response_model=QuestionRead)
async def answer_question(request: Request, question_id: uuid.UUID, body: QuestionAnswer,
                          principal: SupervisorWrite, db: DbDep) -> QuestionRead:
    """Answer an open question; the answer reaches the agent. 409 if no longer open."""
    row = await service.answer(db, manager_of(request), principal=principal, question_id=question_id,
                               answers=body.answers)
    return QuestionRead.model_validate(row)
