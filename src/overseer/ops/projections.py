"""Persisted projections of the operations state: ``ops_workspaces``, ``ops_threads``, ``signals``,
and ``ops_checkpoint`` (the last event id folded into them).

Rows are written only by ``ops.pipeline`` from :mod:`ops.state` values, in the same transaction as
the events that changed them, so after a restart they are exactly what was acknowledged.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from overseer.db.base import Base, BigIntPK


class OpsWorkspace(Base):
    __tablename__ = "ops_workspaces"

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"),
                                                    primary_key=True)
    health: Mapped[str] = mapped_column(String(20), default="healthy")
    current_task: Mapped[str | None] = mapped_column(Text)
    last_activity_at: Mapped[datetime | None] = mapped_column()
    next_step: Mapped[str | None] = mapped_column(Text)
    blockers: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    active_thread_id: Mapped[str | None] = mapped_column(String(128))
    last_event_id: Mapped[int] = mapped_column(BigIntPK, default=0)


class OpsThread(Base):
    __tablename__ = "ops_threads"

    thread_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    worker_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    agent_kind: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="idle")
    current_task: Mapped[str | None] = mapped_column(Text)
    last_activity_at: Mapped[datetime | None] = mapped_column()
    next_step: Mapped[str | None] = mapped_column(Text)
    blockers: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    active_turn_id: Mapped[str | None] = mapped_column(String(128))
    last_message: Mapped[str | None] = mapped_column(Text)
    turn_count: Mapped[int] = mapped_column(Integer, default=0)
    job_id: Mapped[str | None] = mapped_column(String(64))
    last_event_id: Mapped[int] = mapped_column(BigIntPK, default=0)


class Signal(Base):
    __tablename__ = "signals"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(30))
    title: Mapped[str] = mapped_column(Text)
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)
    thread_id: Mapped[str | None] = mapped_column(String(128))
    worker_id: Mapped[str | None] = mapped_column(String(64))
    job_id: Mapped[str | None] = mapped_column(String(64))
    is_open: Mapped[bool] = mapped_column(Boolean, default=True)
    raised_at: Mapped[datetime | None] = mapped_column()
    first_raised_at: Mapped[datetime | None] = mapped_column()
    raise_count: Mapped[int] = mapped_column(Integer, default=1)
    acked_at: Mapped[datetime | None] = mapped_column()
    acked_by: Mapped[str | None] = mapped_column(String(255))
    severity: Mapped[int] = mapped_column(Integer, default=0)
    last_event_id: Mapped[int] = mapped_column(BigIntPK, default=0)

    __table_args__ = (
        Index("ix_signals_workspace_id_acked_at", "workspace_id", "acked_at"),
        Index("ix_signals_workspace_id_kind", "workspace_id", "kind"),
    )


class OpsCheckpoint(Base):
    """One row (id=1): the highest event id folded into the projections."""

    __tablename__ = "ops_checkpoint"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_event_id: Mapped[int] = mapped_column(BigIntPK, default=0)
