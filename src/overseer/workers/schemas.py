"""Worker API shapes (manager-ai-mvp-spec.md §4.1 ``Worker``, extended with Overseer's fields)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from overseer.schemas import ReadSchema, WriteSchema

Liveness = Literal["healthy", "stale", "disconnected", "stopped"]


class WorkerConfig(WriteSchema):
    model: str | None = Field(default=None, max_length=200)
    access_mode: Literal["read-only", "default", "full-access"] = "default"
    """read-only: read-only sandbox; default: workspace-write, approvals asked of Overseer; full-access:
    no sandbox and no approvals (mapped onto each agent's own settings by its adapter)."""
    env: dict[str, str] = Field(default_factory=dict, max_length=50)


class WorkerCreate(WriteSchema):
    workspace_id: uuid.UUID | None = None
    """Optional when the token covers exactly one workspace."""
    kind: Literal["codex", "claude_code"]
    name: str | None = Field(default=None, max_length=255)
    config: WorkerConfig = Field(default_factory=WorkerConfig)


class TurnCreate(WriteSchema):
    prompt: str = Field(min_length=1, max_length=200_000)
    thread_id: str | None = Field(default=None, max_length=128)
    model: str | None = Field(default=None, max_length=200)
    effort: Literal["minimal", "low", "medium", "high"] | None = None


class SteerCreate(WriteSchema):
    prompt: str = Field(min_length=1, max_length=200_000)


class TurnRead(ReadSchema):
    worker_id: uuid.UUID
    thread_id: str | None
    turn_id: str | None
    status: str


class WorkerRead(ReadSchema):
    id: uuid.UUID
    status: Literal["IDLE", "RUNNING", "PAUSED", "COMPLETED", "FAILED", "RETRYING", "TERMINATED"]
    workspace_id: uuid.UUID
    kind: str
    name: str | None
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, Any] = Field(validation_alias="worker_metadata")
    config: dict[str, Any]
    thread_id: str | None
    active_turn_id: str | None
    pid: int | None
    last_event_at: datetime | None
    last_error: str | None
    tokens_used: int
    liveness: Liveness = "stopped"


class WorkerList(ReadSchema):
    workers: list[WorkerRead]


class StateTransitionRead(ReadSchema):
    from_state: str | None
    to_state: str
    reason: str | None
    timestamp: datetime


class WorkerDetail(WorkerRead):
    transitions: list[StateTransitionRead] = Field(default_factory=list)


class MetricsRead(ReadSchema):
    """Aggregate metrics (§1.1 A ``GET /api/supervisor/metrics``)."""

    workers_total: int
    workers_by_status: dict[str, int]
    active_turns: int
    pending_approvals: int
    open_questions: int
    tokens_used: int
    events_per_second: float
    events_total: int
