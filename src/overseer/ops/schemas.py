"""Shapes of the operations API (approvals and questions; live-operations-view-epic.md)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from overseer.schemas import ReadSchema, WriteSchema


class ApprovalRead(ReadSchema):
    id: uuid.UUID
    workspace_id: uuid.UUID
    worker_id: uuid.UUID
    thread_id: str | None
    turn_id: str | None
    kind: str
    command: str | None
    cwd: str | None
    diff: str | None
    reason: str | None
    tool_name: str | None
    tool_input: dict[str, Any] | None
    status: str
    decided_by: str | None
    decided_at: datetime | None
    created_at: datetime


class ApprovalDecision(WriteSchema):
    decision: Literal["accept", "accept_for_session", "decline", "cancel"]


class QuestionRead(ReadSchema):
    id: uuid.UUID
    workspace_id: uuid.UUID
    worker_id: uuid.UUID
    thread_id: str | None
    turn_id: str | None
    questions: list[dict[str, Any]]
    status: str
    answers: dict[str, Any] | None
    answered_by: str | None
    answered_at: datetime | None
    created_at: datetime


class QuestionAnswer(WriteSchema):
    answers: dict[str, str] = Field(min_length=1, max_length=50)
    """Question id -> answer text (an option's label or free text)."""
