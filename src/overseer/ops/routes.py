"""``/api/v1/ops``: approvals and questions (issue 4 item 5)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from overseer import jsoncodec
from overseer.auth.deps import SupervisorRead, SupervisorWrite
from overseer.deps import DbDep
from overseer.errors import COMMON_ERRORS
from overseer.ops import approvals as service
from overseer.ops import read
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
    row = await service.decide(db, lambda: manager_of(request), principal=principal, approval_id=approval_id,
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
    row = await service.answer(db, lambda: manager_of(request), principal=principal, question_id=question_id,
                               answers=body.answers)
    return QuestionRead.model_validate(row)


@router.get("/snapshot", response_class=Response,
            responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}}})
async def get_snapshot(principal: SupervisorRead, db: DbDep) -> Response:
    """The live picture, sized for a first screen: workspaces (health, current task, last activity, next
    step, blockers, thread counts) with the threads to look at first, unacknowledged signals, pending
    approvals, open questions, workers and jobs, each list capped (shape: ``ops.read.snapshot``)."""
    async with db.read_session() as session:
        snap = await read.snapshot(session, principal=principal)
    # Plain JSON values already: rendered in one orjson call (0.2 ms for the 180 KB admin snapshot of
    # benchmarks/snapshot_latency.py) instead of FastAPI validating the dict and encoding it again (~1 ms).
    return Response(jsoncodec.dumps_bytes(snap), media_type="application/json")


@router.get("/threads")
async def list_threads(principal: SupervisorRead, db: DbDep, workspace_id: uuid.UUID | None = None,
                       status: Annotated[str | None, Query(max_length=20)] = None,
                       limit: Annotated[int, Query(ge=1, le=500)] = 100,
                       offset: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:
    """Every thread the caller may see, most recently active first (the snapshot lists recent ones)."""
    async with db.read_session() as session:
        return await read.list_threads(session, principal=principal, workspace_id=workspace_id, status=status,
                                       limit=limit, offset=offset)


@router.get("/feed")
async def get_feed(principal: SupervisorRead, db: DbDep,
                   limit: Annotated[int, Query(ge=1, le=read.FEED_MAX)] = 100,
                   needs_input: bool = False, workspace_id: uuid.UUID | None = None,
                   before: Annotated[int | None, Query(ge=1)] = None) -> dict[str, Any]:
    """The unified cross-workspace activity feed, newest first; ``needs_input`` = only waiting requests."""
    async with db.read_session() as session:
        return await read.feed(session, principal=principal, limit=limit, needs_input=needs_input,
                               workspace_id=workspace_id, before=before)


@router.get("/signals")
async def list_signals(principal: SupervisorRead, db: DbDep, unacked: bool = True,
                       workspace_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
    """Signals, most severe first (default: unacknowledged only)."""
    async with db.read_session() as session:
        rows = await read.list_signals(session, principal=principal, unacked_only=unacked, workspace_id=workspace_id)
        return [read.signal_dict(s) for s in rows]


@router.post("/signals/{signal_id}/ack")
async def ack_signal(signal_id: Annotated[str, Path(max_length=200)], principal: SupervisorWrite,
                     db: DbDep) -> dict[str, Any]:
    """Acknowledge a signal (idempotent). Raising it again later reopens it."""
    async with db.session() as session:
        sig = await read.ack_signal(session, principal=principal, signal_id=signal_id)
        return read.signal_dict(sig)
