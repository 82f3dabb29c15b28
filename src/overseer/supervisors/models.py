"""Tables ``supervisors``, ``supervisor_teams``, ``supervisor_team_members`` (TSK-001).

Columns follow TSK-001 "Implementation Notes", plus ``workspace_id`` (tenancy, issue 2). The member
column ``metadata`` is reserved by SQLAlchemy's declarative API, so it is mapped to the attribute
``member_metadata``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from overseer.clock import utcnow
from overseer.db.base import Base, IdMixin, TimestampMixin


class SupervisorStatus(StrEnum):
    """TKT-001: SPAWNING -> ACTIVE -> PAUSED/FAILED -> TERMINATED, plus UNRESPONSIVE."""

    SPAWNING = "SPAWNING"
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    FAILED = "FAILED"
    UNRESPONSIVE = "UNRESPONSIVE"
    TERMINATED = "TERMINATED"


class TeamRole(StrEnum):
    LEAD = "LEAD"
    MEMBER = "MEMBER"
    TRAINEE = "TRAINEE"


class Supervisor(IdMixin, TimestampMixin, Base):
    __tablename__ = "supervisors"

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(50), default=SupervisorStatus.SPAWNING, index=True)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("supervisors.id"), index=True)
    hierarchy_level: Mapped[int] = mapped_column(Integer, default=0)
    policy_version_id: Mapped[uuid.UUID | None] = mapped_column()
    last_heartbeat: Mapped[datetime | None] = mapped_column()
    health_metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)

    teams: Mapped[list[SupervisorTeam]] = relationship(
        back_populates="supervisor", cascade="all, delete-orphan", lazy="raise"
    )


class SupervisorTeam(IdMixin, TimestampMixin, Base):
    __tablename__ = "supervisor_teams"

    supervisor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("supervisors.id", ondelete="CASCADE"), index=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    objective: Mapped[str | None] = mapped_column(Text)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)

    supervisor: Mapped[Supervisor] = relationship(back_populates="teams", lazy="raise")
    members: Mapped[list[SupervisorTeamMember]] = relationship(
        back_populates="team", cascade="all, delete-orphan", lazy="raise"
    )


class SupervisorTeamMember(IdMixin, Base):
    __tablename__ = "supervisor_team_members"

    team_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("supervisor_teams.id", ondelete="CASCADE"), index=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[uuid.UUID] = mapped_column(index=True)
    role: Mapped[str] = mapped_column(String(100), default=TeamRole.MEMBER)
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)
    left_at: Mapped[datetime | None] = mapped_column()
    member_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)

    team: Mapped[SupervisorTeam] = relationship(back_populates="members", lazy="raise")

    __table_args__ = (
        # An agent is an active member of at most one team (issue 2, item 8).
        Index("uq_supervisor_team_members_active_agent", "agent_id", unique=True,
              sqlite_where=text("left_at IS NULL"), postgresql_where=text("left_at IS NULL")),
    )
