"""Single-consumer FIFOs for the hot path (every agent line and event goes through one).

``Inbox`` is the part of an unbounded ``asyncio.Queue`` the runtime uses (``put_nowait``, ``get``,
``empty``, ``qsize``) with less work per item; ``TrackedInbox`` adds ``task_done``/``join`` (so callers
can wait until everything queued has been handled) and ``take`` (move many items at once);
``events.bus.FanoutQueue`` adds a bound for each bus subscriber. One consumer only: a second
concurrent ``get`` is not supported.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Inbox(Generic[T]):
    __slots__ = ("_getter", "_items")

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._getter: asyncio.Future[None] | None = None

    def put_nowait(self, item: T) -> None:
        self._items.append(item)
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    def get_nowait(self) -> T:
        """The oldest item. Raises ``IndexError`` when empty (cheaper than a coroutine per item
        for a consumer that drains what is queued before waiting)."""
        return self._items.popleft()

    async def get(self) -> T:
        while not self._items:
            self._getter = asyncio.get_running_loop().create_future()
            try:
                await self._getter
            finally:
                self._getter = None
        return self._items.popleft()


class TrackedInbox(Inbox[T]):
    __slots__ = ("_done", "_unfinished")

    def __init__(self) -> None:
        super().__init__()
        self._unfinished = 0
        self._done = asyncio.Event()
        self._done.set()

    def put_nowait(self, item: T) -> None:
        if not self._unfinished:
            self._done.clear()
        self._unfinished += 1
        self._items.append(item)  # Inbox.put_nowait inlined: one call per agent event
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)

    def take(self, batch: list[T], n: int) -> None:
        """Move up to ``n`` queued items to the end of ``batch``, in order."""
        items = self._items
        if len(items) <= n:
            batch.extend(items)
            items.clear()
        else:
            popleft = items.popleft
            batch.extend([popleft() for _ in range(n)])

    def task_done(self, n: int = 1) -> None:
        if n > self._unfinished:
            raise ValueError("task_done() called too many times")
        self._unfinished -= n
        if not self._unfinished:
            self._done.set()

    async def join(self) -> None:
        await self._done.wait()
