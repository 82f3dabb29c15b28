"""The bulk event append (``events.log.defer`` + ``flush_deferred``, driver-level on SQLite) against a
real database: rows read back through the ORM exactly as they were appended (ids contiguous and in
order, payload, created_at with microseconds and UTC, workspace uuid), the published outbox matches
the rows, and a batch of two workers' interleaved agent events keeps each worker's order.
Runs on SQLite and, with OVERSEER_TEST_PG_URL, PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from overseer.clock import SystemClock
from overseer.config import Settings
from overseer.db.engine import Database, make_engine
from overseer.events import log as event_log
from overseer.events.bus import EventBus, PublishedEvent
from overseer.events.models import Event
from overseer.runtime.agent import AgentEvent
from overseer.runtime.workers import WorkerManager
from overseer.workers.models import Worker, WorkerStatus
from overseer.workspaces.models import Workspace
from tests.conftest import JWT_KEY


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(make_engine(db_url), EventBus())
    yield database
    await database.dispose()


async def _workspaces(db: Database, n: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(n)]
    async with db.session() as s:
        for i, wid in enumerate(ids):
            s.add(Workspace(id=wid, name=f"log-{wid.hex[:8]}-{i}", root_path=f"/tmp/log-{wid.hex[:8]}"))
    return ids


async def _two_running_workers(db: Database) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID, uuid.UUID]:
    """Two workspaces with a RUNNING codex worker each: ``(ws_a, ws_b, worker_a, worker_b)``."""
    ws_a, ws_b = await _workspaces(db, 2)
    w1, w2 = uuid.uuid4(), uuid.uuid4()
    async with db.session() as s:
        for wid, ws in ((w1, ws_a), (w2, ws_b)):
            s.add(Worker(id=wid, workspace_id=ws, kind="codex", name=f"w-{wid.hex[:6]}",
                         status=WorkerStatus.RUNNING.value, config={}))
    return ws_a, ws_b, w1, w2


def _manager(db: Database, db_url: str, tmp_path: Path, **kwargs: Any) -> WorkerManager:
    settings = Settings(database_url=db_url, data_dir=tmp_path / "data", jwt_secret=JWT_KEY)  # type: ignore[arg-type]
    return WorkerManager(db=db, settings=settings, clock=SystemClock(), **kwargs)


def _published(db: Database) -> list[PublishedEvent]:
    got: list[PublishedEvent] = []
    db.bus.add_listener(got.append)
    return got


async def _rows(db: Database, workspaces: list[uuid.UUID]) -> list[Event]:
    async with db.read_session() as s:
        return list((await s.execute(select(Event).where(Event.workspace_id.in_(workspaces))
                                     .order_by(Event.id))).scalars().all())


PAYLOADS: list[dict[str, Any]] = [
    {"delta": "héllo wörld ✓ \"quoted\" \\ back\nslash", "n": 1, "f": 1.5, "ok": True, "none": None},
    {"nested": {"list": [1, "two", {"three": [3.0]}], "empty": {}}, "emoji": "🚀"},
    {},
    {"big": "x" * 5000, "neg": -12345678901234, "unicode_key_é": "v"},
]


async def test_bulk_appended_events_read_back_identically(db: Database) -> None:
    ws_a, ws_b = await _workspaces(db, 2)
    published = _published(db)
    base = datetime(2026, 11, 21, 12, 30, 45, 123456, tzinfo=UTC)
    stamps = [base, base.replace(microsecond=0), base + timedelta(microseconds=1),
              base.astimezone(timezone(timedelta(hours=2))),  # aware, not UTC: stored as the same instant
              datetime(1999, 1, 2, 3, 4, 5, 999999, tzinfo=UTC)]
    specs = [(ws_a if i % 3 else ws_b, f"type.{i}", "worker", f"entity-{i % 2}", PAYLOADS[i % len(PAYLOADS)],
              stamps[i % len(stamps)]) for i in range(23)]
    async with db.session() as s:
        first = await event_log.append(s, workspace_id=ws_a, event_type="first", entity_type="workspace",
                                       entity_id=ws_a, payload={"k": "appended"}, at=base)
        for ws, type_, ent_type, ent_id, payload, at in specs:
            event_log.defer(s, workspace_id=ws, event_type=type_, entity_type=ent_type, entity_id=ent_id,
                            payload=payload, at=at, convert=False)

    rows = await _rows(db, [ws_a, ws_b])
    assert [r.event_type for r in rows] == ["first", *(t for _, t, *_ in specs)]
    assert rows[0].id == first.id
    ids = [r.id for r in rows]
    assert ids == list(range(ids[0], ids[0] + len(rows))), "ids contiguous, in append order"
    for row, (ws, type_, ent_type, ent_id, payload, at) in zip(rows[1:], specs, strict=True):
        assert row.workspace_id == ws and isinstance(row.workspace_id, uuid.UUID)
        assert (row.event_type, row.entity_type, row.entity_id) == (type_, ent_type, ent_id)
        assert row.payload == payload
        assert row.created_at == at and row.created_at.tzinfo is not None
        assert row.created_at.utcoffset() == timedelta(0)
        assert row.created_at.microsecond == at.microsecond
    # What subscribers were told (after commit) is what was stored, in id order.
    assert [(p.id, p.workspace_id, p.event_type, p.entity_id, p.payload, p.created_at) for p in published] == [
        (r.id, r.workspace_id, r.event_type, r.entity_id, r.payload, r.created_at) for r in rows]


async def test_bulk_rows_are_stored_exactly_as_the_orm_stores_them(db: Database) -> None:
    """The driver-level insert encodes uuid, datetime and JSON text byte for byte like SQLAlchemy's
    column types (a row appended through the ORM path is the reference)."""
    (ws,) = await _workspaces(db, 1)
    stamps = [datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)]
    async with db.session() as s:
        for at in stamps:
            for payload in PAYLOADS:
                await event_log.append(s, workspace_id=ws, event_type="orm", entity_type="worker", entity_id="e",
                                       payload=payload, at=at)
                event_log.defer(s, workspace_id=ws, event_type="bulk", entity_type="worker", entity_id="e",
                                payload=payload, at=at, convert=False)
    async with db.read_session() as s:
        raw = (await s.execute(text(
            "SELECT event_type, CAST(workspace_id AS TEXT), CAST(payload AS TEXT), CAST(created_at AS TEXT) "
            "FROM events ORDER BY id"))).all()
    orm = [tuple(r[1:]) for r in raw if r[0] == "orm"]
    bulk = [tuple(r[1:]) for r in raw if r[0] == "bulk"]
    assert len(orm) == len(bulk) == len(stamps) * len(PAYLOADS)
    assert bulk == orm


async def test_a_naive_datetime_is_refused_and_nothing_is_stored(db: Database) -> None:
    (ws,) = await _workspaces(db, 1)
    with pytest.raises(Exception, match="naive"):
        async with db.session() as s:
            event_log.defer(s, workspace_id=ws, event_type="bad", entity_type="worker", entity_id="e",
                            payload={}, at=datetime(2026, 1, 1))
    assert await _rows(db, [ws]) == []


async def test_a_batch_of_two_workers_interleaved_keeps_each_workers_order(db: Database, db_url: str,
                                                                         tmp_path: Path) -> None:
    ws_a, ws_b, w1, w2 = await _two_running_workers(db)
    published = _published(db)
    manager = _manager(db, db_url, tmp_path)
    t0 = datetime.now(UTC)
    batch: list[tuple[uuid.UUID, AgentEvent]] = []
    for i in range(60):
        wid = (w1, w2)[(i * 7 // 3) % 2]  # irregular interleaving
        kind = ("message.delta", "command.output_delta", "item.started", "status")[i % 4]
        batch.append((wid, AgentEvent(type=kind, thread_id=f"th-{wid.hex[:6]}", turn_id="t1",
                                      payload={"seq": i, "delta": f"d{i}"}, at=t0 + timedelta(microseconds=i))))
    await manager._apply_batch(batch)

    rows = await _rows(db, [ws_a, ws_b])
    assert [(uuid.UUID(r.entity_id), r.payload["seq"]) for r in rows] == [(w, ev.payload["seq"]) for w, ev in batch]
    ids = [r.id for r in rows]
    assert ids == list(range(ids[0], ids[0] + len(batch)))
    for wid, ws in ((w1, ws_a), (w2, ws_b)):
        mine = [r for r in rows if r.entity_id == str(wid)]
        assert [r.payload["seq"] for r in mine] == sorted(r.payload["seq"] for r in mine)
        assert all(r.workspace_id == ws and r.payload["agent_kind"] == "codex" for r in mine)
        assert all(r.payload["thread_id"] == f"th-{wid.hex[:6]}" for r in mine)
        assert [r.created_at for r in mine] == sorted(r.created_at for r in mine)
    assert [p.id for p in published] == ids
    async with db.read_session() as s:
        workers = {w.id: w for w in (await s.execute(select(Worker).where(Worker.id.in_([w1, w2])))).scalars()}
    for wid in (w1, w2):  # the worker row carries its last event's time
        assert workers[wid].last_event_at == max(ev.at for w, ev in batch if w == wid)


async def test_nul_characters_are_stored_as_replacement_characters(app: Any, workspace: dict[str, Any]) -> None:
    """PostgreSQL's JSONB rejects \\u0000 (agents' command output can contain it): it is stored, published and
    replayed as U+FFFD on both databases, and a literal backslash-u0000 text is left alone."""
    from sqlalchemy import select

    from overseer.events import log as event_log
    from overseer.events.models import Event

    ws_id = uuid.UUID(workspace["id"])
    async with app.state.db.session() as s:
        event_log.defer(s, workspace_id=ws_id, event_type="command.output_delta", entity_type="worker",
                        entity_id="w", payload={"delta": "a\x00b", "literal": "\\u0000"}, convert=False)
        published = await event_log.append(s, workspace_id=ws_id, event_type="x", entity_type="worker",
                                           entity_id="w", payload={"nested": ["\x00"]})
    assert published.payload == {"nested": ["\ufffd"]}
    async with app.state.db.read_session() as s:
        rows = {e.event_type: e.payload for e in (await s.execute(select(Event).where(Event.workspace_id == ws_id)))
                .scalars()}
    assert rows["command.output_delta"] == {"delta": "a\ufffdb", "literal": "\\u0000"}
    assert rows["x"] == {"nested": ["\ufffd"]}


async def test_withdrawn_requests_expire_in_place_unless_a_person_answered_first(db: Database, db_url: str,
                                                                                tmp_path: Path) -> None:
    """``serverRequest/resolved`` (approval.resolved) closes a pending approval as expired with its
    ``approval.expired`` event in its place in the log; one recorded and withdrawn in the same batch
    is closed too; one a person answered in a transaction that committed first keeps its decision and
    gets no expiry event (the batch's guarded UPDATE finds it no longer pending)."""
    from overseer.ops.models import ApprovalStatus, PendingApproval

    (ws,) = await _workspaces(db, 1)
    wid = uuid.uuid4()
    async with db.session() as s:
        s.add(Worker(id=wid, workspace_id=ws, kind="codex", name="w-exp", status=WorkerStatus.RUNNING.value,
                     config={}))
    manager = _manager(db, db_url, tmp_path)

    def ev(kind: str, rid: str, **payload: Any) -> tuple[uuid.UUID, AgentEvent]:
        return wid, AgentEvent(type=kind, thread_id="th", turn_id="t1", payload={"request_id": rid, **payload})

    await manager._apply_batch([ev("approval.requested", "r1", command="a"), ev("approval.requested", "r2", command="b")])
    async with db.session() as s:  # a person answers r2 first
        r2 = (await s.execute(select(PendingApproval).where(PendingApproval.request_id == "r2"))).scalar_one()
        r2.status = ApprovalStatus.accepted
    await manager._apply_batch([ev("message.delta", "-", delta="x"), ev("approval.resolved", "r1"),
                                ev("approval.requested", "r3", command="c"), ev("approval.resolved", "r3"),
                                ev("approval.resolved", "r2"), ev("message.delta", "-", delta="y")])

    async with db.read_session() as s:
        status = {a.request_id: a.status for a in (await s.execute(select(PendingApproval))).scalars()}
        log = [(e.event_type, e.payload.get("request_id")) for e in
               (await s.execute(select(Event).where(Event.workspace_id == ws).order_by(Event.id))).scalars()]
    assert status == {"r1": ApprovalStatus.expired, "r2": ApprovalStatus.accepted, "r3": ApprovalStatus.expired}
    assert log[2:] == [("message.delta", "-"), ("approval.resolved", "r1"), ("approval.expired", "r1"),
                       ("approval.requested", "r3"), ("approval.resolved", "r3"), ("approval.expired", "r3"),
                       ("approval.resolved", "r2"), ("message.delta", "-")]


async def test_the_needs_input_feed_reads_the_partial_request_indexes(db: Database) -> None:
    """The type indexes cover request events only (migration 0008); the planner may use a partial index
    only for a query that repeats its WHERE, so a refactor dropping ``REQUEST_EVENTS`` from the feed
    would silently turn "needs my input" into a scan of the whole log. EXPLAINed on each backend (on
    PostgreSQL with sequential scans off: the tables are tiny)."""
    from sqlalchemy import event as sa_event

    from overseer.auth.tokens import Principal
    from overseer.ops import read

    (ws,) = await _workspaces(db, 1)
    captured: list[tuple[str, Any]] = []

    def grab(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        if "FROM events" in statement:
            captured.append((statement, params))

    plans: dict[str, str] = {}
    for label, scope in (("admin", None), ("one workspace", frozenset({ws}))):
        principal = Principal("t", frozenset({"admin"} if scope is None else {"supervisor:read"}), scope)
        sa_event.listen(db.read_engine.sync_engine, "before_cursor_execute", grab)
        try:
            async with db.read_session() as s:
                await read.feed(s, principal=principal, needs_input=True)
        finally:
            sa_event.remove(db.read_engine.sync_engine, "before_cursor_execute", grab)
        assert len(captured) == 2  # one indexed range per request type
        async with db.engine.connect() as conn:
            if db.dialect == "postgresql":
                await conn.exec_driver_sql("SET enable_seqscan = off")
            for statement, params in captured:
                prefix = "EXPLAIN QUERY PLAN " if db.dialect == "sqlite" else "EXPLAIN "
                plan = " | ".join(str(r[-1]) for r in (await conn.exec_driver_sql(prefix + statement, params)).all())
                plans[f"{label}: {statement[-120:]}"] = plan
        captured.clear()
    for where, plan in plans.items():
        assert "request_type_id" in plan, f"{where}\n  plan: {plan}"


async def test_the_ingest_loop_commits_many_small_batches_in_queue_order(db: Database, db_url: str,
                                                                         tmp_path: Path) -> None:
    """The real ingest loop, fed while it runs (as agent readers feed it), with a small ``batch_max``:
    events of two workers, log-only and stateful mixed, land in the log and on the bus exactly in queue
    order, each stored as built (payload, time, workspace), the stored JSON text as ``storable_json``
    renders it."""
    manager = _manager(db, db_url, tmp_path, batch_max=7)
    await manager.start()  # before the workers exist: its restart reconciliation has nothing to do
    ws_a, ws_b, w1, w2 = await _two_running_workers(db)
    published = _published(db)
    t0 = datetime.now(UTC)
    sent: list[tuple[uuid.UUID, AgentEvent]] = []
    kinds = ("message.delta", "status", "token_usage", "item.completed", "turn.started", "message.delta")
    for i in range(120):
        wid = (w1, w2)[(i * 5 // 3) % 2]
        ev = AgentEvent(type=kinds[i % len(kinds)], thread_id=f"th-{wid.hex[:6]}", turn_id=f"t{i // 30}",
                        payload={"seq": i, "delta": f"é{i}\n", "total_tokens": i, "nested": {"n": [i, None]}},
                        at=t0 + timedelta(microseconds=i))
        sent.append((wid, ev))
        manager._queue.put_nowait((wid, ev))
        if i % 11 == 0:
            await asyncio.sleep(0)  # producers and the ingest interleave, as agent readers do
    await manager.flush()
    await manager.stop()

    rows = await _rows(db, [ws_a, ws_b])
    assert [(uuid.UUID(r.entity_id), r.payload["seq"]) for r in rows] == [(w, e.payload["seq"]) for w, e in sent]
    assert [p.id for p in published] == [r.id for r in rows]
    assert manager.stats.batches >= len(sent) // 7
    for r, (wid, ev) in zip(rows, sent, strict=True):
        assert r.payload == {**ev.payload, "thread_id": ev.thread_id, "turn_id": ev.turn_id, "agent_kind": "codex"}
        assert r.created_at == ev.at and r.workspace_id == (ws_a if wid == w1 else ws_b)
    if db.dialect == "sqlite":
        async with db.engine.connect() as conn:
            texts = dict((await conn.exec_driver_sql("SELECT id, payload FROM events")).all())
        assert all(texts[r.id] == event_log.storable_json(r.payload)[0] for r in rows)


async def test_the_ingest_lets_other_tasks_run_between_batches(db: Database, db_url: str, tmp_path: Path) -> None:
    """With a backlog, each batch ends with a turn for the loop's other tasks (agents' readers, HTTP,
    streams): on SQLite the batch itself runs on the loop's thread without a yield (db/inline.py)."""
    manager = _manager(db, db_url, tmp_path, batch_max=5)
    await manager.start()
    _, _, w1, _ = await _two_running_workers(db)
    for i in range(40):  # a backlog of 8 batches, queued before the ingest gets a turn
        manager._queue.put_nowait((w1, AgentEvent(type="message.delta", thread_id="th", turn_id="t",
                                                  payload={"seq": i, "delta": "x"})))
    seen: list[int] = []

    async def observer() -> None:
        while True:
            seen.append(manager.stats.batches)
            await asyncio.sleep(0)

    task = asyncio.create_task(observer())
    await manager.flush()
    task.cancel()
    await manager.stop()
    assert manager.stats.batches == 8
    assert len(set(seen)) >= 8  # it ran between the batches, not only before and after them
