"""The live event stream: replay from the log, then live events from the bus, as SSE frames.

``event_stream(...)`` is an async generator of ``sse_starlette.ServerSentEvent`` (the route in
``events/routes.py`` hands it to ``EventSourceResponse``). The contract is in ``events/AGENTS.md``:

- first frame ``event: ready``, ``id: <cursor>``, data ``{"last_event_id": <cursor>}``: the cursor
  is the Last-Event-ID given (clamped to the log's head) or, when starting live, the head of the log
  at connect time. It carries ``id`` so a browser ``EventSource`` that reconnects on its own resumes
  from there without a gap.
- every log event: ``id: <events.id>``, ``event: <event_type>``, ``data: <PublishedEvent.as_dict() JSON>``,
  strictly ascending ids, each at most once per connection.
- last frame, when the server ends the stream: ``event: reconnect`` (no ``id``), data
  ``{"reason": "slow_consumer" | "max_lifetime" | "shutdown", "last_event_id": <last id sent>}``.

No gap, no duplicate (ARCHITECTURE.md "outbox"): the bus subscription is taken *before* the log is
read, then live events with ``id <= last id sent`` are skipped. This relies on ids becoming visible
in id order (true on SQLite, one writer); see AGENTS.md for the PostgreSQL caveat.

Tenancy: the live predicate uses ``Principal.can_see`` and the replay uses ``query.events_after``
(``scoped()``), both narrowed by the same :class:`StreamFilter`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import anyio
from sse_starlette import ServerSentEvent

from overseer import jsoncodec
from overseer.auth.tokens import Principal
from overseer.db.engine import Database
from overseer.events.bus import Predicate, PublishedEvent, Subscription
from overseer.events.query import TypeFilter, events_after, max_event_id

log = logging.getLogger(__name__)

ReconnectReason = Literal["slow_consumer", "max_lifetime", "shutdown"]
PAGE_SIZE = 500
"""Rows per replay query."""


@dataclass(frozen=True, slots=True)
class StreamFilter:
    """What one client asked for, already checked against its principal by the route.

    ``workspace_ids``: None = every workspace the principal sees; else a subset of them (the route
    404s an invisible one). ``types``: None = every type.
    """

    workspace_ids: frozenset[uuid.UUID] | None = None
    types: TypeFilter | None = None

    def predicate(self, principal: Principal) -> Predicate:
        """The live-side rule; the replay side is ``query.events_after`` with the same arguments."""
        ws, types = self.workspace_ids, self.types

        def _match(ev: PublishedEvent) -> bool:
            if not principal.can_see(ev.workspace_id):
                return False
            if ws is not None and ev.workspace_id not in ws:
                return False
            return types is None or types.matches(ev.event_type)

        return _match


class StreamHub:
    """The open streams of one app: a connected-client count (metrics) and a way to end them all.

    Each stream registers its stop event; ``close_all()`` sets every one (and refuses new streams),
    so each ends with ``reconnect`` (reason ``shutdown``) within one loop turn. sse-starlette sets
    the same per-stream event when it sees uvicorn shutting down (stack.md A3.3).
    """

    def __init__(self) -> None:
        self._stops: set[anyio.Event] = set()
        self.closing = False
        self.total = 0
        """Streams opened since start (a counter for metrics)."""

    @property
    def connected(self) -> int:
        """Streams open now."""
        return len(self._stops)

    def add(self, stop: anyio.Event) -> None:
        self._stops.add(stop)
        self.total += 1
        if self.closing:
            stop.set()

    def discard(self, stop: anyio.Event) -> None:
        self._stops.discard(stop)

    def close_all(self) -> None:
        self.closing = True
        for stop in list(self._stops):
            stop.set()


_FRAME_CACHE: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
_FRAME_CACHE_MAX = 4096
LIVE_WRITE_MAX = 200
"""At most this many queued events go out in one write."""


def event_frame(ev: PublishedEvent) -> bytes:
    """One log event as an encoded SSE message: ``id``, ``event`` = event_type, ``data`` = JSON of as_dict().

    Events are immutable, so the bytes are built once per event and shared by every connected client
    (with 200 clients, re-encoding per client was ~40 % of the server's CPU; benchmarks/stream_fanout.py).
    """
    key = (ev.id, ev.workspace_id, ev.created_at)  # not the id alone: one process may serve several databases
    frame = _FRAME_CACHE.get(key)
    if frame is None:
        frame = ServerSentEvent(data=jsoncodec.dumps(ev.as_dict()), event=ev.event_type,
                                id=str(ev.id)).encode()
        _FRAME_CACHE[key] = frame
        if len(_FRAME_CACHE) > _FRAME_CACHE_MAX:
            _FRAME_CACHE.popitem(last=False)
    return frame


def reconnect_frame(reason: ReconnectReason, last_event_id: int) -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps({"reason": reason, "last_event_id": last_event_id}), event="reconnect")


def ready_frame(cursor: int) -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps({"last_event_id": cursor}), event="ready", id=str(cursor))


async def event_stream(
    db: Database,
    principal: Principal,
    filt: StreamFilter,
    *,
    last_event_id: int | None,
    queue_max: int,
    max_lifetime_s: float,
    stop: anyio.Event | None = None,
    hub: StreamHub | None = None,
    page_size: int | None = None,
) -> AsyncIterator[ServerSentEvent | bytes]:
    """Yield the stream described in the module docstring until the server ends it.

    ``last_event_id``: None starts live (cursor = head of the log now); an int replays every visible
    event with a greater id first (in pages of ``page_size``, default :data:`PAGE_SIZE`). A cursor beyond the head (e.g. a
    rebuilt database) is clamped to the head. ``queue_max`` bounds the live buffer (bus subscription
    ``maxsize``); ``max_lifetime_s`` is seconds until ``reconnect`` (max_lifetime); ``stop`` set means
    ``reconnect`` (shutdown). Ends by returning after a ``reconnect`` frame, or by cancellation when
    the client goes away; the subscription is always released.
    """
    page_size = page_size or PAGE_SIZE
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_lifetime_s
    stop = stop or anyio.Event()
    predicate = filt.predicate(principal)
    if hub is not None:
        hub.add(stop)
    sub: Subscription = db.bus.subscribe(predicate, maxsize=queue_max)
    stop_task: asyncio.Task[Any] | None = None
    get_task: asyncio.Task[PublishedEvent] | None = None
    try:
        async with db.read_session() as session:
            head = await max_event_id(session)
        last = head if last_event_id is None else min(last_event_id, head)
        yield ready_frame(last)

        # Replay: the subscription above already buffers anything committed from now on.
        if last_event_id is not None:
            while True:
                async with db.read_session() as session:  # never held across a yield to the client
                    page = await events_after(session, principal, last, workspace_ids=filt.workspace_ids,
                                              types=filt.types, limit=page_size)
                for ev in page:
                    if stop.is_set():
                        yield reconnect_frame("shutdown", last)
                        return
                    if loop.time() >= deadline:
                        yield reconnect_frame("max_lifetime", last)
                        return
                    yield event_frame(ev)
                    last = ev.id
                if len(page) == page_size:
                    continue
                if sub.overflowed:
                    # More than queue_max events arrived while replaying: subscribe again, read on.
                    sub.close()
                    sub = db.bus.subscribe(predicate, maxsize=queue_max)
                    continue
                break

        # Live.
        stop_task = asyncio.ensure_future(stop.wait())
        while True:
            if stop.is_set():
                yield reconnect_frame("shutdown", last)
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                yield reconnect_frame("max_lifetime", last)
                return
            if sub.overflowed:
                # The bus dropped us (queue full): what is queued is fine but later events are gone.
                yield reconnect_frame("slow_consumer", last)
                return
            try:
                ev = sub.queue.get_nowait()
            except asyncio.QueueEmpty:
                get_task = asyncio.ensure_future(sub.queue.get())
                done, _ = await asyncio.wait({get_task, stop_task}, timeout=remaining,
                                             return_when=asyncio.FIRST_COMPLETED)
                if get_task not in done:
                    get_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await get_task  # a get that won the race is dropped; the client resumes from `last`
                    get_task = None
                    continue
                ev = get_task.result()
                get_task = None
            # Send what is already queued as one write (one ASGI send for many frames under load).
            frames: list[bytes] = []
            while True:
                if ev.id > last:  # else already sent by the replay
                    frames.append(event_frame(ev))
                    last = ev.id
                if len(frames) >= LIVE_WRITE_MAX or sub.queue.empty():
                    break
                ev = sub.queue.get_nowait()
            if frames:
                yield b"".join(frames)
    finally:
        sub.close()
        for task in (get_task, stop_task):
            if task is not None and not task.done():
                task.cancel()
        if hub is not None:
            hub.discard(stop)
