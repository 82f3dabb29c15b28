"""Tables ``pending_approvals`` and ``open_questions``: requests from an agent that block its turn
until a person answers (live-operations-view-epic.md "MVP Scope" 2; issue 4 item 5).

An approval is ``pending`` until decided (accepted | accepted_for_session | declined | canceled) or
closed as ``expired`` because the agent withdrew it (``serverRequest/resolved``, the turn ended, the
process died). ``request_id`` is the agent's own id for the request (JSON-RPC id / control request id).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from overseer.clock import utcnow
from overseer.db.base import Base, IdMixin


class ApprovalStatus(StrEnum):
    pending = "pending"
    accepted = "accepted"
    accepted_for_session = "accepted_for_session"
    declined = "declined"
    canceled = "canceled"
    expired = "expired"


class QuestionStatus(StrEnum):
    open = "open"
    answered = "answered"
    expired = "expired"


class PendingApproval(IdMixin, Base):
    __tablename__ = "pending_approvals"

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    worker_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"), index=True)
    thread_id: Mapped[str | None] = mapped_column(String(128))
    turn_id: Mapped[str | None] = mapped_column(String(128))
    request_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(20))
    command: Mapped[str | None] = mapped_column(Text)
    cwd: Mapped[str | None] = mapped_column(Text)
    diff: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    tool_name: Mapped[str | None] = mapped_column(String(255))
    tool_input: Mapped[dict[str, Any] | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(30), default=ApprovalStatus.pending)
    decided_by: Mapped[str | None] = mapped_column(String(255))
    decided_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_pending_approvals_workspace_id_status", "workspace_id", "status"),)


class OpenQuestion(IdMixin, Base):
    __tablename__ = "open_questions"

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    worker_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"), index=True)
    thread_id: Mapped[str | None] = mapped_column(String(128))
    turn_id: Mapped[str | None] = mapped_column(String(128))
    request_id: Mapped[str] = mapped_column(String(128))
    questions: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(20), default=QuestionStatus.open)
    answers: Mapped[dict[str, Any] | None] = mapped_column()
    answered_by: Mapped[str | None] = mapped_column(String(255))
    answered_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_open_questions_workspace_id_status", "workspace_id", "status"),)
