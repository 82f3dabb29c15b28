"""``Database.ingest_session`` and ``Database.session``: on a SQLite file their statements run on the
event loop's thread (``db/inline.py``) inside ``BEGIN IMMEDIATE``. They commit and publish; this
process's writers take turns in FIFO order (``Database.write_lock``); a writer of another connection
(another process) is waited for by yielding to the loop (never blocking it), up to the busy timeout;
a session opened inside a session by the same task uses aiosqlite's thread; an error rolls everything
back. Elsewhere (PostgreSQL, in-memory SQLite) they are the plain threaded/asyncpg unit of work."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from overseer.db.engine import Database, make_engine
from overseer.db.inline import InlineConnection
from overseer.events import log as event_log
from overseer.events.bus import EventBus
from overseer.workspaces.models import Workspace


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    from overseer.db import migrate

    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/ingest.db")
    await migrate.upgrade(engine)
    database = Database(engine, EventBus())
    async with database.session() as s:
        await s.execute(text("CREATE TABLE scratch (k TEXT PRIMARY KEY)"))
    yield database
    await database.dispose()


async def _driver(session: AsyncSession) -> Any:
    return (await (await session.connection()).get_raw_connection()).driver_connection


async def _keys(db: Database) -> list[str]:
    async with db.read_session() as s:
        return [r[0] for r in (await s.execute(text("SELECT k FROM scratch ORDER BY k"))).all()]


class _Ticker:
    """Counts event-loop turns while it runs: proof that the loop was not blocked."""

    def __init__(self) -> None:
        self.ticks = 0
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.ticks += 1
            await asyncio.sleep(0.002)

    async def stop(self) -> int:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        return self.ticks


async def test_it_runs_inline_commits_and_publishes(db: Database) -> None:
    ws = Workspace(name="ingest", root_path="/tmp/ingest")
    sub = db.bus.subscribe()
    async with db.session() as s:
        s.add(ws)
    while not sub.queue.empty():
        sub.queue.get_nowait()
    async with db.ingest_session() as s:
        assert isinstance(await _driver(s), InlineConnection)
        await s.execute(text("INSERT INTO scratch (k) VALUES ('a')"))
        event_log.defer(s, workspace_id=ws.id, event_type="status", entity_type="worker", entity_id="w1",
                        payload={"status": "active"})
    assert await _keys(db) == ["a"]
    published = sub.queue.get_nowait()
    assert (published.event_type, published.payload, published.workspace_id) == ("status", {"status": "active"}, ws.id)
    async with db.session() as s:  # a unit of work on a SQLite file is an inline writer too
        assert isinstance(await _driver(s), InlineConnection)
        assert (await s.execute(text("SELECT count(*) FROM events WHERE id = :i"), {"i": published.id})).scalar_one() == 1
        async with db.session() as nested:  # opened inside one by the same task: aiosqlite's thread
            assert isinstance(await _driver(nested), InlineConnection) is False
            assert (await nested.execute(text("SELECT count(*) FROM events WHERE id = :i"),
                                         {"i": published.id})).scalar_one() == 1


class _OtherProcessWriter:
    """A writer on a connection of its own (as another process, e.g. the CLI, would be): it holds
    SQLite's write lock from :meth:`begin` to :meth:`commit`, outside ``Database.write_lock``."""

    def __init__(self, db: Database) -> None:
        self.conn = sqlite3.connect(db.engine.url.database or "", isolation_level=None)

    def begin(self, key: str) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute("INSERT INTO scratch (k) VALUES (?)", (key,))

    def commit(self) -> None:
        self.conn.execute("COMMIT")
        self.conn.close()


async def test_it_waits_for_another_writer_without_blocking_the_loop(db: Database) -> None:
    other = _OtherProcessWriter(db)
    other.begin("first")  # holds SQLite's write lock

    async def ingest() -> None:
        async with db.ingest_session() as t:
            await t.execute(text("INSERT INTO scratch (k) VALUES ('second')"))

    ticker = _Ticker()
    waiting = asyncio.create_task(ingest())
    await asyncio.sleep(0.3)
    assert not waiting.done()  # still waiting for the lock ...
    ticks = ticker.ticks
    assert ticks >= 20  # ... while the loop kept running (a blocking wait would freeze the ticker)
    other.commit()  # the lock is free
    await asyncio.wait_for(waiting, 5)
    await ticker.stop()
    assert await _keys(db) == ["first", "second"]


@pytest.mark.parametrize("unit", ["ingest_session", "session"])
async def test_it_gives_up_after_the_busy_timeout_and_writes_nothing(db: Database, unit: str) -> None:
    db.busy_timeout_s = 0.2
    other = _OtherProcessWriter(db)
    other.begin("holder")
    with pytest.raises(OperationalError, match="locked"):
        async with getattr(db, unit)() as t:
            await t.execute(text("INSERT INTO scratch (k) VALUES ('never')"))
    other.commit()
    assert await _keys(db) == ["holder"]


