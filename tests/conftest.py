"""Shared fixtures: a real database per backend (SQLite file; PostgreSQL when OVERSEER_TEST_PG_URL
is set), schema built by running the Alembic chain once per xdist worker, tables cleared per test;
the app served through httpx's ASGI transport; JWT helpers.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.engine import make_url

from overseer.app import create_app
from overseer.auth.tokens import create_token
from overseer.config import Settings
from overseer.db import migrate
from overseer.db.engine import make_engine
from overseer.db.models import Base

JWT_KEY = "test-secret-key-0123456789-abcdefghijklmnop"
PG_URL = os.environ.get("OVERSEER_TEST_PG_URL")
BACKENDS = ["sqlite", *(["pg"] if PG_URL else [])]


def _worker_id() -> str:
    """Unique per pytest run and xdist worker, so concurrent runs never share a PostgreSQL database."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID", uuid.uuid4().hex)[:8]
    return f"{run}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"


async def _pg_admin(sql: str) -> None:
    assert PG_URL
    admin = make_engine(PG_URL).execution_options(isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await admin.dispose()


@pytest.fixture(scope="session")
def backend_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One migrated database per backend for this xdist worker (PostgreSQL: dropped at the end)."""
    urls = {"sqlite": f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'overseer.db'}"}
    name = f"overseer_test_{_worker_id()}"
    if PG_URL:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
        urls["pg"] = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    for url in urls.values():
        migrate.upgrade_sync(url)
    yield urls
    if PG_URL:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def clear_tables(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            tables = [t.name for t in Base.metadata.sorted_tables]
            if engine.dialect.name == "postgresql":
                await conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
            else:
                for t in reversed(tables):
                    await conn.execute(text(f"DELETE FROM {t}"))
    finally:
        await engine.dispose()


@pytest.fixture(params=BACKENDS)
async def db_url(request: pytest.FixtureRequest, backend_urls: dict[str, str]) -> str:
    """The URL of a clean, migrated database (each backend in turn)."""
    url = backend_urls[request.param]
    await clear_tables(url)
    return url


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=db_url,
        data_dir=tmp_path / "data",
        jwt_secret=JWT_KEY,  # type: ignore[arg-type]
        supervisor_heartbeat_interval_s=0.05,
        health_tick_s=0.05,
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Any]:
    application = create_app(settings, migrate_on_start=False, start_runtime=False)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        yield c


TokenFactory = Callable[..., str]


@pytest.fixture
def make_token() -> TokenFactory:
    def _make(*scopes: str, workspaces: list[Any] | None = None, ttl: timedelta = timedelta(hours=1),
              key: str = JWT_KEY, sub: str = "tester", extra: dict[str, Any] | None = None) -> str:
        return create_token(key, subject=sub, scopes=scopes, workspace_ids=workspaces or ["*"], ttl=ttl,
                            extra=extra)

    return _make


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def admin_headers(make_token: TokenFactory) -> dict[str, str]:
    return bearer(make_token("admin", workspaces=["*"]))


@pytest.fixture
def workspace_factory(client: httpx.AsyncClient, admin_headers: dict[str, str], tmp_path: Path
                      ) -> Callable[..., Any]:
    async def _make(name: str | None = None) -> dict[str, Any]:
        name = name or f"ws-{uuid.uuid4().hex[:8]}"
        resp = await client.post("/api/v1/workspaces", headers=admin_headers,
                                 json={"name": name, "root_path": str(tmp_path / "workspaces" / name)})
        assert resp.status_code == 201, resp.text
        return resp.json()  # type: ignore[no-any-return]

    return _make


@pytest.fixture
async def workspace(workspace_factory: Callable[..., Any]) -> dict[str, Any]:
    return await workspace_factory()  # type: ignore[no-any-return]


@pytest.fixture
def ws_headers(make_token: TokenFactory, workspace: dict[str, Any]) -> Callable[..., dict[str, str]]:
    """Headers for a token of ``workspace`` with the given scopes (default: all but admin)."""

    def _h(*scopes: str, ws: dict[str, Any] | None = None) -> dict[str, str]:
        scopes = scopes or ("supervisor:read", "supervisor:write", "jobs:read", "jobs:write")
        return bearer(make_token(*scopes, workspaces=[(ws or workspace)["id"]]))

    return _h


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Agent tests exercise agents, not storage: they run on SQLite only, unless marked ``both_dbs``
    (every endpoint is covered on both databases by the integration tests)."""
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_pg = callspec is not None and callspec.params.get("db_url") == "pg"
        if on_pg and item.get_closest_marker("agents") and not item.get_closest_marker("both_dbs"):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(autouse=True)
def _no_leftover_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("OVERSEER_DATABASE_URL", raising=False)
    yield
