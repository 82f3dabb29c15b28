"""Append to the event log inside the caller's transaction (the outbox half of the pipeline).

``append`` inserts the row, flushes to learn its id, and queues the event on the session so that
``Database.session()`` publishes it after commit. Callers never publish directly.
"""

from __future__ import annotations

import json
import operator
import re
import uuid
from datetime import datetime
from functools import partial
from typing import Any, cast

from sqlalchemy import Table, insert, text
from sqlalchemy.ext.asyncio import AsyncSession

from overseer.clock import utcnow
from overseer.db.base import sqlite_datetime
from overseer.db.engine import OUTBOX_KEY
from overseer.db.sqlite_rows import insert_rows
from overseer.events.bus import PublishedEvent
from overseer.events.models import Event
from overseer.jsoncodec import dumps as _dumps  # = the engine's json_serializer (db.engine.json_dumps)

DEFERRED_KEY = "overseer.deferred_events"
ORDER_LOCK_KEY = "overseer.events_order_lock"
EVENTS_ADVISORY_LOCK = 0x0E5E7  # any fixed key: serializes event-appending transactions on PostgreSQL


async def _lock_event_order(session: AsyncSession) -> None:
    """On PostgreSQL, take a transaction-scoped advisory lock before the first event insert.

    Readers resume the log by id (``Last-Event-ID``), which assumes ids become visible in id order.
    With concurrent writers PostgreSQL could commit id 11 before id 10; serializing the appending
    transactions (held until commit) restores the order. SQLite already has one writer.
    """
    if session.info.get(ORDER_LOCK_KEY):
        return
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": EVENTS_ADVISORY_LOCK})
    session.info[ORDER_LOCK_KEY] = True


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
    data = storable_json(_jsonable(payload or {}))[1]
    await _lock_event_order(session)
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


def defer(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    event_type: str,
    entity_type: str,
    entity_id: object,
    payload: dict[str, Any] | None = None,
    at: datetime | None = None,
    convert: bool = True,
) -> dict[str, Any]:
    """Queue an event for one bulk insert at commit time (the hot path: agent event batches).

    Returns the queued row (a dict); until the commit inserts it, removing it from
    ``session.info[DEFERRED_KEY]`` takes the event back.

    ``convert=False`` skips turning UUIDs and datetimes into strings, for payloads that are already
    JSON values (agent events parsed from JSON lines).

    Deferred events get their ids when the unit of work commits, after any event appended with
    :func:`append` in the same transaction, in the order they were deferred.
    """
    row = {
        "workspace_id": workspace_id, "event_type": event_type, "entity_type": entity_type,
        "entity_id": str(entity_id), "payload": _jsonable(payload or {}) if convert else (payload or {}),
        "created_at": at or utcnow(),
    }
    session.info.setdefault(DEFERRED_KEY, []).append(row)
    return row


def deferred_rows(session: AsyncSession) -> list[dict[str, Any]]:
    """The list :func:`defer` appends to (created when missing), for a caller that queues many events
    and builds the rows itself: ``{workspace_id, event_type, entity_type, entity_id (str), payload
    (JSON values), created_at (aware datetime)}``, appended in the order they are to be logged."""
    rows: list[dict[str, Any]] = session.info.setdefault(DEFERRED_KEY, [])
    return rows


async def flush_deferred(session: AsyncSession) -> list[PublishedEvent]:
    """Insert every deferred event of ``session`` in one statement; returns them with their ids."""
    rows = session.info.pop(DEFERRED_KEY, None)
    if not rows:
        return []
    await _lock_event_order(session)
    if session.get_bind().dialect.name == "sqlite":
        # Pre-encoded tuples in multi-row INSERTs on the driver connection (db/sqlite_rows.py), no
        # RETURNING: SQLAlchemy's per-row bind processing (Uuid, UTCDateTime, JSON) costs more than the
        # insert itself. The transaction holds SQLite's only write lock from its first write, and
        # ``events.id`` is the rowid (max + 1), so the new ids are the contiguous run ending at the
        # last inserted rowid.
        last = await insert_rows(session, _SQLITE_INSERT_HEAD, 6, "", _sqlite_params(rows))
        assert last is not None
        ids = range(last - len(rows) + 1, last + 1)
    else:
        for r in rows:
            r["payload"] = storable_json(r["payload"])[1]
        table = cast(Table, Event.__table__)
        result = await session.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows)
        ids = [int(i) for i in result.scalars().all()]  # type: ignore[assignment]
    # (id,) + the row's six fields, made a PublishedEvent by tuple.__new__: all in C, no Python frame
    # per event (the named tuple's own __new__ is a Python function).
    published: list[PublishedEvent] = list(map(_NEW_PUBLISHED, map(operator.add, zip(ids), map(_ROW_FIELDS, rows))))
    session.info.setdefault(OUTBOX_KEY, []).extend(published)
    return published


_NEW_PUBLISHED = partial(tuple.__new__, PublishedEvent)
_ROW_FIELDS = operator.itemgetter("workspace_id", "event_type", "entity_type", "entity_id", "payload", "created_at")
_SQLITE_INSERT_HEAD = "INSERT INTO events (workspace_id, event_type, entity_type, entity_id, payload, created_at) VALUES "


_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def storable_json(payload: Any) -> tuple[str, Any]:
    """``(json text, payload)`` safe for every database: a NUL character (``\u0000``, which PostgreSQL's
    JSONB rejects and agents' command output can contain) becomes U+FFFD in both, so what subscribers
    are told equals what restore reads back."""
    text_ = _dumps(payload)
    if "\\u0000" not in text_:
        return text_, payload
    text_ = _NUL_ESCAPE.sub(lambda m: m.group(1) + "\\ufffd", text_)
    return text_, json.loads(text_)


def _sqlite_params(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The rows as the SQLite driver's positional parameters, encoded exactly as the ORM types would:
    ``Uuid`` -> 32 hex digits, ``UTCDateTime`` -> naive UTC text, JSON -> the engine's serializer
    (:func:`storable_json`, its common case inlined: this runs for every event)."""
    out: list[tuple[Any, ...]] = []
    append = out.append
    hexes: dict[int, str] = {}  # by id(): a batch shares a few workspace UUID objects (all alive here)
    for r, (ws, event_type, entity_type, entity_id, payload, at) in zip(rows, map(_ROW_FIELDS, rows), strict=True):
        ws_hex = hexes.get(id(ws))
        if ws_hex is None:
            ws_hex = hexes[id(ws)] = ws.hex if isinstance(ws, uuid.UUID) else uuid.UUID(str(ws)).hex
        text_ = _dumps(payload)
        if "\\u0000" in text_:
            text_, r["payload"] = storable_json(payload)
        append((ws_hex, event_type, entity_type, entity_id, text_, sqlite_datetime(at)))
    return out
