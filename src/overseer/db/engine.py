"""The engine and the unit of work (one transaction boundary).

``Database.session()`` is the only place that commits: services only ``flush()``. Events appended
during the transaction (``events.log.append``) are handed to the in-process bus *after* the commit
succeeds (transactional outbox: written before anyone is told). On rollback nothing is published.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

if TYPE_CHECKING:
    from overseer.events.bus import EventBus

log = logging.getLogger(__name__)

OUTBOX_KEY = "overseer.outbox"


def _json_default(value: Any) -> str:
    """JSON columns never fail on a stray UUID or datetime: they are stored as strings."""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


_ENCODER = json.JSONEncoder(default=_json_default, separators=(",", ":"))
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
# The C encoder ``JSONEncoder.encode`` builds on every call, built once (same output: ASCII-escaped,
# compact separators, NaN allowed, keys unsorted). Without a circular-reference check: a payload
# parsed from JSON cannot contain one, and a hand-built cycle still fails (RecursionError).
_C_ENCODE = (_c_make_encoder(None, _json_default, json.encoder.encode_basestring_ascii, None, ":", ",",
                             False, False, True) if _c_make_encoder is not None else None)


def json_dumps(value: Any) -> str:
    """The JSON text of JSON columns (the engine's ``json_serializer``; the raw SQLite event insert
    uses it too). ``json.dumps`` with options builds a new encoder per call; this reuses one."""
    if _C_ENCODE is None or isinstance(value, str):
        return _ENCODER.encode(value)
    return "".join(_C_ENCODE(value, 0))


_json_dumps = json_dumps


def make_engine(url: str, *, sqlite_busy_timeout_ms: int = 5000, echo: bool = False) -> AsyncEngine:
    """Create the async engine; on SQLite enable WAL, foreign keys and a busy timeout per connection."""
    kwargs: dict[str, Any] = {"echo": echo, "json_serializer": json_dumps}
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

    async def dispose(self) -> None:
        await self.engine.dispose()
