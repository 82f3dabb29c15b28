"""Job and resource API shapes (manager-ai-mvp-spec.md §1.2 A/B; issue 5 items 1 and 3)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from overseer.schemas import ReadSchema, WriteSchema

JobStatusName = Literal["SUBMITTED", "PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELED"]
MAX_WORKERS_PER_ALLOCATION = 64
MAX_QUOTA = 10_000


class JobCreate(WriteSchema):
    workspace_id: uuid.UUID | None = None
    """Optional when the token covers exactly one workspace (a job token: its own workspace)."""
    prompt: str = Field(min_length=1, max_length=200_000)
    parent_job_id: uuid.UUID | None = None
    """A job token may only name its own job (403 otherwise); it is the default for a job token."""
    depth: int | None = Field(default=None, ge=0, le=1000)
    """Optional; must equal the parent's depth + 1 (0 for a root). Depth >= max_job_depth: 400."""
    depends_on: list[uuid.UUID] = Field(default_factory=list, max_length=100)
    agent_kind: Literal["codex", "claude_code"] | None = None
    """Default: the parent's kind, else codex."""
    access_mode: Literal["read-only", "default", "full-access"] | None = None
    """Default: the parent's mode, else the workspace setting ``job_access_mode``, else ``default``."""
    model: str | None = Field(default=None, max_length=200)
    worker_id: uuid.UUID | None = None
    """Run on this existing worker (it must be in the workspace) instead of a fresh one."""
    thread_id: str | None = Field(default=None, max_length=128)
    """Continue this thread on the live worker that holds it."""
    priority: int = Field(default=0, ge=-1000, le=1000)


class JobCancel(WriteSchema):
    reason: str | None = Field(default=None, max_length=2000)


class ProgressReport(WriteSchema):
    message: str = Field(min_length=1, max_length=4000)
    percent: float | None = Field(default=None, ge=0, le=100)


class AllocationRead(ReadSchema):
    id: uuid.UUID
    job_id: uuid.UUID
    workspace_id: uuid.UUID
    depth: int
    worker_count: int
    allocated_at: datetime
    released_at: datetime | None
    release_reason: str | None = None


class JobRead(ReadSchema):
    id: uuid.UUID
    workspace_id: uuid.UUID
    parent_job_id: uuid.UUID | None
    depth: int
    status: JobStatusName
    prompt: str
    priority: int
    agent_kind: str
    access_mode: str
    model: str | None
    worker_id: uuid.UUID | None
    thread_id: str | None
    turn_id: str | None
    result: str | None
    error: str | None
    cancel_reason: str | None
    waiting: dict[str, Any] | None
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    turn_ended_at: datetime | None
    updated_at: datetime
    depends_on: list[uuid.UUID] = Field(default_factory=list)


class TurnInfo(ReadSchema):
    thread_id: str | None
    turn_id: str | None
    status: str | None
    started_at: datetime | None
    completed_at: datetime | None
    final_message: str | None = None


class JobDetail(JobRead):
    children: list[JobRead] = Field(default_factory=list)
    dependencies: list[JobRead] = Field(default_factory=list)
    allocations: list[AllocationRead] = Field(default_factory=list)
    turns: list[TurnInfo] = Field(default_factory=list)
    transitions: list[dict[str, Any]] = Field(default_factory=list)


class JobPage(ReadSchema):
    items: list[JobRead]
    total: int
    limit: int
    offset: int


class QuotaSet(WriteSchema):
    workspace_id: uuid.UUID | None = None
    """None: the node-wide cap for the depth (every workspace together)."""
    depth: int = Field(ge=0, le=1000)
    max_workers: int | None = Field(ge=0, le=MAX_QUOTA)
    """None removes the row (back to the default / no global cap)."""


class QuotaUpdate(WriteSchema):
    quotas: list[QuotaSet] = Field(min_length=1, max_length=500)


class QuotaRead(ReadSchema):
    workspace_id: uuid.UUID | None
    depth: int
    max_workers: int | None
    source: Literal["workspace", "default", "global"]
    in_use: int


class QuotasRead(ReadSchema):
    max_job_depth: int
    default_max_workers: int
    quotas: list[QuotaRead]


class AllocateRequest(WriteSchema):
    job_id: uuid.UUID
    depth: int = Field(ge=0, le=1000)
    worker_count: int = Field(default=1, ge=1, le=MAX_WORKERS_PER_ALLOCATION)


class ReleaseRequest(WriteSchema):
    allocation_id: uuid.UUID


class ReleaseRead(AllocationRead):
    already_released: bool = False


class UsageSlot(ReadSchema):
    workspace_id: uuid.UUID
    depth: int
    in_use: int
    limit: int


class UsageDepth(ReadSchema):
    depth: int
    in_use: int
    global_cap: int | None


class UsageRead(ReadSchema):
    total_in_use: int
    by_depth: list[UsageDepth]
    by_workspace: list[UsageSlot]
    allocations: list[AllocationRead]
