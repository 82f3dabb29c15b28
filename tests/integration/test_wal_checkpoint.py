"""``db.checkpoint.WalCheckpointer`` on a real SQLite file: commits leave the WAL to it (the writers'
threshold is the backstop), its PASSIVE checkpoints copy every committed frame while writers go on,
the data is intact when reopened, and it is a no-op where it does not apply."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from overseer.app import create_app
from overseer.config import Settings
from overseer.db.checkpoint import BACKSTOP_PAGES, WalCheckpointer
from overseer.db.engine import Database, make_engine
from overseer.events.bus import EventBus


async def _db(path: Path, *, background: bool) -> Database:
    db = Database(make_engine(f"sqlite+aiosqlite:///{path}", background_checkpoint=background), EventBus())
    async with db.session() as s:
        await s.execute(text("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)"))
    return db


async def _write(db: Database, n: int, start: int = 0) -> None:
    """``n`` rows of ~one page each, 25 per transaction."""
    for k in range(start, start + n, 25):
        async with db.session() as s:
            await s.execute(text("INSERT INTO t (id, v) VALUES (:i, :v)"),
                            [{"i": i, "v": "x" * 3000} for i in range(k, min(k + 25, start + n))])


def _wal_frames(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return max(0, (wal.stat().st_size - 32) // (4096 + 24)) if wal.exists() else 0


async def test_commits_leave_the_wal_to_the_checkpointer_and_it_copies_every_frame(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    db = await _db(path, background=True)
    try:
        async with db.session() as s:
            assert (await s.execute(text("PRAGMA wal_autocheckpoint"))).scalar_one() == BACKSTOP_PAGES
        await _write(db, 1500)  # ~1,500 pages: past SQLite's own 1,000-page threshold
        assert _wal_frames(path) > 1400  # no commit checkpointed (and reset) the WAL: it holds every page
        await db.start_checkpointer(3600)  # the loop will not fire in this test: call it directly
        assert db.checkpointer is not None
        busy, frames, copied = await db.checkpointer.checkpoint()
        assert busy == 0 and frames > 1000 and copied == frames
        await _write(db, 10, start=1500)  # writers go on after a checkpoint
    finally:
        await db.dispose()
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT count(*), min(id), max(id) FROM t").fetchone() == (1510, 0, 1509)


async def test_the_loop_checkpoints_while_writers_write(tmp_path: Path) -> None:
    db = await _db(tmp_path / "l.db", background=True)
    try:
        await db.start_checkpointer(0.02)
        assert db.checkpointer is not None
        await _write(db, 300)
        for _ in range(200):
            if db.checkpointer.stats.runs >= 3 and db.checkpointer.stats.frames_copied >= 300:
                break
            await asyncio.sleep(0.02)
        assert db.checkpointer.stats.runs >= 3 and db.checkpointer.stats.frames_copied >= 300
        assert db.checkpointer.stats.errors == 0
    finally:
        await db.dispose()
    assert db.checkpointer is None


async def test_without_it_sqlite_checkpoints_inside_commits(tmp_path: Path) -> None:
    """The control: the default engine keeps SQLite's 1,000-page threshold (the WAL is reset by commits)."""
    path = tmp_path / "d.db"
    db = await _db(path, background=False)
    try:
        async with db.session() as s:
            assert (await s.execute(text("PRAGMA wal_autocheckpoint"))).scalar_one() == 1000
        await _write(db, 1500)
        assert _wal_frames(path) <= 1100
    finally:
        await db.dispose()


@pytest.mark.parametrize("url", ["sqlite+aiosqlite:///:memory:", "sqlite+aiosqlite://",
                                 "postgresql+asyncpg://u:p@127.0.0.1:1/x"])
def test_it_applies_only_to_sqlite_files(url: str) -> None:
    assert not WalCheckpointer.applies_to(url)
    assert WalCheckpointer.applies_to("sqlite+aiosqlite:////tmp/x.db")


async def test_interval_zero_is_off(tmp_path: Path) -> None:
    db = await _db(tmp_path / "z.db", background=False)
    try:
        await db.start_checkpointer(0)
        assert db.checkpointer is None
    finally:
        await db.dispose()


async def test_the_app_runs_it_on_sqlite(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, jwt_secret="k" * 32, sqlite_checkpoint_interval_s=0.05)  # type: ignore[arg-type]
    app = create_app(settings, start_runtime=False)
    async with app.router.lifespan_context(app):
        checkpointer = app.state.db.checkpointer
        assert isinstance(checkpointer, WalCheckpointer)
        for _ in range(100):
            if checkpointer.stats.runs:
                break
            await asyncio.sleep(0.02)
        assert checkpointer.stats.runs >= 1
    assert app.state.db.checkpointer is None  # stopped with the app
