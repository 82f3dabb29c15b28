"""The in-process event bus: committed events fan out to subscribers (SSE, notifier, policies).

Publishing never blocks and never raises: each subscriber has a bounded queue; a subscriber whose
queue is full is marked ``overflowed`` and dropped (it must reconnect and catch up from the log by
``Last-Event-ID``), so one slow reader can neither slow the pipeline nor grow memory.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

log = logging.getLogger(__name__)


class PublishedEvent(NamedTuple):
    """A committed event as subscribers see it (mirrors a row of ``events``).

    Immutable (one instance is shared by every subscriber). A named tuple, not a frozen dataclass:
    the ingest builds one per event, and a frozen dataclass's ``__init__`` costs ~4x more
    (``benchmarks/stages.py``, "published").
    """

    id: int
    workspace_id: uuid.UUID
    event_type: str
    entity_type: str
    entity_id: str
    payload: dict[str, Any]
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "workspace_id": str(self.workspace_id),
            "event_type": self.event_type,
            "entity_type": self.entity_type,
            "entity_id": self.entity_id,
            "payload": self.payload,
            "created_at": self.created_at.isoformat(),
        }


Predicate = Callable[[PublishedEvent], bool]


@dataclass(eq=False)
class Subscription:
    queue: asyncio.Queue[PublishedEvent]
    predicate: Predicate
    overflowed: bool = False
    _bus: EventBus | None = field(default=None, repr=False)

    async def get(self) -> PublishedEvent:
        return await self.queue.get()

    def close(self) -> None:
        if self._bus is not None:
            self._bus.unsubscribe(self)


class EventBus:
    """Fan-out of committed events to in-process subscribers and callbacks."""

    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self._listeners: list[Callable[[PublishedEvent], None]] = []

    def subscribe(self, predicate: Predicate | None = None, *, maxsize: int = 1000) -> Subscription:
        sub = Subscription(asyncio.Queue(maxsize=maxsize), predicate or (lambda _e: True), _bus=self)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def add_listener(self, fn: Callable[[PublishedEvent], None]) -> None:
        """Register a synchronous callback run for every event (must be fast and not raise)."""
        self._listeners.append(fn)

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    def publish_many(self, events: Iterable[PublishedEvent]) -> None:
        for ev in events:
            for fn in self._listeners:
                try:
                    fn(ev)
                except Exception:  # a listener bug must not break publishing
                    log.exception("event listener failed")
            for sub in list(self._subs):
                if sub.overflowed or not sub.predicate(ev):
                    continue
                try:
                    sub.queue.put_nowait(ev)
                except asyncio.QueueFull:
                    sub.overflowed = True
                    self._subs.discard(sub)
