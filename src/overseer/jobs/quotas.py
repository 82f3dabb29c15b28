"""Per-depth quotas: the pure scheduling policy, and allocation in one transaction (manager-ai-mvp-spec.md
§1.2 A, §2.3; issue 5 items 3 and 4).

Quota model:
- ``limit(workspace, depth)``: the workspace's ``resource_quotas`` row for that depth, else
  ``Settings.default_depth_quota``.
- ``global_cap(depth)``: the row with ``workspace_id`` NULL for that depth (node-wide, every workspace
  together), else no cap.
- An allocation of ``n`` workers at (workspace, depth) fits when ``in_use(workspace, depth) + n <= limit``
  and, with a global cap, ``in_use(*, depth) + n <= cap``. Otherwise 409 ``QUOTA_EXCEEDED`` with
  ``{scope, workspace_id, depth, limit, in_use, requested}``.

Pure part (no I/O; Hypothesis tests it): :class:`QuotaTable`, :class:`Usage`, :func:`check_fit` and
:func:`plan` (which PENDING jobs to start: round-robin across depths so no depth starves another, then
higher ``priority`` first, then oldest, skipping a workspace whose slots at that depth are full).

Transactional part: :func:`allocate` checks and inserts an allocation (and, with ``start=True``, moves the
job PENDING -> RUNNING) in the caller's transaction, after :func:`lock_slot`. On PostgreSQL that is a
transaction-scoped advisory lock per (depth) node-wide and per (workspace, depth), held until commit, so
two schedulers (or two API calls) can never both take the last slot. On SQLite the unit of work must start
with :func:`begin_write` (a write statement first, so the transaction holds SQLite's single write lock
before it reads usage). Lock order in an allocating transaction: quota locks, then the job row, then (at
commit) the event-order lock; nothing takes them in another order.
"""

from __future__ import annotations

import uuid
import zlib
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from overseer.clock import utcnow
from overseer.errors import InvalidStateTransition, QuotaExceeded
from overseer.events import log as event_log
from overseer.jobs import states
from overseer.jobs.models import Job, JobStatus, ResourceAllocation, ResourceQuota

QUOTA_LOCK_CLASS = 0x0B5
"""First key of the two-key advisory locks taken by allocations (the second is a hash of the slot)."""

# ------------------------------------------------------------------------------------------ pure policy


@dataclass(frozen=True, slots=True)
class QuotaTable:
    """Limits: ``workspace[(ws, depth)]`` overrides ``default``; ``global_caps[depth]`` caps every workspace."""

    default: int
    workspace: Mapping[tuple[Hashable, int], int] = field(default_factory=dict)
    global_caps: Mapping[int, int] = field(default_factory=dict)

    def limit(self, workspace_id: Hashable, depth: int) -> int:
        return self.workspace.get((workspace_id, depth), self.default)

    def source(self, workspace_id: Hashable, depth: int) -> str:
        return "workspace" if (workspace_id, depth) in self.workspace else "default"

    def global_cap(self, depth: int) -> int | None:
        return self.global_caps.get(depth)


@dataclass(slots=True)
class Usage:
    """Workers in use: per (workspace, depth) and per depth (all workspaces)."""

    by_slot: dict[tuple[Hashable, int], int] = field(default_factory=lambda: defaultdict(int))
    by_depth: dict[int, int] = field(default_factory=lambda: defaultdict(int))

    @classmethod
    def of(cls, rows: Iterable[tuple[Hashable, int, int]]) -> Usage:
        """Build from ``(workspace_id, depth, workers)`` rows."""
        usage = cls()
        for ws, depth, n in rows:
            usage.add(ws, depth, n)
        return usage

    def add(self, workspace_id: Hashable, depth: int, n: int) -> None:
        self.by_slot[(workspace_id, depth)] += n
        self.by_depth[depth] += n

    def in_use(self, workspace_id: Hashable, depth: int) -> int:
        return self.by_slot.get((workspace_id, depth), 0)

    def copy(self) -> Usage:
        out = Usage()
        out.by_slot.update(self.by_slot)
        out.by_depth.update(self.by_depth)
        return out


