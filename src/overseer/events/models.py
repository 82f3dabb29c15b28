"""The append-only ``events`` table: one immutable fact per row, ordered by its bigint id.

The activity feed, the live stream (``Last-Event-ID`` = this id) and restore are all read from it.
Rows are never updated or deleted by the application.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from overseer.clock import utcnow
from overseer.db.base import Base, BigIntPK

REQUEST_EVENT_TYPES = ("approval.requested", "question.requested")
"""The events a person must answer: the only types read by an index on ``event_type``."""
REQUEST_EVENTS_SQL = "event_type IN ('approval.requested', 'question.requested')"
"""The WHERE of the partial type indexes (migration 0008). SQLite uses a partial index only for a
query that repeats this term (https://sqlite.org/partialindex.html, 3.2), so readers add
:data:`REQUEST_EVENTS` verbatim."""
REQUEST_EVENTS = text(f"events.{REQUEST_EVENTS_SQL}")


class Event(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(100))
    entity_type: Mapped[str] = mapped_column(String(50))
    entity_id: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_events_workspace_id_id", "workspace_id", "id"),
        Index("ix_events_entity", "entity_type", "entity_id", "id"),
        # Partial: a text delta pays no B-tree insert for them (half of an event's insert cost on SQLite).
        Index("ix_events_request_type_id", "event_type", "id",
              sqlite_where=text(REQUEST_EVENTS_SQL), postgresql_where=text(REQUEST_EVENTS_SQL)),
        Index("ix_events_workspace_id_request_type_id", "workspace_id", "event_type", "id",
              sqlite_where=text(REQUEST_EVENTS_SQL), postgresql_where=text(REQUEST_EVENTS_SQL)),
    )
