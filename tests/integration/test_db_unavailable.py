"""A database that is gone gives 503 DATABASE_UNAVAILABLE in the error format, never a 500 with a traceback."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from overseer.app import create_app
from overseer.config import Settings
from tests.conftest import JWT_KEY, bearer


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_postgres_gone_is_503(tmp_path: Path, make_token: Any) -> None:
    settings = Settings(database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/none",
                        data_dir=tmp_path, jwt_secret=JWT_KEY)  # type: ignore[arg-type]
    app = create_app(settings, migrate_on_start=False, start_runtime=False)
    async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                       base_url="http://test") as c:
        resp = await c.get("/api/v1/workspaces", headers=bearer(make_token("admin")))
    assert resp.status_code == 503
    body = resp.json()["error"]
    assert body["code"] == "DATABASE_UNAVAILABLE" and "Traceback" not in resp.text


async def test_sqlite_locked_is_503(settings: Settings, make_token: Any, tmp_path: Path) -> None:
    if not settings.resolved_database_url.startswith("sqlite"):
        return
    import sqlite3

    path = settings.resolved_database_url.split("///", 1)[1]
    locked = settings.model_copy(update={"sqlite_busy_timeout_ms": 50})
    app = create_app(locked, migrate_on_start=False, start_runtime=False)
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                           base_url="http://test") as c:
            blocker.execute("BEGIN EXCLUSIVE")
            resp = await c.post("/api/v1/workspaces", headers=bearer(make_token("admin")),
                                json={"name": "w", "root_path": str(tmp_path / "w")})
            blocker.execute("ROLLBACK")
    finally:
        blocker.close()
    assert resp.status_code == 503 and resp.json()["error"]["code"] == "DATABASE_UNAVAILABLE"
