"""The one Alembic chain on both databases: upgrade -> downgrade -> upgrade from an empty database, and
the migrated schema equals the models (no drift)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from overseer.db import migrate
from overseer.db.engine import make_engine
from overseer.db.models import Base
from tests.conftest import PG_URL, _pg_admin


@pytest.fixture(params=["sqlite", *(["pg"] if PG_URL else [])])
async def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    assert PG_URL
    name = f"overseer_migr_{uuid.uuid4().hex[:8]}"
    await _pg_admin(f'CREATE DATABASE "{name}"')
    yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _tables(engine: object) -> set[str]:
    async with engine.connect() as conn:  # type: ignore[attr-defined]
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names())) - {"alembic_version"}


async def test_upgrade_downgrade_upgrade_and_no_drift(empty_url: str) -> None:
    engine = make_engine(empty_url)
    try:
        await migrate.upgrade(engine)
        assert await _tables(engine) == set(Base.metadata.tables)
        await migrate.downgrade(engine, "base")
        assert await _tables(engine) == set()
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata))
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
        assert diff == [], diff
        assert version  # at head
    finally:
        await engine.dispose()