@dataclass(frozen=True, slots=True)
class Denial:
    """Why an allocation does not fit: the 409 ``QUOTA_EXCEEDED`` details."""

    scope: str  # "workspace" | "global"
    workspace_id: Hashable
    depth: int
    limit: int
    in_use: int
    requested: int

    def details(self) -> dict[str, Any]:
        return {"scope": self.scope, "workspace_id": str(self.workspace_id) if self.scope == "workspace" else None,
                "depth": self.depth, "limit": self.limit, "in_use": self.in_use, "requested": self.requested}

    def message(self) -> str:
        where = "in this workspace" if self.scope == "workspace" else "on this node"
        return (f"Quota exceeded at depth {self.depth} {where}: {self.in_use} of {self.limit} workers in use, "
                f"{self.requested} requested")


def check_fit(quotas: QuotaTable, usage: Usage, workspace_id: Hashable, depth: int, n: int) -> Denial | None:
    """None when ``n`` more workers fit at (workspace, depth); else the first limit they break."""
    limit = quotas.limit(workspace_id, depth)
    in_use = usage.in_use(workspace_id, depth)
    if in_use + n > limit:
        return Denial("workspace", workspace_id, depth, limit, in_use, n)
    cap = quotas.global_cap(depth)
    if cap is not None and usage.by_depth.get(depth, 0) + n > cap:
        return Denial("global", workspace_id, depth, cap, usage.by_depth.get(depth, 0), n)
    return None


@dataclass(frozen=True, slots=True)
class Candidate:
    """A PENDING job whose dependencies are COMPLETED (only those are offered to :func:`plan`)."""

    job_id: Hashable
    workspace_id: Hashable
    depth: int
    priority: int = 0
    created_at: Any = 0
    """Anything ordered (a datetime, a sequence number): older first."""
    worker_count: int = 1


@dataclass(slots=True)
class Plan:
    start: list[Candidate]
    """In start order."""
    blocked: dict[Hashable, Denial]
    """Candidates examined that do not fit, with the limit they break."""
    next_depth: int
    """Where the next pass's round-robin begins (pass it back as ``start_depth``)."""


def plan(candidates: Sequence[Candidate], usage: Usage, quotas: QuotaTable, *, max_starts: int | None = None,
         start_depth: int = 0) -> Plan:
    """Choose which ready jobs to start now, without exceeding any quota.

    Round-robin across depths (one start per depth per round, beginning at ``start_depth``), so a busy
    depth never starves another; within a depth, higher ``priority`` first, then oldest. A candidate that
    does not fit is skipped (and reported in ``blocked``) and the next one in its depth is tried, so a
    full workspace does not block another workspace's jobs at the same depth. Pure: ``usage`` is not changed.
    """
    queues: dict[int, list[Candidate]] = defaultdict(list)
    for c in candidates:
        queues[c.depth].append(c)
    for q in queues.values():
        q.sort(key=lambda c: (-c.priority, c.created_at, str(c.job_id)))
    depths = sorted(queues)
    if not depths:
        return Plan([], {}, start_depth)
    first = next((i for i, d in enumerate(depths) if d >= start_depth), 0)
    order = depths[first:] + depths[:first]
    pos = dict.fromkeys(depths, 0)
    full: set[tuple[Hashable, int]] = set()
    sim = usage.copy()
    started: list[Candidate] = []
    blocked: dict[Hashable, Denial] = {}
    active = list(order)
    last_depth = start_depth
    while active and (max_starts is None or len(started) < max_starts):
        still: list[int] = []
        for depth in active:
            if max_starts is not None and len(started) >= max_starts:
                still.append(depth)
                continue
            q = queues[depth]
            took = False
            while pos[depth] < len(q):
                c = q[pos[depth]]
                pos[depth] += 1
                if (c.workspace_id, depth) in full:
                    blocked[c.job_id] = blocked_for(quotas, sim, c)
                    continue
                denial = check_fit(quotas, sim, c.workspace_id, depth, c.worker_count)
                if denial is None:
                    sim.add(c.workspace_id, depth, c.worker_count)
                    started.append(c)
                    last_depth = depth
                    took = True
                    break
                blocked[c.job_id] = denial
                if denial.scope == "global" and sim.by_depth.get(depth, 0) >= denial.limit:
                    for rest in q[pos[depth]:]:  # the whole depth is full on this node
                        blocked[rest.job_id] = denial
                    pos[depth] = len(q)
                elif denial.in_use >= denial.limit:
                    full.add((c.workspace_id, depth))
            if took and pos[depth] < len(q):
                still.append(depth)
        active = still
    if max_starts is not None and len(started) >= max_starts:
        nxt = depths[(depths.index(last_depth) + 1) % len(depths)] if last_depth in depths else start_depth
    else:
        nxt = start_depth
    return Plan(started, blocked, nxt)


