"""API shapes for supervisors, teams, members, health, team status and the hierarchy (TKT-001, TSK-003).

Write schemas reject unknown fields and strip strings (``WriteSchema``). ``*Update`` schemas are
PATCH bodies: a field left out is unchanged, a field sent as ``null`` is cleared (``model_fields_set``
tells the two apart); fields that cannot be cleared (``name``, ``config``) reject ``null``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field, model_validator

from overseer.schemas import ReadSchema, WriteSchema
from overseer.supervisors.models import SupervisorStatus, TeamRole

NAME_MAX = 255
TEXT_MAX = 10_000

Name = Field(min_length=1, max_length=NAME_MAX)


def _reject_nulls(model: WriteSchema, *fields: str) -> None:
    for name in fields:
        if name in model.model_fields_set and getattr(model, name) is None:
            raise ValueError(f"{name} cannot be null")


class SupervisorCreate(WriteSchema):
    """``POST /api/v1/supervisors``. ``workspace_id`` may be omitted when the token covers one workspace."""

    workspace_id: uuid.UUID | None = None
    name: str = Name
    description: str | None = Field(default=None, max_length=TEXT_MAX)
    config: dict[str, Any] = Field(default_factory=dict)
    parent_id: uuid.UUID | None = None
    policy_version_id: uuid.UUID | None = None


class SupervisorUpdate(WriteSchema):
    """``PATCH /api/v1/supervisors/{id}``. ``parent_id: null`` makes the supervisor a root."""

    name: str | None = Field(default=None, min_length=1, max_length=NAME_MAX)
    description: str | None = Field(default=None, max_length=TEXT_MAX)
    config: dict[str, Any] | None = None
    parent_id: uuid.UUID | None = None
    policy_version_id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _not_null(self) -> SupervisorUpdate:
        _reject_nulls(self, "name", "config")
        return self


class SupervisorRead(ReadSchema):
    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    description: str | None
    status: SupervisorStatus
    config: dict[str, Any]
    parent_id: uuid.UUID | None
    hierarchy_level: int
    policy_version_id: uuid.UUID | None
    last_heartbeat: datetime | None
    health_metrics: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class TeamCreate(WriteSchema):
    """``POST /api/v1/supervisors/{id}/teams``."""

    name: str = Name
    description: str | None = Field(default=None, max_length=TEXT_MAX)
    objective: str | None = Field(default=None, max_length=TEXT_MAX)
    config: dict[str, Any] = Field(default_factory=dict)


class TeamUpdate(WriteSchema):
    """``PATCH /api/v1/teams/{team_id}``."""

    name: str | None = Field(default=None, min_length=1, max_length=NAME_MAX)
    description: str | None = Field(default=None, max_length=TEXT_MAX)
    objective: str | None = Field(default=None, max_length=TEXT_MAX)
    config: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _not_null(self) -> TeamUpdate:
        _reject_nulls(self, "name", "config")
        return self


class TeamRead(ReadSchema):
    id: uuid.UUID
    supervisor_id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    description: str | None
    objective: str | None
    config: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class MemberCreate(WriteSchema):
    """``POST /api/v1/teams/{team_id}/members``: ``agent_id`` is a worker id of the team's workspace."""

    agent_id: uuid.UUID
    role: TeamRole = TeamRole.MEMBER
    metadata: dict[str, Any] = Field(default_factory=dict)


class MemberRead(ReadSchema):
    id: uuid.UUID
    team_id: uuid.UUID
    workspace_id: uuid.UUID
    agent_id: uuid.UUID
    role: TeamRole
    joined_at: datetime
    left_at: datetime | None
    metadata: dict[str, Any] = Field(validation_alias="member_metadata")


class AgentHealthRead(ReadSchema):
    total: int
    healthy: int
    unhealthy: int


class HealthRead(ReadSchema):
    """``GET /api/v1/supervisors/{id}/health`` (TKT-001). Times in seconds.

    ``missed_heartbeats`` is None when the supervisor is not expected to heartbeat (SPAWNING, FAILED,
    TERMINATED); ``seconds_since_heartbeat`` is None until its first heartbeat.
    """

    supervisor_id: uuid.UUID
    status: SupervisorStatus
    last_heartbeat: datetime | None
    seconds_since_heartbeat: float | None
    missed_heartbeats: int | None
    heartbeat_interval_s: float
    max_missed_heartbeats: int
    agents: AgentHealthRead
    checked_at: datetime


class TeamStatusItem(ReadSchema):
    team_id: uuid.UUID
    team_name: str
    objective: str | None
    member_count: int
    """Every membership the team has had, past ones included (TSK-003 ``get_team_status``)."""
    active_members: int


class TeamStatusRead(ReadSchema):
    """``GET /api/v1/supervisors/{id}/status``: TSK-003 ``get_team_status``."""

    supervisor_id: uuid.UUID
    status: SupervisorStatus
    teams: list[TeamStatusItem]
    total_teams: int
    total_members: int
    """Active members across all teams."""


class HierarchyNode(ReadSchema):
    """One supervisor of the supervision tree with its subtree (``GET /supervisors/{id}/hierarchy``)."""

    id: uuid.UUID
    name: str
    status: SupervisorStatus
    hierarchy_level: int
    parent_id: uuid.UUID | None
    children: list[HierarchyNode] = Field(default_factory=list)
