"""Tenant-scoped reads of the event log (the replay half of the live stream, events/AGENTS.md).

``events_after`` pages through ``events`` in id order after a cursor, restricted to the caller's
workspaces by ``db.repository.scoped`` (the one tenant filter, AGENTS.md) and optionally to some
workspaces and event types. ``TypeFilter`` is the one definition of the ``types`` filter, used both
as SQL (replay) and as a Python predicate (live events from the bus), so the two cannot disagree.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from overseer.auth.tokens import Principal
from overseer.db.repository import scoped
from overseer.errors import ValidationFailed
from overseer.events.bus import PublishedEvent
from overseer.events.models import Event

_TYPE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
MAX_TYPE_PATTERNS = 50


@dataclass(frozen=True, slots=True)
class TypeFilter:
    """Event-type patterns: exact names, and prefixes written with a trailing ``*`` (``turn.*``).

    ``TypeFilter.parse("turn.*,worker.state_changed")`` -> prefixes ``("turn.",)``, exact
    ``{"worker.state_changed"}``. A lone ``*`` matches every type. Raises :class:`ValidationFailed`
    (400) for an empty pattern, a ``*`` anywhere but at the end, a character outside
    ``[A-Za-z0-9_.:-]``, or more than 50 patterns.
    """

    exact: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()

    @classmethod
    def parse(cls, raw: Iterable[str]) -> TypeFilter | None:
        """Parse comma-separated patterns (several values are joined). None when nothing was given."""
        parts = [p.strip() for value in raw for p in value.split(",")]
        parts = [p for p in parts if p]
        if not parts:
            return None
        if len(parts) > MAX_TYPE_PATTERNS:
            raise ValidationFailed(f"At most {MAX_TYPE_PATTERNS} event types", details={"param": "types"})
        exact: set[str] = set()
        prefixes: set[str] = set()
        for p in parts:
            body = p[:-1] if p.endswith("*") else p
            if body and not _TYPE_RE.match(body):
                raise ValidationFailed(f"Invalid event type pattern {p!r}",
                                       details={"param": "types", "value": p,
                                                "rule": "[A-Za-z0-9_.:-]+ with an optional trailing *"})
            if p.endswith("*"):
                prefixes.add(body)
            else:
                exact.add(p)
        if "" in prefixes:  # "*" matches everything
            return None
        return cls(frozenset(exact), tuple(sorted(prefixes)))

    def matches(self, event_type: str) -> bool:
        return event_type in self.exact or any(event_type.startswith(p) for p in self.prefixes)

    def clause(self) -> ColumnElement[bool]:
        """The same rule as SQL over ``events.event_type`` (LIKE wildcards in a prefix are escaped)."""
        terms: list[ColumnElement[bool]] = []
        if self.exact:
            terms.append(Event.event_type.in_(sorted(self.exact)))
        terms.extend(Event.event_type.startswith(p, autoescape=True) for p in self.prefixes)
        return or_(*terms) if terms else false()


def to_published(row: Event) -> PublishedEvent:
    """A stored row as the bus would have published it (same ``as_dict()`` shape)."""
    return PublishedEvent(row.id, row.workspace_id, row.event_type, row.entity_type, row.entity_id,
                          row.payload or {}, row.created_at)


async def events_after(session: AsyncSession, principal: Principal, after_id: int, *,
                       workspace_ids: Collection[uuid.UUID] | None = None, types: TypeFilter | None = None,
                       limit: int = 500) -> list[PublishedEvent]:
    """Up to ``limit`` events with ``id > after_id``, ascending by id, that ``principal`` may see.

    ``workspace_ids`` narrows further (None = every workspace the principal sees; the caller checks
    that the ids are visible — an invisible id here simply matches nothing). ``types`` narrows by
    event type. Tenancy: ``scoped()`` (AGENTS.md "One tenant filter").
    """
    stmt = scoped(select(Event).where(Event.id > after_id), Event, principal)
    if workspace_ids is not None:
        stmt = stmt.where(Event.workspace_id.in_(list(workspace_ids)))
    if types is not None:
        stmt = stmt.where(types.clause())
    rows = (await session.execute(stmt.order_by(Event.id).limit(limit))).scalars().all()
    return [to_published(r) for r in rows]


async def max_event_id(session: AsyncSession) -> int:
    """The highest id in the log (0 when empty). Ids are global, so this reveals no tenant data."""
    return int((await session.execute(select(func.max(Event.id)))).scalar() or 0)
