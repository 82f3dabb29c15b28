"""Shared helpers for the benchmark scripts: databases, event loops, statistics, machine load.

Benchmarks print figures; they never assert on timing. Each creates its own database (a temp SQLite
file, or ``overseer_bench_<pid>_<n>`` inside the PostgreSQL server of ``OVERSEER_TEST_PG_URL``) and
removes it afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "benchmarks" / "data"
JWT_KEY = "bench-secret-key-0123456789-abcdefghijklmnop"
_counter = itertools.count(1)


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "uptime unavailable"


def machine() -> str:
    return f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cpus, {platform.machine()}"


def cpu_probe() -> float:
    """Milliseconds of thread CPU for a fixed pure-Python loop (1M iterations): this VM's speed at the
    moment (it drifts 2x within minutes; ~110 ms in its fast minutes). Print it beside a figure."""
    import time

    t = time.thread_time()
    x = 0
    for i in range(1_000_000):
        x += i * i % 7
    return (time.thread_time() - t) * 1000


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def percentile(xs: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))
    return s[k]


def run(main: Callable[[], Coroutine[Any, Any, Any]], loop: str = "uvloop") -> Any:
    """Run ``main()`` on uvloop (what ``overseer serve`` gets from uvicorn) or plain asyncio."""
    if loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            print("uvloop not installed; using asyncio", file=sys.stderr)
        else:
            return uvloop.run(main())
    return asyncio.run(main())


def pg_url() -> str | None:
    return os.environ.get("OVERSEER_TEST_PG_URL")


async def _pg_admin(sql: str) -> None:
    from overseer.db.engine import make_engine

    url = pg_url()
    assert url
    admin = make_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await admin.dispose()


async def _upgrade(url: str) -> None:
    """Run the Alembic chain to head on ``url``."""
    from overseer.db import migrate as mig
    from overseer.db.engine import make_engine

    engine = make_engine(url)
    try:
        await mig.upgrade(engine)
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def bench_database(backend: str, *, migrate: bool = True) -> AsyncIterator[str]:
    """Yield the SQLAlchemy URL of a fresh database (migrated to head), dropped afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="overseer-bench-") as tmp:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
            if migrate:
                await _upgrade(url)
            yield url
        return
    base = pg_url()
    if not base:
        raise RuntimeError("OVERSEER_TEST_PG_URL is not set (source /tmp/pgdev.env)")
    name = f"overseer_bench_{os.getpid()}_{next(_counter)}"
    await _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(base).set(database=name).render_as_string(hide_password=False)
        if migrate:
            await _upgrade(url)
        yield url
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def raw_pg_dsn(url: str) -> str:
    """``postgresql+asyncpg://...`` -> a DSN asyncpg.connect accepts."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def sqlite_path(url: str) -> str:
    db = make_url(url).database
    assert db
    return db


def backends(pg: bool) -> list[str]:
    """``["sqlite"]`` plus ``"pg"`` when asked (``--pg``) or, by default, when OVERSEER_TEST_PG_URL is set."""
    out = ["sqlite"]
    if pg and pg_url():
        out.append("pg")
    elif pg:
        print("--pg given but OVERSEER_TEST_PG_URL is not set; PostgreSQL skipped", file=sys.stderr)
    return out


def code_version() -> str:
    """The commit the figures are of, and whether src/ had uncommitted changes."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=REPO, capture_output=True,
                               text=True, check=False).stdout.strip()
    except OSError:
        return "unknown"
    return f"{rev or 'unknown'}{' + uncommitted src/ changes' if dirty else ''}"


def header(title: str, config: dict[str, Any]) -> None:
    print(f"# {title}")
    print(f"# machine: {machine()}")
    print(f"# code: {code_version()}")
    print(f"# load before: {uptime()}")
    for k, v in config.items():
        print(f"# {k}: {v}")
