"""Dialect-aware bulk upsert (INSERT ... ON CONFLICT DO UPDATE) for SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


async def upsert(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]], key: Sequence[str]) -> None:
    """Insert ``rows`` into ``table``, updating every non-key column on a conflict on ``key``."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    cols = [c for c in rows[0] if c not in key]
    stmt = ins.on_conflict_do_update(index_elements=list(key), set_={c: ins.excluded[c] for c in cols})
    await session.execute(stmt, list(rows))
