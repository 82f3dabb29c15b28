"""``db.upsert.upsert`` against a real database: insert then update on conflict, and on SQLite the
driver-level path stores every column byte for byte as SQLAlchemy's Core statement does, text and storage class (uuid, UTC
datetime with and without microseconds, JSON, booleans, NULLs). Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select, text

from overseer.db import upsert as upsert_mod
from overseer.db.engine import Database, make_engine
from overseer.db.upsert import upsert
from overseer.events.bus import EventBus
from overseer.ops.projections import OpsThread, Signal
from overseer.workspaces.models import Workspace


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(make_engine(db_url), EventBus())
    yield database
    await database.dispose()


def _signal(sid: str, ws: uuid.UUID, **over: Any) -> dict[str, Any]:
    row = {"id": sid, "workspace_id": ws, "kind": "needs_approval", "title": "Approve: rm -rf ünïcode \u0001",
           "context": {"command": "make", "n": [1, 2.5, None, True], "nested": {"é": "\u2028"}},
           "thread_id": "th-1", "worker_id": None, "job_id": None, "is_open": True,
           "raised_at": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
           "first_raised_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "raise_count": 1, "acked_at": None,
           "acked_by": None, "severity": 90, "last_event_id": 7}
    row.update(over)
    return row


async def _workspace(db: Database) -> uuid.UUID:
    ws = uuid.uuid4()
    async with db.session() as s:
        s.add(Workspace(id=ws, name=f"ups-{ws.hex[:8]}", root_path="/tmp/ups"))
    return ws


async def test_insert_then_update_on_conflict(db: Database) -> None:
    ws = await _workspace(db)
    async with db.session() as s:
        await upsert(s, Signal.__table__, [_signal("s1", ws), _signal("s2", ws)], ["id"])  # type: ignore[arg-type]
    later = datetime(2026, 1, 3, tzinfo=timezone(timedelta(hours=2)))
    async with db.session() as s:
        await upsert(s, Signal.__table__, [_signal("s1", ws, is_open=False, raise_count=3, acked_at=later,  # type: ignore[arg-type]
                                                   acked_by="alice", context={"x": 1})], ["id"])
    async with db.read_session() as s:
        rows = {r.id: r for r in (await s.execute(select(Signal).order_by(Signal.id))).scalars()}
    assert set(rows) == {"s1", "s2"}
    s1, s2 = rows["s1"], rows["s2"]
    assert (s1.is_open, s1.raise_count, s1.acked_by, s1.context) == (False, 3, "alice", {"x": 1})
    assert s1.acked_at == later and s1.acked_at.tzinfo is not None
    assert s2.is_open is True and s2.raised_at == datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert s2.context == _signal("s2", ws)["context"] and s2.workspace_id == ws


async def test_a_foreign_key_violation_raises_and_writes_nothing(db: Database) -> None:
    with pytest.raises(Exception, match=r"(?i)foreign key"):
        async with db.session() as s:
            await upsert(s, Signal.__table__, [_signal("orphan", uuid.uuid4())], ["id"])  # type: ignore[arg-type]
    async with db.read_session() as s:
        assert (await s.execute(select(Signal).where(Signal.id == "orphan"))).first() is None


async def test_sqlite_driver_path_stores_what_the_core_statement_stores(db: Database, monkeypatch: Any) -> None:
    if db.dialect != "sqlite":
        pytest.skip("the driver-level path is SQLite's")
    ws = await _workspace(db)
    worker = uuid.uuid4()
    thread = {"thread_id": "t", "workspace_id": ws, "worker_id": worker, "agent_kind": "codex", "status": "running",
              "current_task": "ship ✓", "last_activity_at": datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC),
              "next_step": None, "blockers": [{"ref": "approval:1", "since": "x"}], "active_turn_id": "u",
              "last_message": None, "turn_count": 2, "job_id": None, "last_event_id": 9}

    async def stored(suffix: str) -> list[tuple[Any, ...]]:
        async with db.session() as s:
            await upsert(s, Signal.__table__, [_signal(f"a{suffix}", ws), _signal(f"b{suffix}", ws, is_open=False,  # type: ignore[arg-type]
                                                                                    worker_id="w", acked_at=None)],
                         ["id"])
            await upsert(s, OpsThread.__table__, [{**thread, "thread_id": f"t{suffix}"}], ["thread_id"])  # type: ignore[arg-type]
        async with db.read_session() as s:
            sig_cols = ", ".join(f"CAST({c.name} AS TEXT), typeof({c.name})" for c in Signal.__table__.c if c.name != "id")
            th_cols = ", ".join(f"CAST({c.name} AS TEXT), typeof({c.name})" for c in OpsThread.__table__.c
                               if c.name != "thread_id")
            sigs = (await s.execute(text(f"SELECT {sig_cols} FROM signals WHERE id LIKE '%{suffix}' ORDER BY id")))
            ths = (await s.execute(text(f"SELECT {th_cols} FROM ops_threads WHERE thread_id = 't{suffix}'")))
            return [tuple(r) for r in [*sigs.all(), *ths.all()]]

    driver = await stored("-driver")
    monkeypatch.setattr(upsert_mod, "_sqlite_plan", lambda *a: False)  # force the Core statement
    core = await stored("-core")
    assert len(driver) == 3 and driver == core