async def test_writers_of_this_process_take_turns_in_order_without_blocking_the_loop(db: Database) -> None:
    order: list[str] = []

    async def writer(key: str) -> None:
        async with db.session() as s:
            order.append(key)
            await s.execute(text("INSERT INTO scratch (k) VALUES (:k)"), {"k": key})

    ticker = _Ticker()
    async with db.ingest_session() as t:
        await t.execute(text("INSERT INTO scratch (k) VALUES ('ingest')"))
        writers = [asyncio.create_task(writer(k)) for k in ("w1", "w2", "w3")]
        await asyncio.sleep(0.2)  # the ingest holds the lock across a yield; the others queue meanwhile
        assert not any(w.done() for w in writers) and order == []
    await asyncio.wait_for(asyncio.gather(*writers), 5)
    assert await ticker.stop() >= 20
    assert order == ["w1", "w2", "w3"]  # FIFO, not whoever polls first
    assert await _keys(db) == ["ingest", "w1", "w2", "w3"]


async def test_a_writer_waited_for_by_the_lock_holder_gives_up_after_the_busy_timeout(db: Database) -> None:
    """A task started inside a unit of work and awaited there waits for the lock its starter holds:
    the defined outcome is the busy timeout's OperationalError for the task, not a hang."""
    db.busy_timeout_s = 0.2

    async def inner() -> None:
        async with db.session() as s:
            await s.execute(text("INSERT INTO scratch (k) VALUES ('inner')"))

    async with db.session() as s:
        await s.execute(text("INSERT INTO scratch (k) VALUES ('outer')"))
        with pytest.raises(OperationalError, match="locked"):
            await asyncio.create_task(inner())
    assert await _keys(db) == ["outer"]


async def test_an_error_rolls_back_and_frees_the_lock(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.ingest_session() as t:
            await t.execute(text("INSERT INTO scratch (k) VALUES ('lost')"))
            raise RuntimeError("boom")
    async with db.session() as s:  # would wait out the busy timeout if the lock were still held
        await s.execute(text("INSERT INTO scratch (k) VALUES ('after')"))
    assert await _keys(db) == ["after"]


async def test_elsewhere_it_is_the_normal_session(db_url: str, tmp_path: Path) -> None:
    """PostgreSQL (the db_url fixture runs both backends) and in-memory SQLite: no inline engine."""
    for url in (db_url, "sqlite+aiosqlite://"):
        if url.startswith("sqlite+aiosqlite:///") and ":memory:" not in url:
            continue  # the file-backed case is the rest of this module
        database = Database(make_engine(url), EventBus())
        try:
            async with database.ingest_session() as s:
                assert not isinstance(await _driver(s), InlineConnection)
                assert (await s.execute(text("SELECT 1"))).scalar_one() == 1
        finally:
            await database.dispose()


async def test_reads_run_inline_in_one_snapshot_and_write_nothing(db: Database) -> None:
    async with db.session() as s:
        await s.execute(text("INSERT INTO scratch (k) VALUES ('a')"))
    async with db.read_session() as r:
        assert isinstance(await _driver(r), InlineConnection)
        assert (await r.execute(text("SELECT count(*) FROM scratch"))).scalar_one() == 1
        async with db.session() as w:  # a writer commits while the read is open ...
            await w.execute(text("INSERT INTO scratch (k) VALUES ('b')"))
        # ... and the read keeps its snapshot: its statements agree with each other
        assert (await r.execute(text("SELECT count(*) FROM scratch"))).scalar_one() == 1
    async with db.read_session() as r:
        await r.execute(text("INSERT INTO scratch (k) VALUES ('stray')"))  # a stray write is rolled back
    assert await _keys(db) == ["a", "b"]


async def test_a_read_does_not_wait_for_an_open_write(db: Database) -> None:
    other = db.session()
    s = await other.__aenter__()
    await s.execute(text("INSERT INTO scratch (k) VALUES ('uncommitted')"))  # holds the write lock
    try:
        async with db.read_session() as r:  # inline, busy timeout 0: a wait here would be an error
            assert (await r.execute(text("SELECT count(*) FROM scratch"))).scalar_one() == 0
    finally:
        await other.__aexit__(None, None, None)
    assert await _keys(db) == ["uncommitted"]


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
async def test_a_writer_cancelled_as_the_lock_is_granted_is_cancelled_and_frees_it(db: Database, turns: int) -> None:
    """A cancellation that lands while a writer is being handed the lock is never swallowed (3.11's
    ``asyncio.wait_for`` did that: the cancelled task went on as if nothing had happened) and never
    leaves the lock held."""
    async def writer() -> None:
        async with db.session() as s:
            await s.execute(text("INSERT INTO scratch (k) VALUES ('writer')"))
            await asyncio.sleep(0)  # a yield inside the unit of work, where a cancellation may land

    holder = db.session()
    s = await holder.__aenter__()
    await s.execute(text("INSERT INTO scratch (k) VALUES ('holder')"))
    task = asyncio.create_task(writer())
    await asyncio.sleep(0.05)  # the writer waits for the lock
    await holder.__aexit__(None, None, None)  # the lock goes to the writer ...
    for _ in range(turns):
        await asyncio.sleep(0)
    task.cancel()  # ... and the writer is cancelled somewhere in the hand-over
    with pytest.raises(asyncio.CancelledError):
        await task
    async with asyncio.timeout(2):  # the lock is free again
        async with db.session() as s:
            await s.execute(text("INSERT INTO scratch (k) VALUES ('after')"))
    # the writer's unit of work is all or nothing: rolled back, or committed just before the cancellation
    assert await _keys(db) in (["after", "holder"], ["after", "holder", "writer"])