def blocked_for(quotas: QuotaTable, usage: Usage, c: Candidate) -> Denial:
    return check_fit(quotas, usage, c.workspace_id, c.depth, c.worker_count) or Denial(
        "workspace", c.workspace_id, c.depth, quotas.limit(c.workspace_id, c.depth),
        usage.in_use(c.workspace_id, c.depth), c.worker_count)


# ------------------------------------------------------------------------------------------ database


async def load_quotas(session: AsyncSession, *, default: int) -> QuotaTable:
    """Every quota row (small: at most workspaces x depths + depths)."""
    ws: dict[tuple[Hashable, int], int] = {}
    caps: dict[int, int] = {}
    for q in (await session.execute(select(ResourceQuota))).scalars():
        if q.workspace_id is None:
            caps[q.depth] = q.max_workers
        else:
            ws[(q.workspace_id, q.depth)] = q.max_workers
    return QuotaTable(default, ws, caps)


async def load_usage(session: AsyncSession, *, workspace_ids: Iterable[uuid.UUID] | None = None) -> Usage:
    """Open allocations summed per (workspace, depth)."""
    stmt = (select(ResourceAllocation.workspace_id, ResourceAllocation.depth,
                   func.sum(ResourceAllocation.worker_count))
            .where(ResourceAllocation.released_at.is_(None))
            .group_by(ResourceAllocation.workspace_id, ResourceAllocation.depth))
    if workspace_ids is not None:
        stmt = stmt.where(ResourceAllocation.workspace_id.in_(list(workspace_ids)))
    return Usage.of((w, int(d), int(n or 0)) for w, d, n in (await session.execute(stmt)).all())


def _slot_key(workspace_id: uuid.UUID | None, depth: int) -> int:
    raw = f"{workspace_id or '*'}:{depth}".encode()
    return zlib.crc32(raw) - 2**31  # a signed int4


async def begin_write(session: AsyncSession) -> None:
    """On SQLite, make this transaction the writer now (its first statement must be this one).

    SQLite has one writer; a transaction that reads usage before it writes could otherwise be refused
    the write lock later (``SQLITE_BUSY_SNAPSHOT``) instead of waiting for it. A no-op UPDATE takes the
    write lock (waiting up to the busy timeout). A no-op on PostgreSQL (see :func:`lock_slot`).
    """
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(text("UPDATE resource_quotas SET max_workers = max_workers WHERE 1 = 0"))


