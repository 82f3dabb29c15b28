"""Many rows into SQLite in a few statements, straight through the session's driver connection.

The ingest writes hundreds of rows per transaction (the event log, the projections). Two costs
dominated the plain ``exec_driver_sql(sql, rows)`` (``executemany``) way of doing that, measured with
``benchmarks/pipeline.py``:

* ``executemany`` binds each row with the GIL held and steps it with the GIL released, so the driver
  thread re-takes the GIL once per row; while the event loop is busy with Python (agents' lines being
  read, the next batch being prepared) each re-take waits for the interpreter's switch interval.
  One ``INSERT .. VALUES (..), (..), ..`` statement per chunk of rows binds everything in one go and
  then runs the whole chunk without the GIL.
* SQLAlchemy's ``exec_driver_sql`` costs ~130 us of event-loop CPU per statement (cursor, execute and
  close are three round trips to aiosqlite's thread), against ~20 us for one aiosqlite ``execute``.

Chunks are powers of two (at most :data:`MAX_CHUNK_ROWS` rows and SQLite's 32,766 parameters), and
a remainder of up to :data:`EXACT_ROWS` rows is one statement of its own size, so a table sees at
most ~25 distinct statement texts, which the driver's statement cache (128) keeps compiled.
The statements run in the session's own transaction (the same connection, the driver's implicit
``BEGIN``), so they commit or roll back with it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

MAX_CHUNK_ROWS = 512
"""Largest chunk (a power of two). Larger statements gained nothing measurable and cost compile time."""
EXACT_ROWS = 16
"""Up to this many rows go in one statement of their exact size (a batch's few projection rows: one
round trip, not one per power of two); more are split into powers of two."""
_MAX_PARAMS = 32_766  # SQLITE_MAX_VARIABLE_NUMBER since SQLite 3.32
_DRIVER_KEY = "overseer.sqlite_driver_connection"
_SQL: dict[tuple[str, int, str, int], str] = {}


async def driver_connection(session: AsyncSession) -> Any:
    """The ``aiosqlite.Connection`` under ``session``'s current transaction (cached per connection)."""
    conn = await session.connection()
    cached = session.info.get(_DRIVER_KEY)
    if cached is not None and cached[0] is conn:
        return cached[1]
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    session.info[_DRIVER_KEY] = (conn, driver)
    return driver


def _chunk_rows(ncols: int) -> int:
    size = MAX_CHUNK_ROWS
    while size > 1 and size * ncols > _MAX_PARAMS:
        size //= 2
    return size


async def insert_rows(session: AsyncSession, head: str, ncols: int, tail: str,
                      rows: Sequence[Sequence[Any]]) -> int | None:
    """Run ``head + "(?, ..), (?, ..), .." + tail`` over ``rows`` (sequences of ``ncols`` values already
    encoded for the driver), in chunks; returns the last inserted rowid (``None`` for no rows).

    ``head`` ends with ``VALUES ``; ``tail`` is what follows the values (``""`` or an ``ON CONFLICT``
    clause). The rows of one call are inserted in order, so with one writer (SQLite's write lock is
    held by the transaction from its first write) an insert of ``n`` rows into a rowid table gets the
    contiguous rowids ``last - n + 1 .. last``. Raises what the driver raises (``sqlite3.IntegrityError``
    and the like); the caller's transaction is then to be rolled back, as with any failed statement.
    """
    if not rows:
        return None
    driver = await driver_connection(session)
    biggest = _chunk_rows(ncols)
    n, i, last = len(rows), 0, None
    while i < n:
        left = n - i
        size = left if left <= EXACT_ROWS else min(biggest, 1 << (left.bit_length() - 1))
        key = (head, ncols, tail, size)
        sql = _SQL.get(key)
        if sql is None:
            one = "(" + ", ".join("?" * ncols) + ")"
            sql = _SQL[key] = head + ", ".join([one] * size) + tail
        cursor = await driver.execute(sql, tuple(itertools.chain.from_iterable(rows[i:i + size])))
        last = cursor.lastrowid
        i += size
    return last
