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

from overseer.queues import Inbox

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


class FanoutQueue(Inbox[PublishedEvent]):
    """One subscriber's bounded FIFO: what the stream uses of ``asyncio.Queue`` (``put_nowait``,
    ``get``, ``get_nowait``, ``empty``, ``qsize``, ``full``; ``asyncio.QueueFull`` / ``QueueEmpty``), for
    one consumer, plus :meth:`put_many`, which takes a committed batch in one call.

    ``asyncio.Queue.put_nowait`` ran ~60 bytecodes per event per subscriber on the ingest path (full
    check, unfinished-task count, waking getters); here an event costs an append. ``maxsize`` <= 0:
    unbounded. A ``get`` cancelled while waiting takes nothing (items leave only by being returned).
    """

    __slots__ = ("maxsize",)

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__()
        self.maxsize = maxsize

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._items)

    def put_nowait(self, item: PublishedEvent) -> None:
        if 0 < self.maxsize <= len(self._items):
            raise asyncio.QueueFull
        super().put_nowait(item)

    def put_many(self, items: list[PublishedEvent]) -> bool:
        """Append ``items`` in order, as many as fit; False when some did not (the queue is full)."""
        room = self.maxsize - len(self._items) if self.maxsize > 0 else len(items)
        fits = len(items) <= room
        self._items.extend(items if fits else items[:max(room, 0)])
        getter = self._getter
        if getter is not None and not getter.done() and self._items:
            getter.set_result(None)
        return fits

    def get_nowait(self) -> PublishedEvent:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.popleft()


@dataclass(eq=False)
class Subscription:
    queue: FanoutQueue
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
        sub = Subscription(FanoutQueue(maxsize), predicate or _everything, _bus=self)
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
        """Hand ``events`` (id order) to every listener, then to every subscriber's queue (those its
        predicate keeps, in one :meth:`FanoutQueue.put_many`). A subscriber whose queue cannot take
        them all is marked ``overflowed`` and dropped."""
        batch = events if isinstance(events, list) else list(events)
        for fn in self._listeners:
            for ev in batch:
                try:
                    fn(ev)
                except Exception:  # a listener bug must not break publishing
                    log.exception("event listener failed")
        for sub in list(self._subs):
            if sub.overflowed:
                continue
            predicate = sub.predicate
            kept = batch if predicate is _everything else [ev for ev in batch if predicate(ev)]
            if kept and not sub.queue.put_many(kept):
                sub.overflowed = True
                self._subs.discard(sub)


def _everything(_ev: PublishedEvent) -> bool:
    return True
