"""What-if patches for ``pipeline.py --what-if``: candidate src/ changes, measured without editing src/.

They monkeypatch the running process only, to estimate the gain of a change the lead may make in
``src/``. Figures printed with a what-if are NOT the shipped code path.

* ``sqlite-returning``: ``events.log.flush_deferred`` without ``sort_by_parameter_order=True``. On
  SQLite SQLAlchemy cannot batch an ordered ``INSERT .. RETURNING`` (no sentinel column), so today it
  runs ONE statement PER EVENT. One multi-row INSERT assigns increasing rowids in VALUES order, so
  sorting the returned ids restores the pairing. (PostgreSQL is unchanged: it batches already.)
* ``sqlite-driver-insert``: ``flush_deferred`` on SQLite as ONE driver-level ``executemany`` of
  pre-serialized tuples (uuid hex, ``json.dumps`` payload, naive-UTC text timestamp: exactly what the
  column types would bind), then ``SELECT last_insert_rowid()``: the write lock is held by then and
  rowids are max+1 per row, so the ids are the contiguous range ending there. Skips SQLAlchemy's
  per-row bind processing and insertmanyvalues compilation.
* ``upsert-cache``: ``db.upsert.upsert`` builds ``insert().on_conflict_do_update(set_={c: excluded[c]})``
  once per (dialect, table, key, columns) and reuses it; today every call rebuilds the statement and
  its ``excluded`` alias column collection and recomputes the cache key (4 upserts per ingest batch).
* ``expire-index``: ``runtime.workers._expire_requests`` skips the database when the manager has no
  possibly-open approval/question for the worker (an in-memory superset, filled by
  ``_record_approval``/``_record_question``, entries dropped once a query found them closed); rows
  recorded in the same batch (still in ``session.new``) are closed in memory (no flush, no UPDATE);
  the rest with one ``UPDATE .. RETURNING`` per table instead of flush + SELECT + ORM update.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncSession

AVAILABLE = ("sqlite-returning", "sqlite-driver-insert", "expire-index", "upsert-cache")


def apply(names: list[str]) -> None:
    for name in names:
        if name == "sqlite-returning":
            _sqlite_returning()
        elif name == "sqlite-driver-insert":
            _sqlite_driver_insert()
        elif name == "expire-index":
            _expire_index()
        elif name == "upsert-cache":
            _upsert_cache()
        elif name:
            raise SystemExit(f"unknown what-if {name!r}; choose from {AVAILABLE}")


def _sqlite_returning() -> None:
    from overseer.db.engine import OUTBOX_KEY
    from overseer.events import log
    from overseer.events.bus import PublishedEvent
    from overseer.events.models import Event

    original = log.flush_deferred

    async def flush_deferred(session: AsyncSession) -> list[PublishedEvent]:
        if session.get_bind().dialect.name != "sqlite":
            return await original(session)
        rows = session.info.pop(log.DEFERRED_KEY, None)
        if not rows:
            return []
        await log._lock_event_order(session)
        result = await session.execute(insert(Event).returning(Event.id), rows)
        ids = sorted(int(i) for i in result.scalars().all())
        published = [PublishedEvent(i, r["workspace_id"], r["event_type"], r["entity_type"], r["entity_id"],
                                    r["payload"], r["created_at"]) for i, r in zip(ids, rows, strict=True)]
        session.info.setdefault(OUTBOX_KEY, []).extend(published)
        return published

    log.flush_deferred = flush_deferred  # engine.py imports it at call time


def _sqlite_driver_insert() -> None:
    import json
    from datetime import UTC

    from overseer.db.engine import OUTBOX_KEY
    from overseer.events import log
    from overseer.events.bus import PublishedEvent

    original = log.flush_deferred
    sql = ("INSERT INTO events (workspace_id, event_type, entity_type, entity_id, payload, created_at)"
           " VALUES (?, ?, ?, ?, ?, ?)")
    dumps = json.dumps

    async def flush_deferred(session: AsyncSession) -> list[PublishedEvent]:
        if session.get_bind().dialect.name != "sqlite":
            return await original(session)
        rows = session.info.pop(log.DEFERRED_KEY, None)
        if not rows:
            return []
        params = [(r["workspace_id"].hex, r["event_type"], r["entity_type"], r["entity_id"], dumps(r["payload"]),
                   r["created_at"].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")) for r in rows]
        conn = await session.connection()
        await conn.exec_driver_sql(sql, params)
        last = int((await conn.exec_driver_sql("SELECT last_insert_rowid()")).scalar_one())
        first = last - len(rows) + 1
        published = [PublishedEvent(first + k, r["workspace_id"], r["event_type"], r["entity_type"], r["entity_id"],
                                    r["payload"], r["created_at"]) for k, r in enumerate(rows)]
        session.info.setdefault(OUTBOX_KEY, []).extend(published)
        return published

    log.flush_deferred = flush_deferred


def _expire_index() -> None:
    from overseer.events import log as event_log
    from overseer.ops.models import ApprovalStatus, OpenQuestion, PendingApproval, QuestionStatus
    from overseer.runtime import workers as W

    # worker id -> {(table, request_id, turn_id)} that may still be open (a superset)
    maybe_open: dict[uuid.UUID, set[tuple[str, str, str | None]]] = defaultdict(set)
    rec_a, rec_q = W._record_approval, W._record_question

    async def record_approval(session: AsyncSession, worker: Any, ev: Any) -> uuid.UUID:
        maybe_open[worker.id].add(("a", str(ev.payload.get("request_id")), ev.turn_id))
        return await rec_a(session, worker, ev)

    async def record_question(session: AsyncSession, worker: Any, ev: Any) -> uuid.UUID:
        maybe_open[worker.id].add(("q", str(ev.payload.get("request_id")), ev.turn_id))
        return await rec_q(session, worker, ev)

    async def expire_requests(session: AsyncSession, worker: Any, *, reason: str, turn_id: str | None = None,
                              request_id: str | None = None) -> None:
        entries = maybe_open.get(worker.id)
        if not entries:
            return
        hit = {e for e in entries if (turn_id is None or e[2] == turn_id)
               and (request_id is None or e[1] == request_id)}
        if not hit:
            return
        entries -= hit
        # Rows recorded in this same batch are still pending in the session: close them in memory
        # (their INSERT then carries the final status; no flush, no UPDATE).
        for obj in list(session.new):
            if isinstance(obj, PendingApproval | OpenQuestion) and obj.worker_id == worker.id \
                    and obj.status in (None, ApprovalStatus.pending, QuestionStatus.open) \
                    and (turn_id is None or obj.turn_id == turn_id) \
                    and (request_id is None or obj.request_id == request_id):
                is_a = isinstance(obj, PendingApproval)
                obj.status = ApprovalStatus.expired if is_a else QuestionStatus.expired
                hit.discard(("a" if is_a else "q", obj.request_id, obj.turn_id))
                event_log.defer(session, workspace_id=worker.workspace_id,
                                event_type="approval.expired" if is_a else "question.expired",
                                entity_type="approval" if is_a else "question", entity_id=obj.id,
                                payload={"worker_id": str(worker.id), "reason": reason,
                                         "request_id": obj.request_id})
        for table, model, open_status, etype, etable in (
            ("a", PendingApproval, ApprovalStatus.pending, "approval.expired", "approval"),
            ("q", OpenQuestion, QuestionStatus.open, "question.expired", "question"),
        ):
            if not any(e[0] == table for e in hit):
                continue
            stmt = update(model).where(model.worker_id == worker.id, model.status == open_status)
            if turn_id is not None:
                stmt = stmt.where(model.turn_id == turn_id)
            if request_id is not None:
                stmt = stmt.where(model.request_id == request_id)
            stmt = stmt.values(status=ApprovalStatus.expired if table == "a" else QuestionStatus.expired)
            rows = (await session.execute(stmt.returning(model.id, model.request_id),
                                          execution_options={"synchronize_session": False})).all()
            for row_id, req in rows:
                event_log.defer(session, workspace_id=worker.workspace_id, event_type=etype, entity_type=etable,
                                entity_id=row_id, payload={"worker_id": str(worker.id), "reason": reason,
                                                           "request_id": req})

    W._record_approval = record_approval
    W._record_question = record_question
    W._expire_requests = expire_requests


def _upsert_cache() -> None:
    from collections.abc import Sequence

    from sqlalchemy import Table
    from sqlalchemy.dialects import postgresql, sqlite

    from overseer.db import upsert as U
    from overseer.ops import pipeline as OP

    cache: dict[tuple[Any, ...], Any] = {}

    async def upsert(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]], key: Sequence[str]) -> None:
        if not rows:
            return
        dialect = session.get_bind().dialect.name
        cols = tuple(c for c in rows[0] if c not in key)
        ck = (dialect, table.name, tuple(key), cols)
        stmt = cache.get(ck)
        if stmt is None:
            ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
            stmt = cache[ck] = ins.on_conflict_do_update(index_elements=list(key),
                                                         set_={c: ins.excluded[c] for c in cols})
        await session.execute(stmt, list(rows))

    U.upsert = upsert
    OP.upsert = upsert
