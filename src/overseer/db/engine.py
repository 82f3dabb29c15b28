"""The engine and the unit of work (one transaction boundary).

``Database.session()`` is the only place that commits: services only ``flush()``. Events appended
during the transaction (``events.log.append``) are handed to the in-process bus *after* the commit
succeeds (transactional outbox: written before anyone is told). On rollback nothing is published.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

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


def make_engine(url: str, *, sqlite_busy_timeout_ms: int = 5000, echo: bool = False,
                background_checkpoint: bool = False) -> AsyncEngine:
    """Create the async engine; on SQLite enable WAL, foreign keys and a busy timeout per connection.

    ``background_checkpoint``: a :class:`~overseer.db.checkpoint.WalCheckpointer` will checkpoint the
    WAL (``Database.start_checkpointer``), so the connections' own threshold is raised to its backstop."""
    kwargs: dict[str, Any] = {"echo": echo, "json_serializer": json_dumps, "json_deserializer": _loads}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": sqlite_busy_timeout_ms / 1000}
    else:
        kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
    engine = create_async_engine(url, **kwargs)
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

    def __init__(self, engine: AsyncEngine, bus: EventBus) -> None:
        self.engine = engine
        self.bus = bus
        self.sessionmaker = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
        self.before_commit: list[Callable[[AsyncSession, list[Any]], Awaitable[None]]] = []
        """Run inside the transaction, after deferred events are inserted, with the outbox (id order)."""
        self.on_rollback: list[Callable[[], None]] = []
        self.checkpointer: WalCheckpointer | None = None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commit on success, roll back on error, then publish the outbox."""
        async with self.sessionmaker() as session:
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

    @asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        """A session for reads only: never commits."""
        async with self.sessionmaker() as session:
            yield session

    async def start_checkpointer(self, interval_s: float) -> None:
        """On a file-backed SQLite database, checkpoint the WAL every ``interval_s`` seconds from a
        connection of its own (``db/checkpoint.py``; pair with ``make_engine(background_checkpoint=True)``).
        No-op on PostgreSQL, in-memory SQLite or ``interval_s <= 0``."""
        url = self.engine.url.render_as_string(hide_password=False)
        if self.checkpointer is None and interval_s > 0 and WalCheckpointer.applies_to(url):
            self.checkpointer = WalCheckpointer(url, interval_s=interval_s)
            await self.checkpointer.start()

    async def dispose(self) -> None:
        if self.checkpointer is not None:
            await self.checkpointer.stop()
            self.checkpointer = None
        await self.engine.dispose()