async def lock_slot(session: AsyncSession, workspace_id: uuid.UUID, depth: int) -> None:
    """Serialize allocations of (depth node-wide, then workspace+depth) until this transaction ends."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for key in (_slot_key(None, depth), _slot_key(workspace_id, depth)):
        await session.execute(text("SELECT pg_advisory_xact_lock(:c, :k)"), {"c": QUOTA_LOCK_CLASS, "k": key})


async def slot_usage(session: AsyncSession, workspace_id: uuid.UUID, depth: int) -> Usage:
    """Usage of (workspace, depth) and of the depth node-wide (read after :func:`lock_slot`)."""
    base = select(func.coalesce(func.sum(ResourceAllocation.worker_count), 0)).where(
        ResourceAllocation.released_at.is_(None), ResourceAllocation.depth == depth)
    ws_n = int((await session.execute(base.where(ResourceAllocation.workspace_id == workspace_id))).scalar_one())
    all_n = int((await session.execute(base)).scalar_one())
    usage = Usage()
    usage.by_slot[(workspace_id, depth)] = ws_n
    usage.by_depth[depth] = all_n
    return usage


async def slot_quotas(session: AsyncSession, workspace_id: uuid.UUID, depth: int, *, default: int) -> QuotaTable:
    rows = (await session.execute(select(ResourceQuota).where(
        ResourceQuota.depth == depth,
        (ResourceQuota.workspace_id == workspace_id) | ResourceQuota.workspace_id.is_(None)))).scalars().all()
    ws: dict[tuple[Hashable, int], int] = {(q.workspace_id, q.depth): q.max_workers for q in rows
                                           if q.workspace_id is not None}
    caps = {q.depth: q.max_workers for q in rows if q.workspace_id is None}
    return QuotaTable(default, ws, caps)


async def lock_job(session: AsyncSession, job_id: uuid.UUID) -> Job | None:
    """The job row, re-read (and locked FOR UPDATE on PostgreSQL)."""
    stmt = select(Job).where(Job.id == job_id).execution_options(populate_existing=True)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


SlotCache = dict[tuple[uuid.UUID, int], tuple[QuotaTable, Usage]]
"""Quotas and usage of slots already locked in this transaction (batch starts); see :func:`allocate`."""


async def allocate(session: AsyncSession, *, job_id: uuid.UUID, workspace_id: uuid.UUID, depth: int,
                   worker_count: int, default_quota: int, start: bool, reason: str,
                   cache: SlotCache | None = None, flush: bool = True) -> tuple[Job, ResourceAllocation]:
    """Allocate ``worker_count`` workers at the job's depth; with ``start`` also move it PENDING -> RUNNING.

    Both happen in the caller's transaction (commit = both, rollback = neither). The caller began the
    unit of work with :func:`begin_write`. Raises :class:`QuotaExceeded` (409, details from
    :class:`Denial`), :class:`InvalidStateTransition` (409: the job is terminal, or with ``start`` no
    longer PENDING); both are raised before anything is written, so a caller starting several jobs in one
    transaction can skip the job and go on. ``cache`` (one dict per transaction) keeps the quotas and usage
    of slots this transaction already locked, since nobody else can change them until it ends.
    """
    key = (workspace_id, depth)
    if cache is None or key not in cache:
        await lock_slot(session, workspace_id, depth)
    job = await lock_job(session, job_id)
    assert job is not None
    if states.is_terminal(job.status):
        raise InvalidStateTransition("job", job.id, job.status, JobStatus.RUNNING.value)
    if start:
        states.check(job, JobStatus.RUNNING)
    if cache is not None and key in cache:
        quotas, usage = cache[key]
    else:
        quotas = await slot_quotas(session, workspace_id, depth, default=default_quota)
        usage = await slot_usage(session, workspace_id, depth)
        if cache is not None:
            cache[key] = (quotas, usage)
    denial = check_fit(quotas, usage, workspace_id, depth, worker_count)
    if denial is not None:
        raise QuotaExceeded(denial.message(), details={**denial.details(), "job_id": str(job.id)})
    alloc = ResourceAllocation(id=uuid.uuid4(), job_id=job.id, workspace_id=workspace_id, depth=depth,
                               worker_count=worker_count, allocated_at=utcnow())
    session.add(alloc)
    usage.add(workspace_id, depth, worker_count)
    if start:
        job.waiting = None
        await states.transition(session, job, JobStatus.RUNNING, reason=reason, flush=False)
    event_log.defer(session, workspace_id=workspace_id, event_type="resource.allocated", entity_type="job",
                    entity_id=job.id, payload={"allocation_id": alloc.id, "depth": depth,
                                               "worker_count": worker_count,
                                               "in_use": usage.in_use(workspace_id, depth),
                                               "limit": quotas.limit(workspace_id, depth)})
    if flush:
        await session.flush()
    return job, alloc


async def release_job(session: AsyncSession, job: Job, *, reason: str) -> int:
    """Release every open allocation of ``job`` (idempotent); returns how many were open."""
    now = utcnow()
    rows = (await session.execute(
        update(ResourceAllocation)
        .where(ResourceAllocation.job_id == job.id, ResourceAllocation.released_at.is_(None))
        .values(released_at=now, release_reason=reason[:500])
        .returning(ResourceAllocation.id, ResourceAllocation.worker_count))).all()
    if rows:
        event_log.defer(session, workspace_id=job.workspace_id, event_type="resource.released", entity_type="job",
                        entity_id=job.id, payload={"allocation_ids": [r[0] for r in rows], "depth": job.depth,
                                                   "worker_count": sum(int(r[1]) for r in rows), "reason": reason})
    return len(rows)


async def release_allocation(session: AsyncSession, alloc: ResourceAllocation, *, reason: str) -> bool:
    """Release one allocation; False when it was already released (idempotent)."""
    if alloc.released_at is not None:
        return False
    alloc.released_at = utcnow()
    alloc.release_reason = reason[:500]
    event_log.defer(session, workspace_id=alloc.workspace_id, event_type="resource.released", entity_type="job",
                    entity_id=alloc.job_id, payload={"allocation_ids": [alloc.id], "depth": alloc.depth,
                                                     "worker_count": alloc.worker_count, "reason": reason})
    await session.flush()
    return True


__all__ = ["Candidate", "Denial", "Plan", "QuotaTable", "Usage", "allocate", "begin_write", "check_fit",
           "load_quotas", "load_usage", "lock_slot", "plan", "release_allocation", "release_job"]
