"""SQLite WAL checkpoints off the writers' path.

In WAL mode a commit appends pages to the ``-wal`` file; a *checkpoint* copies them back into the
database file (and syncs it). By default SQLite runs one inside whichever commit finds the WAL past
1,000 pages (``wal_autocheckpoint``): on this VM that commit took ~11 ms instead of ~1 ms, five times
per 20,000 ingested events (``benchmarks/pipeline.py``), and every writer (the ingest, API requests)
pays it in turn, with the event loop idle meanwhile.

:class:`WalCheckpointer` runs ``PRAGMA wal_checkpoint(PASSIVE)`` every ``interval_s`` from a connection
and thread of its own (aiosqlite's), so the copy and the sync run on another core while the writers
go on: SQLite's PASSIVE mode never waits for readers or writers and copies what it can. The writers'
own threshold is raised to :data:`BACKSTOP_PAGES` (``make_engine(background_checkpoint=True)``) so that
they checkpoint only if this one stops or falls far behind; the WAL then stays bounded either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from dataclasses import dataclass
from typing import Any

import aiosqlite

from overseer.db.base import sqlite_file_path

log = logging.getLogger(__name__)

BACKSTOP_PAGES = 20_000
"""The writers' ``wal_autocheckpoint`` when the background checkpointer runs (~80 MB of WAL at 4 KiB
pages): a writer checkpoints itself only past that."""


@dataclass
class CheckpointStats:
    runs: int = 0
    frames_copied: int = 0
    busy: int = 0
    """Checkpoints that could not copy every frame (a reader still needed them); the next one goes on."""
    errors: int = 0


class WalCheckpointer:
    """Background PASSIVE checkpoints of one file-backed SQLite database (no-op for others)."""

    def __init__(self, url: str, *, interval_s: float = 0.5) -> None:
        self.url = url
        self.interval_s = interval_s
        self.stats = CheckpointStats()
        self._conn: aiosqlite.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def applies_to(url: str) -> bool:
        """True for a SQLite URL naming a file (not ``:memory:``)."""
        return sqlite_file_path(url) is not None

    async def start(self) -> None:
        path = sqlite_file_path(self.url)
        if self._task is not None or self.interval_s <= 0 or path is None:
            return
        self._conn = await aiosqlite.connect(path, isolation_level=None)
        await self._conn.execute("PRAGMA synchronous=NORMAL")
        self._task = asyncio.create_task(self._run(), name="overseer-wal-checkpoint")

    async def checkpoint(self) -> tuple[int, int, int]:
        """One PASSIVE checkpoint now: ``(busy, wal frames, frames copied)`` as SQLite reports them.
        Raises ``sqlite3.Error`` from the driver."""
        assert self._conn is not None, "start() first"
        async with self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)") as cur:
            row: Any = await cur.fetchone()
        busy, frames, copied = (int(v) for v in row)
        self.stats.runs += 1
        self.stats.busy += int(busy != 0 or copied < frames)
        self.stats.frames_copied += max(copied, 0)
        return busy, frames, copied

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.checkpoint()
            except sqlite3.Error as exc:  # e.g. the file went away under a test; keep trying
                self.stats.errors += 1
                log.warning("WAL checkpoint failed: %s", exc)

    async def stop(self) -> None:
        """Stop the loop and close the connection (the writers' backstop remains)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
