"""Dialect-aware bulk upsert (INSERT ... ON CONFLICT DO UPDATE) for SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

_STATEMENTS: dict[tuple[str, str, tuple[str, ...], tuple[str, ...]], Any] = {}


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


async def upsert(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]], key: Sequence[str]) -> None:
    """Insert ``rows`` into ``table``, updating every non-key column on a conflict on ``key``."""
    if not rows:
        return
    stmt = _statement(session.get_bind().dialect.name, table, tuple(rows[0]), tuple(key))
    await session.execute(stmt, list(rows))
