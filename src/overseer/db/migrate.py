"""Run Alembic programmatically: ``upgrade``/``downgrade`` for the CLI, the server and the tests.

The migration scripts ship inside the package (``overseer/db/migrations``), so an installed
Overseer can migrate its own database without an ``alembic.ini``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision``."""
    await _run(engine, lambda cfg: command.upgrade(cfg, revision))


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    """Downgrade the database behind ``engine`` to ``revision``."""
    await _run(engine, lambda cfg: command.downgrade(cfg, revision))


async def _run(engine: AsyncEngine, fn: object) -> None:
    cfg = alembic_config(str(engine.url.render_as_string(hide_password=False)))

    def _sync(conn: object) -> None:
        cfg.attributes["connection"] = conn
        fn(cfg)  # type: ignore[operator]

    async with engine.begin() as conn:
        await conn.run_sync(_sync)


def upgrade_sync(url: str, revision: str = "head") -> None:
    from overseer.db.engine import make_engine

    async def go() -> None:
        engine = make_engine(url)
        try:
            await upgrade(engine, revision)
        finally:
            await engine.dispose()

    asyncio.run(go())
