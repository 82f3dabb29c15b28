"""``db.sqlite_rows.insert_rows`` on a real SQLite file: every row lands once, in order, across the
chunk boundaries; the returned rowid ends the contiguous run; the rows belong to the session's
transaction (rolled back with it); an upsert tail updates; the statement texts stay few."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from overseer.db import sqlite_rows
from overseer.db.engine import Database, make_engine
from overseer.db.sqlite_rows import _chunk_rows, insert_rows
from overseer.events.bus import EventBus

HEAD = "INSERT INTO t (a, b, c) VALUES "


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(make_engine(f"sqlite+aiosqlite:///{tmp_path}/rows.db"), EventBus())
    async with database.session() as s:
        await s.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, a TEXT, b INTEGER, c TEXT)"))
        await s.execute(text("CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER)"))
    yield database
    await database.dispose()


@pytest.mark.parametrize("n", [1, 2, 3, 16, 17, 511, 512, 513, 1000, 1537])
async def test_every_row_once_in_order_and_the_last_rowid(db: Database, n: int) -> None:
    async with db.session() as s:
        await s.execute(text("INSERT INTO t (a, b, c) VALUES ('before', -1, NULL)"))  # ids do not start at 1
        rows = [(f"r{i}", i, None if i % 3 else "é\u0000x") for i in range(n)]
        last = await insert_rows(s, HEAD, 3, "", rows)
    async with db.read_session() as s:
        got = (await s.execute(text("SELECT id, a, b, c FROM t WHERE b >= 0 ORDER BY id"))).all()
    assert [tuple(r[1:]) for r in got] == rows
    assert [r[0] for r in got] == list(range(last - n + 1, last + 1)) == list(range(2, n + 2))


async def test_no_rows_is_no_statement(db: Database) -> None:
    async with db.session() as s:
        assert await insert_rows(s, HEAD, 3, "", []) is None


async def test_the_rows_roll_back_with_the_transaction(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.session() as s:
            await insert_rows(s, HEAD, 3, "", [("x", 1, None)] * 700)
            raise RuntimeError("abort the unit of work")
    async with db.read_session() as s:
        assert (await s.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0


async def test_a_failing_chunk_raises_the_driver_error_and_nothing_stays(db: Database) -> None:
    rows = [(f"k{i}", i) for i in range(600)] + [("k3", 0)]  # a duplicate key in the second chunk
    with pytest.raises(sqlite3.IntegrityError):
        async with db.session() as s:
            await insert_rows(s, "INSERT INTO kv (k, v) VALUES ", 2, "", rows)
    async with db.read_session() as s:
        assert (await s.execute(text("SELECT count(*) FROM kv"))).scalar_one() == 0


async def test_an_upsert_tail_updates_in_row_order(db: Database) -> None:
    tail = " ON CONFLICT (k) DO UPDATE SET v = excluded.v"
    async with db.session() as s:
        await insert_rows(s, "INSERT INTO kv (k, v) VALUES ", 2, tail, [("a", 1), ("b", 2)])
    async with db.session() as s:  # the later of two rows with one key wins, as with executemany
        await insert_rows(s, "INSERT INTO kv (k, v) VALUES ", 2, tail, [("a", 10), ("c", 3), ("a", 11)])
    async with db.read_session() as s:
        assert (await s.execute(text("SELECT k, v FROM kv ORDER BY k"))).all() == [("a", 11), ("b", 2), ("c", 3)]


def test_chunks_respect_the_parameter_limit() -> None:
    assert _chunk_rows(6) == sqlite_rows.MAX_CHUNK_ROWS
    assert _chunk_rows(100) * 100 <= 32_766 and _chunk_rows(100) * 2 * 100 > 32_766
    assert _chunk_rows(40_000) == 1


async def test_statement_texts_stay_few(db: Database) -> None:
    """Sizes are powers of two above 16 rows, exact below: every batch size from 1 to 1,200 needs at
    most 16 + 6 texts per head (17..512 rows: 32, 64, .., 512)."""
    head = "INSERT INTO t (a, b, c) VALUES  "  # a head of its own: count only this test's texts
    async with db.session() as s:
        for n in range(1, 1201, 7):
            await insert_rows(s, head, 3, "", [("x", n, None)] * n)
    assert len({k for k in sqlite_rows._SQL if k[0] == head}) <= 22


async def test_a_few_rows_are_one_statement(db: Database) -> None:
    head = "INSERT INTO t (a, b, c) VALUES   "
    async with db.session() as s:
        await insert_rows(s, head, 3, "", [("x", 13, None)] * 13)
        await insert_rows(s, head, 3, "", [("x", 40, None)] * 40)  # 32 + 8: powers of two above 16
    assert sorted(k[3] for k in sqlite_rows._SQL if k[0] == head) == [8, 13, 32]
