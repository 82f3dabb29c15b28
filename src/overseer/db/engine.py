"""The engine and the unit of work (one transaction boundary).

``Database.session()`` is the only place that commits (with ``Database.ingest_session()``, its twin
for the agent-event ingest: on SQLite it runs on the event loop's thread, ``db/inline.py``): services
only ``flush()``. Events appended during the transaction (``events.log.append``) are handed to the
in-process bus *after* the commit succeeds (transactional outbox: written before anyone is told). On
rollback nothing is published.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from overseer.db.base import sqlite_file_path
from overseer.db.checkpoint import BACKSTOP_PAGES, WalCheckpointer
from overseer.jsoncodec import dumps as _dumps
from overseer.jsoncodec import loads as _loads

if TYPE_CHECKING:
    from overseer.events.bus import EventBus

log = logging.getLogger(__name__)

OUTBOX_KEY = "overseer.outbox"


def json_dumps(value: Any) -> str:
    """The JSON text of JSON columns (the engine's ``json_serializer``; the raw SQLite event insert
    calls :func:`overseer.jsoncodec.dumps` itself, the same text): compact UTF-8 JSON from :func:`overseer.jsoncodec.dumps` (orjson, with the standard
    library for what orjson refuses). A stray UUID or datetime is stored as a string."""
    return _dumps(value)


_json_dumps = json_dumps


_BACKGROUND_CHECKPOINT: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()
"""``make_engine``'s ``background_checkpoint`` per (sync) engine: the inline engine derived from it
by :class:`Database` uses the same WAL threshold."""


def make_engine(url: str, *, sqlite_busy_timeout_ms: int = 5000, echo: bool = False,
                background_checkpoint: bool = False, inline: bool = False) -> AsyncEngine:
    """Create the async engine; on SQLite enable WAL, foreign keys and a busy timeout per connection.

    ``background_checkpoint``: a :class:`~overseer.db.checkpoint.WalCheckpointer` will checkpoint the
    WAL (``Database.start_checkpointer``), so the connections' own threshold is raised to its backstop.
    ``inline``: SQLite file only; connections run on the event loop's thread with no busy timeout and
    no implicit transactions (``db/inline.py``; for ``Database.ingest_session``)."""
    kwargs: dict[str, Any] = {"echo": echo, "json_serializer": json_dumps, "json_deserializer": _loads}
    if inline:
        from overseer.db.inline import inline_creator

        kwargs["async_creator"] = inline_creator(url)
        sqlite_busy_timeout_ms = 0
    elif url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": sqlite_busy_timeout_ms / 1000}
    else:
        kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
    engine = create_async_engine(url, **kwargs)
    _BACKGROUND_CHECKPOINT[engine.sync_engine] = background_checkpoint
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(sqlite_busy_timeout_ms)}")
            cur.execute("PRAGMA synchronous=NORMAL")
            if background_checkpoint:
                cur.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
            cur.close()

    return engine


class Database:
    """Holds the engine, the session factory and the bus that committed events are published to."""

    def __init__(self, engine: AsyncEngine, bus: EventBus, *, busy_timeout_s: float = 5.0) -> None:
        self.engine = engine
        self.bus = bus
        self.sessionmaker = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
        self.before_commit: list[Callable[[AsyncSession, list[Any]], Awaitable[None]]] = []
        """Run inside the transaction, after deferred events are inserted, with the outbox (id order)."""
        self.on_rollback: list[Callable[[], None]] = []
        self.checkpointer: WalCheckpointer | None = None
        self._inline: async_sessionmaker[AsyncSession] | None = None
        """Inline-SQLite sessions for the ingest and for reads (built on first use; None where they do
        not apply)."""
        self._inline_engine: AsyncEngine | None = None
        self._inline_checked = False
        self.write_lock = asyncio.Lock()
        """Held by an inline SQLite writer (:meth:`session`, :meth:`ingest_session`) from before its
        ``BEGIN IMMEDIATE`` to after its commit: this process's writers take turns in FIFO order."""
        self.busy_timeout_s = busy_timeout_s
        """How long an inline writer (:meth:`session`) waits for the write lock: pass the engine's busy timeout
        (``make_engine(sqlite_busy_timeout_ms=...)``), as the app does."""

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commit on success, roll back on error, then publish the outbox.

        On a file-backed SQLite database it is an *inline writer* (as :meth:`ingest_session`): its
        statements run on the event loop's thread (``db/inline.py``) inside ``BEGIN IMMEDIATE``, after
        this process's other inline writers (FIFO, :attr:`write_lock`). Through aiosqlite's thread a
        person's small write waited p50 182-582 ms during an ingest burst (that thread starved of the
        GIL by the busy loop; ``pipeline.py --probe-writes``). A session opened inside another
        session of the same task (which holds the write lock) uses aiosqlite's thread, as before; a
        task started inside a session waits its turn (awaiting it there waits for the lock its
        starter holds, up to the busy timeout).
        Raises ``sqlalchemy.exc.OperationalError`` ("database is locked") when the write lock is
        not had within the busy timeout."""
        maker = self._inline_maker()
        if maker is None or _nested_in_writer():
            maker, immediate = self.sessionmaker, False
        else:
            immediate = True
        async with self._unit_of_work(maker, immediate=immediate) as session:
            yield session

    @asynccontextmanager
    async def ingest_session(self) -> AsyncIterator[AsyncSession]:
        """The agent-event ingest's unit of work: :meth:`session` (on a SQLite file its ``BEGIN
        IMMEDIATE`` is taken first, after this process's other writers, then SQLite's lock, waiting for
        another process's writer by yielding to the loop; so no later statement can wait on a lock).
        Kept as its own name: the ingest relies on that, and reads as such."""
        async with self.session() as session:
            yield session

    def _inline_maker(self) -> async_sessionmaker[AsyncSession] | None:
        if self._inline is None and not self._inline_checked:
            self._inline_checked = True
            url = self.engine.url.render_as_string(hide_password=False)
            if sqlite_file_path(url) is not None:  # not PostgreSQL, nor in-memory SQLite (one per connection)
                # the WAL threshold of the engine's own connections (raised only where a checkpointer runs)
                background = _BACKGROUND_CHECKPOINT.get(self.engine.sync_engine, False)
                self._inline_engine = make_engine(url, inline=True, background_checkpoint=background)
                self._inline = async_sessionmaker(self._inline_engine, expire_on_commit=False, autoflush=False)
        return self._inline

    @asynccontextmanager
    async def _unit_of_work(self, maker: async_sessionmaker[AsyncSession], *, immediate: bool
                            ) -> AsyncIterator[AsyncSession]:
        token = None
        if immediate:  # an inline writer: this process's writers queue here, in order (no polling)
            try:  # not asyncio.wait_for: on 3.11 it can swallow a cancellation that lands as the lock is granted
                async with asyncio.timeout(self.busy_timeout_s):
                    await self.write_lock.acquire()
            except TimeoutError:
                raise OperationalError("BEGIN IMMEDIATE", None, Exception(  # type: ignore[arg-type]
                    f"database is locked: no write lock within {self.busy_timeout_s} s")) from None
            token = _INLINE_WRITER.set(asyncio.current_task())
        try:
            async with maker() as session:
                if immediate:
                    await _begin_immediate(session, self.busy_timeout_s)
                try:
                    yield session
                    await self._before_commit(session)
                    await session.commit()
                except BaseException:
                    await session.rollback()
                    if session.info.get(OUTBOX_KEY):
                        for fn in self.on_rollback:
                            fn()
                    raise
                outbox = session.info.pop(OUTBOX_KEY, None)
        finally:
            if token is not None:
                _INLINE_WRITER.reset(token)
                self.write_lock.release()
        if outbox:
            self.bus.publish_many(outbox)

    async def _before_commit(self, session: AsyncSession) -> None:
        from overseer.events.log import flush_deferred

        # Row locks are taken in a fixed order in every transaction: the caller's own rows (flushed
        # here), then the event rows, then the projection rows (sorted by key in the hooks). This is
        # what keeps concurrent units of work on PostgreSQL free of deadlocks.
        await session.flush()
        await flush_deferred(session)
        outbox = session.info.get(OUTBOX_KEY)
        if outbox:
            outbox.sort(key=lambda e: e.id)
            for hook in self.before_commit:
                await hook(session, outbox)

    @property
    def read_engine(self) -> AsyncEngine:
        """The engine :meth:`read_session` (and, on SQLite, :meth:`ingest_session`) uses: the inline one
        on a SQLite file, else :attr:`engine` (for event listeners that must see those statements)."""
        self._inline_maker()
        return self._inline_engine or self.engine

    @asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        """A session for reads only: never commits (anything written in it is rolled back).

        On a SQLite file it runs on the event loop's thread (``db/inline.py``) inside one deferred
        transaction: its statements see one snapshot, and none of them can wait on a lock (in WAL mode
        readers never wait for the writer). Measured during an ingest burst (``pipeline.py
        --probe-reads``): a small read through aiosqlite's thread took p50 ~150 ms (its thread starved
        of the GIL by the busy loop), inline p50 5-28 ms, max < 50 ms."""
        maker = self._inline_maker()
        if maker is None:
            async with self.sessionmaker() as session:
                yield session
            return
        async with maker() as session:
            await session.execute(_BEGIN_DEFERRED)
            yield session

    async def start_checkpointer(self, interval_s: float) -> None:
        """On a file-backed SQLite database, checkpoint the WAL every ``interval_s`` seconds from a
        connection of its own (``db/checkpoint.py``; pair with ``make_engine(background_checkpoint=True)``).
        No-op on PostgreSQL, in-memory SQLite or ``interval_s <= 0``."""
        url = self.engine.url.render_as_string(hide_password=False)
        if self.checkpointer is None and interval_s > 0 and sqlite_file_path(url) is not None:
            self.checkpointer = WalCheckpointer(url, interval_s=interval_s)
            await self.checkpointer.start()

    async def dispose(self) -> None:
        if self.checkpointer is not None:
            await self.checkpointer.stop()
            self.checkpointer = None
        if self._inline_engine is not None:
            await self._inline_engine.dispose()
        self._inline, self._inline_engine, self._inline_checked = None, None, False
        await self.engine.dispose()


async def _begin_immediate(session: AsyncSession, timeout_s: float) -> None:
    """``BEGIN IMMEDIATE`` on ``session``'s (inline SQLite) connection; while another connection holds
    the write lock, yield to the loop and try again (1 ms, doubling to 50 ms) for up to ``timeout_s``.
    Raises ``sqlalchemy.exc.OperationalError`` ("database is locked") after that."""
    deadline = time.monotonic() + timeout_s
    delay = 0.001
    while True:
        try:
            await session.execute(_BEGIN_IMMEDIATE)
            return
        except OperationalError as exc:
            locked = "locked" in str(exc.orig) or "busy" in str(exc.orig)
            await session.rollback()
            if not locked or time.monotonic() + delay > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


_BEGIN_IMMEDIATE = text("BEGIN IMMEDIATE")
_INLINE_WRITER: ContextVar[asyncio.Task[Any] | None] = ContextVar("overseer_inline_writer", default=None)
"""The task that holds :attr:`Database.write_lock` in this context (tasks started inside a unit of work
inherit it): a session opened by that same task must not wait for the lock it holds itself."""


def _nested_in_writer() -> bool:
    holder = _INLINE_WRITER.get()
    return holder is not None and holder is asyncio.current_task()
_BEGIN_DEFERRED = text("BEGIN")
