"""Tables ``workers`` and ``state_transitions`` (manager-ai-mvp-spec.md §2.3, plus Overseer's columns).

``status`` is the §1.1 B state; liveness (healthy / stale / disconnected) is derived from
``last_event_at`` and process facts, never from the agent's self-report.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from overseer.clock import utcnow
from overseer.db.base import Base, BigIntPK, IdMixin, TimestampMixin


class WorkerStatus(StrEnum):
    IDLE = "IDLE"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    RETRYING = "RETRYING"
    TERMINATED = "TERMINATED"


class Worker(IdMixin, TimestampMixin, Base):
    __tablename__ = "workers"

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(20), default=WorkerStatus.IDLE, index=True)
    kind: Mapped[str] = mapped_column(String(20), default="codex")
    name: Mapped[str | None] = mapped_column(String(255))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    worker_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    thread_id: Mapped[str | None] = mapped_column(String(128))
    """The agent thread this worker is on (Codex thread id / Claude session id)."""
    active_turn_id: Mapped[str | None] = mapped_column(String(128))
    pid: Mapped[int | None] = mapped_column()
    node_id: Mapped[str | None] = mapped_column(String(64))
    last_event_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    tokens_used: Mapped[int] = mapped_column(default=0)
    restart_count: Mapped[int] = mapped_column(default=0)


class StateTransition(Base):
    """Every worker state change, with its reason (§2.3 ``state_transitions``)."""

    __tablename__ = "state_transitions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    worker_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"))
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    timestamp: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_state_transitions_worker_id_id", "worker_id", "id"),)
