"""Append to the event log inside the caller's transaction (the outbox half of the pipeline).

``append`` inserts the row, flushes to learn its id, and queues the event on the session so that
``Database.session()`` publishes it after commit. Callers never publish directly.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from overseer.clock import utcnow
from overseer.db.engine import OUTBOX_KEY
from overseer.events.bus import PublishedEvent
from overseer.events.models import Event


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


async def append(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    event_type: str,
    entity_type: str,
    entity_id: object,
    payload: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> PublishedEvent:
    """Append one event; returns it with its id. Published after the surrounding commit."""
    created_at = at or utcnow()
    data = _jsonable(payload or {})
    result = await session.execute(
        insert(Event)
        .values(workspace_id=workspace_id, event_type=event_type, entity_type=entity_type,
                entity_id=str(entity_id), payload=data, created_at=created_at)
        .returning(Event.id)
    )
    event_id = int(result.scalar_one())
    ev = PublishedEvent(event_id, workspace_id, event_type, entity_type, str(entity_id), data, created_at)
    session.info.setdefault(OUTBOX_KEY, []).append(ev)
    return ev
