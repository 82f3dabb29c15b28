"""Fixtures shared by the supervisor and team API tests: the app with a ManualClock and no runtime,
so heartbeat and health arithmetic need no sleeps."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from asgi_lifespan import LifespanManager

from overseer.app import create_app
from overseer.clock import ManualClock
from overseer.config import Settings
from overseer.db.engine import Database

Headers = dict[str, str]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def served(settings: Settings, clock: ManualClock) -> AsyncIterator[tuple[Any, Any]]:
    """(the FastAPI app, the ASGI app to send requests to) with a ManualClock and no runtime."""
    application = create_app(settings, clock=clock, migrate_on_start=False, start_runtime=False)
    async with LifespanManager(application) as manager:
        yield application, manager.app


@pytest.fixture
def app(served: tuple[Any, Any]) -> Any:
    return served[1]


@pytest.fixture
def db(served: tuple[Any, Any]) -> Database:
    return served[0].state.db  # type: ignore[no-any-return]


@pytest.fixture
def headers(ws_headers: Callable[..., Headers]) -> Headers:
    return ws_headers()
