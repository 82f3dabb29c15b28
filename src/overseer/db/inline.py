"""SQLite on the event loop's own thread, for every write session (the ingest's included) and read session.

aiosqlite runs every call in a thread of its own: the loop hands the call over, the thread takes the
GIL, runs it (SQLite itself without the GIL), hands the result back, and the loop wakes up. The
ingest commits a batch in ~25 such calls, one after the other, and the loop has nothing else to do
meanwhile; worse, while the loop *does* run Python (agents' lines arriving) the driver's thread waits
for the GIL at every hand-off (``benchmarks/gil_overlap.py``: a statement of ~2 ms took seconds).
Running the ingest's SQLite calls directly on the loop's thread removed that: +22 % events/s in an
interleaved A/B of ``benchmarks/pipeline.py`` (6 pairs; median 13,399 -> 16,068 events/s).

Blocking the loop is only safe if a call can never *wait*: an :class:`InlineConnection` has no busy
timeout, and a write session (:meth:`overseer.db.engine.Database.session`, the ingest's included)
starts its transaction with ``BEGIN IMMEDIATE`` (the write lock, retried after a yield to the loop
while another connection holds it), after which no statement of the transaction can be refused for a
lock (WAL: readers never block a writer, and the writer holds the only write lock).

``Database.read_session`` uses these connections too, inside a deferred ``BEGIN`` (one snapshot; in WAL
mode a reader never waits for the writer). With the ingest inline the loop is busy for whole batches,
and a read through aiosqlite's thread starved: p50 ~150 ms during a burst, against 5-20 ms inline
(``pipeline.py --probe-reads``). So did a write: ``Database.session`` through aiosqlite's thread took
p50 182-582 ms during a burst, inline p50 8-22 ms (``pipeline.py --probe-writes``), so it is inline too,
with ``BEGIN IMMEDIATE`` after an in-process FIFO lock (``Database.write_lock``): a write session may
hold its transaction across awaits, and the other writers then wait on that lock (yielding), never on
SQLite's (which would block the loop). Only a session opened inside a write session by the same task
keeps aiosqlite's thread (it must not wait for its own caller's lock).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from functools import partial
from typing import Any

import aiosqlite

from overseer.db.base import sqlite_file_path


class InlineConnection(aiosqlite.Connection):
    """An ``aiosqlite.Connection`` whose calls run at once on the calling thread (no worker thread).

    Relies on aiosqlite routing every call through ``_execute`` (true of 0.17-0.22; the version is
    pinned in ``pyproject.toml``): cursors, ``execute``, ``commit``, ``close`` all do."""

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._connection is None:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)

    async def _connect(self) -> InlineConnection:
        if self._connection is None:
            self._connection = self._connector()
        return self

    def __await__(self) -> Any:
        return self._connect().__await__()  # no thread to start

    async def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def stop(self) -> None:  # type: ignore[override]
        self._running = False


def inline_creator(url: str) -> Callable[[], Any]:
    """An ``async_creator`` for ``create_async_engine``: a connection to ``url``'s SQLite file with no
    busy timeout and the driver's own transaction handling off (``isolation_level=None``: the session
    says ``BEGIN IMMEDIATE`` itself)."""
    path = sqlite_file_path(url)
    if path is None:
        raise ValueError(f"inline connections need a SQLite file, not {url!r}")

    async def create() -> InlineConnection:
        connector = partial(sqlite3.connect, path, timeout=0, isolation_level=None, check_same_thread=False)
        return await InlineConnection(connector, 64)

    return create
