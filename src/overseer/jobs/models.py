"""Tables ``jobs``, ``job_dependencies``, ``resource_quotas`` and ``resource_allocations``
(manager-ai-mvp-spec.md §1.2 C, §2.3; issue 5).

- ``jobs`` keeps the tree in ``parent_job_id`` (depth 0 for a root, parent's + 1 for a child; a recursive
  query walks it, see ``jobs.service.subtree``). ``status`` only changes through ``jobs.states.transition``,
  which appends a ``job.state_changed`` event (the transition record).
- ``resource_quotas``: ``max_workers`` per (workspace, depth); ``workspace_id`` NULL is the node-wide cap
  for that depth across every workspace. A workspace without a row for a depth gets
  ``Settings.default_depth_quota``; a depth without a global row has no global cap.
- ``resource_allocations``: what a job holds; open while ``released_at`` is NULL. Usage of (workspace,
  depth) = the sum of ``worker_count`` of its open allocations.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from overseer.clock import utcnow
from overseer.db.base import Base, BigIntPK, IdMixin, TimestampMixin


class JobStatus(StrEnum):
    SUBMITTED = "SUBMITTED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED})


class Job(IdMixin, TimestampMixin, Base):
    __tablename__ = "jobs"

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    parent_job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    depth: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.SUBMITTED, index=True)
    prompt: Mapped[str] = mapped_column(Text)
    priority: Mapped[int] = mapped_column(default=0)
    agent_kind: Mapped[str] = mapped_column(String(20), default="codex")
    access_mode: Mapped[str] = mapped_column(String(20), default="default")
    model: Mapped[str | None] = mapped_column(String(200))
    worker_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("workers.id", ondelete="SET NULL"))
    """Requested (``worker_id`` in the submit) or, once started, the worker the job's turn runs on."""
    pinned_worker: Mapped[bool] = mapped_column(default=False)
    """True when the submit named ``worker_id`` / ``thread_id``: the job reuses that worker (no job token)."""
    thread_id: Mapped[str | None] = mapped_column(String(128))
    turn_id: Mapped[str | None] = mapped_column(String(128))
    turn_ended_at: Mapped[datetime | None] = mapped_column()
    """When the job's own turn ended (a parent then waits in RUNNING for its children)."""
    result: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    waiting: Mapped[dict[str, Any] | None] = mapped_column()
    """The current blocker of a job that cannot start (or a parent waiting for children), or None."""
    created_by: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime | None] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (Index("ix_jobs_status_priority", "status", "priority", "created_at"),)


class JobDependency(Base):
    """``job_id`` may start only once ``depends_on_id`` is COMPLETED (same workspace, no cycles)."""

    __tablename__ = "job_dependencies"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    depends_on_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True,
                                                     index=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)


class ResourceQuota(Base):
    """Max concurrent workers at ``depth`` in ``workspace_id`` (NULL: the node-wide cap for the depth)."""

    __tablename__ = "resource_quotas"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    workspace_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"),
                                                           index=True)
    depth: Mapped[int] = mapped_column()
    max_workers: Mapped[int] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("workspace_id", "depth", name="uq_resource_quotas_workspace_id_depth"),
        Index("uq_resource_quotas_global_depth", "depth", unique=True,
              sqlite_where=workspace_id.is_(None), postgresql_where=workspace_id.is_(None)),
    )


class ResourceAllocation(Base):
    """Workers held by a job at its depth; open while ``released_at`` is NULL."""

    __tablename__ = "resource_allocations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    depth: Mapped[int] = mapped_column()
    worker_count: Mapped[int] = mapped_column()
    allocated_at: Mapped[datetime] = mapped_column(default=utcnow)
    released_at: Mapped[datetime | None] = mapped_column()
    release_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_resource_allocations_open", "workspace_id", "depth", "released_at"),)


__all__ = ["TERMINAL", "Job", "JobDependency", "JobStatus", "ResourceAllocation", "ResourceQuota"]
