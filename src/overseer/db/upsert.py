"""Dialect-aware bulk upsert (INSERT ... ON CONFLICT DO UPDATE) for SQLite and PostgreSQL.

On SQLite the rows are encoded here, column by column, exactly as SQLAlchemy's column types bind
them (``Uuid`` -> 32 hex digits, ``UTCDateTime`` -> naive UTC text with microseconds, ``JSON`` -> the
engine's serializer, ``Boolean`` -> 0/1) and sent as multi-row statements on the driver connection
(:func:`overseer.db.sqlite_rows.insert_rows`): SQLAlchemy's per-row bind processing cost more than
the statement (the projections are upserted on every ingest
batch; ``benchmarks/pipeline.py``). A table with a column type not listed falls back to the Core
statement. ``tests/integration/test_upsert.py`` checks both paths store the same bytes.
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Integer, String, Table, Text, Uuid
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from overseer.db.base import UTCDateTime, sqlite_datetime
from overseer.db.sqlite_rows import insert_rows
from overseer.jsoncodec import dumps as _json_dumps

_STATEMENTS: dict[tuple[str, str, tuple[str, ...], tuple[str, ...]], Any] = {}
_SQLITE_PLANS: dict[tuple[str, tuple[str, ...], tuple[str, ...]], Any] = {}
Encoder = Callable[[Any], Any] | None


def _statement(dialect: str, table: Table, cols: tuple[str, ...], key: tuple[str, ...]) -> Any:
    """Build (once per table, columns and dialect) the upsert statement: it sits on the hot path."""
    cache_key = (dialect, table.name, cols, key)
    stmt = _STATEMENTS.get(cache_key)
    if stmt is None:
        ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
        stmt = ins.on_conflict_do_update(index_elements=list(key),
                                         set_={c: ins.excluded[c] for c in cols if c not in key})
        _STATEMENTS[cache_key] = stmt
    return stmt


def _uuid_hex(value: Any) -> str | None:
    if value is None:
        return None
    return value.hex if isinstance(value, uuid.UUID) else uuid.UUID(str(value)).hex


def _utc_text(value: Any) -> str | None:
    return None if value is None else sqlite_datetime(value)


def _json(value: Any) -> str:
    return _json_dumps(value)  # None -> "null", as SQLAlchemy's JSON type (none_as_null=False) stores it


def _bool(value: Any) -> int | None:
    return None if value is None else int(bool(value))


def _sqlite_encoder(column: Any) -> tuple[bool, Encoder]:
    """``(supported, encoder)`` for one column; ``None`` encoder = the value binds as it is."""
    t = column.type
    if isinstance(t, UTCDateTime):
        return True, _utc_text
    if isinstance(t, Uuid):
        return True, _uuid_hex
    if isinstance(t, JSON):
        return True, _json
    if isinstance(t, Boolean):
        return True, _bool
    if isinstance(t, String | Text | Integer | BigInteger):
        return True, None
    return False, None


def _sqlite_plan(table: Table, cols: tuple[str, ...], key: tuple[str, ...]) -> Any:
    """``(sql, encoders)`` for the driver-level SQLite upsert, or False when a column type is not covered."""
    cache_key = (table.name, cols, key)
    plan = _SQLITE_PLANS.get(cache_key)
    if plan is None:
        encoders: list[Encoder] = []
        for c in cols:
            ok, enc = _sqlite_encoder(table.c[c])
            if not ok:
                plan = False
                break
            encoders.append(enc)
        else:
            coded = tuple((i, enc) for i, enc in enumerate(encoders) if enc is not None)
            get = operator.itemgetter(*cols) if len(cols) > 1 else (lambda r, c=cols[0]: (r[c],))
            updates = ", ".join(f'"{c}" = excluded."{c}"' for c in cols if c not in key)
            sql = (f'INSERT INTO "{table.name}" ({", ".join(f"{chr(34)}{c}{chr(34)}" for c in cols)}) VALUES ',
                   len(cols),
                   f' ON CONFLICT ({", ".join(key)}) DO ' + (f"UPDATE SET {updates}" if updates else "NOTHING"))
            plan = (sql, get, coded)
        _SQLITE_PLANS[cache_key] = plan
    return plan


async def upsert(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]], key: Sequence[str]) -> None:
    """Insert ``rows`` into ``table``, updating every non-key column on a conflict on ``key``.

    Every row must have the keys of the first (the column list). Raises what the driver raises
    (e.g. ``IntegrityError`` for a foreign key)."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    cols = tuple(rows[0])
    if dialect == "sqlite":
        plan = _sqlite_plan(table, cols, tuple(key))
        if plan:
            (head, ncols, tail), get, coded = plan
            params: list[Any] = []
            for r in rows:  # the values in column order (in C), then the few columns that need encoding
                values = list(get(r))
                for i, enc in coded:
                    values[i] = enc(values[i])
                params.append(values)
            await insert_rows(session, head, ncols, tail, params)
            return
    await session.execute(_statement(dialect, table, cols, tuple(key)), list(rows))
