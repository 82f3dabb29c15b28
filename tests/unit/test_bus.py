"""The in-process bus (events/bus.py): fan-out order, predicates, overflow, and the subscriber queue."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from overseer.events.bus import EventBus, FanoutQueue, PublishedEvent

WS = uuid.UUID(int=1)


def ev(i: int, event_type: str = "message.delta") -> PublishedEvent:
    return PublishedEvent(i, WS, event_type, "worker", "w", {"i": i}, datetime(2026, 1, 1, tzinfo=UTC))


async def test_every_subscriber_gets_what_its_predicate_keeps_in_id_order() -> None:
    bus = EventBus()
    heard: list[int] = []
    bus.add_listener(lambda e: heard.append(e.id))
    everything = bus.subscribe()
    turns = bus.subscribe(lambda e: e.event_type.startswith("turn."))
    bus.publish_many([ev(1), ev(2, "turn.started"), ev(3)])
    bus.publish_many(iter([ev(4, "turn.completed"), ev(5)]))  # any iterable
    assert heard == [1, 2, 3, 4, 5]
    assert [everything.queue.get_nowait().id for _ in range(everything.queue.qsize())] == [1, 2, 3, 4, 5]
    assert [(await turns.get()).id, (await turns.get()).id] == [2, 4] and turns.queue.empty()


async def test_a_full_subscriber_keeps_what_fitted_and_is_dropped() -> None:
    bus = EventBus()
    slow, fine = bus.subscribe(maxsize=3), bus.subscribe(maxsize=100)
    bus.publish_many([ev(1), ev(2)])
    bus.publish_many([ev(3), ev(4), ev(5)])
    assert slow.overflowed and not fine.overflowed and bus.subscriber_count == 1
    assert [slow.queue.get_nowait().id for _ in range(slow.queue.qsize())] == [1, 2, 3]
    bus.publish_many([ev(6)])
    assert slow.queue.empty() and fine.queue.qsize() == 6


async def test_the_queue_wakes_a_waiting_get_and_a_cancelled_get_takes_nothing() -> None:
    q = FanoutQueue(maxsize=2)
    with pytest.raises(asyncio.QueueEmpty):
        q.get_nowait()
    waiting = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)
    assert q.put_many([ev(1)])
    assert (await waiting).id == 1
    cancelled = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    q.put_nowait(ev(2))
    q.put_nowait(ev(3))
    assert q.full()
    with pytest.raises(asyncio.QueueFull):
        q.put_nowait(ev(4))
    assert not q.put_many([ev(5)])
    assert [q.get_nowait().id, q.get_nowait().id] == [2, 3] and q.empty()
    unbounded = FanoutQueue(0)
    assert unbounded.put_many([ev(i) for i in range(10_000)]) and not unbounded.full()
