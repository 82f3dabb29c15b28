"""Job and resource rules (manager-ai-mvp-spec.md §1.2, UC-4, UC-5; issue 5).

Submit (:func:`create`): the workspace must be visible; a parent must exist (404) in the same workspace
(400); depth = parent's + 1 (0 for a root) and must stay below ``max_job_depth`` (400
``MAX_DEPTH_EXCEEDED``); a given ``depth`` that skips a level is 400; ``depends_on`` must be visible (404),
in the same workspace (400) and must not close a wait cycle (400): a job waits for its dependencies to
start, and a parent waits for its children to complete, so depending on an ancestor (or on a job that waits
for one) would never finish. A job token (``Principal.job_id``) may only create children of its own job
(403), and only cancel jobs in its own subtree (403). Jobs are recorded SUBMITTED and moved to PENDING in
the same transaction; the scheduler (``runtime.jobs``) starts them.

Finishing (:func:`finish`): every terminal state releases the job's allocations in the same transaction
(``released_at`` set). A parent whose own turn ended stays RUNNING until every child is terminal
(:func:`settle_parents`): COMPLETED when all completed, else FAILED naming the child.

Access mode of a job's worker: the submit's ``access_mode``, else the parent's, else the workspace setting
``job_access_mode``, else ``default`` (approvals asked of a person).

Every function takes the caller's session and only flushes; events are deferred (see ``jobs.states``).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from overseer.auth.scopes import Scope
from overseer.auth.tokens import Principal, create_token
from overseer.clock import utcnow
from overseer.config import Settings
from overseer.db.repository import get_scoped, paginate, scoped
from overseer.errors import (
    Conflict,
    Forbidden,
    InvalidStateTransition,
    MaxDepthExceeded,
    NotFound,
    ValidationFailed,
)
from overseer.events import log as event_log
from overseer.events.models import Event
from overseer.jobs import quotas, states
from overseer.jobs.models import TERMINAL, Job, JobDependency, JobStatus, ResourceAllocation, ResourceQuota
from overseer.jobs.schemas import JobCreate, QuotaSet
from overseer.workers.models import Worker
from overseer.workspaces import service as workspaces

S = JobStatus
TERMINAL_VALUES = tuple(s.value for s in TERMINAL)
JOB_TOKEN_TTL = timedelta(hours=2)
CYCLE_SEARCH_LIMIT = 20_000


def _field_error(field: str, msg: str) -> dict[str, Any]:
    return {"fields": [{"loc": ["body", field], "msg": msg}]}


# ------------------------------------------------------------------------------------------ submit


async def create(session: AsyncSession, *, principal: Principal, data: JobCreate, settings: Settings) -> Job:
    """Record a job (SUBMITTED -> PENDING). Raises NotFound, ValidationFailed, MaxDepthExceeded, Forbidden,
    Conflict (the parent already finished)."""
    parent_id = data.parent_job_id
    if principal.job_id is not None:
        if parent_id is None:
            parent_id = principal.job_id
        elif parent_id != principal.job_id:
            raise Forbidden("A job's token may only create children of its own job",
                            details={"job_id": str(principal.job_id), "parent_job_id": str(parent_id)})
    parent: Job | None = None
    if parent_id is not None:
        parent = await get_scoped(session, Job, parent_id, principal, entity="job")
    workspace_id = data.workspace_id or (parent.workspace_id if parent else None)
    if workspace_id is None:
        workspace_id = principal.default_workspace_id
        if workspace_id is None:
            raise ValidationFailed("workspace_id is required for a token that spans several workspaces",
                                   details=_field_error("workspace_id", "required"))
    ws = await workspaces.get(session, principal=principal, workspace_id=workspace_id)
    if parent is not None and parent.workspace_id != ws.id:
        raise ValidationFailed("A child job must be in its parent's workspace",
                               details={**_field_error("parent_job_id", "parent is in another workspace"),
                                        "parent_workspace_id": str(parent.workspace_id)})
    if parent is not None and states.is_terminal(parent.status):
        raise Conflict(f"Parent job {parent.id} is {parent.status}; it can have no new children",
                       details={"parent_job_id": str(parent.id), "parent_status": parent.status})
    expected = parent.depth + 1 if parent is not None else 0
    depth = data.depth if data.depth is not None else expected
    if max(depth, expected) >= settings.max_job_depth:
        raise MaxDepthExceeded(
            f"Depth {max(depth, expected)} is not allowed: jobs go from depth 0 to {settings.max_job_depth - 1}",
            details={"depth": max(depth, expected), "max_depth": settings.max_job_depth,
                     "parent_job_id": str(parent.id) if parent else None})
    if depth != expected:
        raise ValidationFailed(
            f"depth must be {expected} ({'the parent depth + 1' if parent else 'a root job'}), not {depth}",
            details={**_field_error("depth", f"expected {expected}"), "expected": expected})
    deps = await _dependencies(session, principal=principal, workspace_id=ws.id, ids=data.depends_on)
    if parent is not None and deps:
        await _check_no_cycle(session, parent_id=parent.id, depends_on=[d.id for d in deps])
    worker_id = data.worker_id
    if worker_id is not None:
        worker = await get_scoped(session, Worker, worker_id, principal, entity="worker")
        if worker.workspace_id != ws.id:
            raise ValidationFailed("worker_id names a worker in another workspace",
                                   details=_field_error("worker_id", "worker is in another workspace"))
    kind = data.agent_kind or (parent.agent_kind if parent else "codex")
    mode = data.access_mode or (parent.access_mode if parent else None) or \
        str((ws.settings or {}).get("job_access_mode") or "default")
    if mode not in ("read-only", "default", "full-access"):
        mode = "default"
    job = Job(id=uuid.uuid4(), workspace_id=ws.id, parent_job_id=parent.id if parent else None, depth=depth,
              status=S.SUBMITTED.value, prompt=data.prompt, priority=data.priority, agent_kind=kind,
              access_mode=mode, model=data.model, worker_id=worker_id,
              pinned_worker=worker_id is not None or data.thread_id is not None, thread_id=data.thread_id,
              created_by=principal.subject)
    session.add(job)
    await session.flush()
    for dep in deps:
        session.add(JobDependency(job_id=job.id, depends_on_id=dep.id, workspace_id=ws.id))
    event_log.defer(session, workspace_id=ws.id, event_type="job.submitted", entity_type="job", entity_id=job.id,
                    payload={"depth": depth, "parent_job_id": job.parent_job_id, "prompt": data.prompt[:300],
                             "priority": data.priority, "agent_kind": kind, "depends_on": [d.id for d in deps],
                             "actor": principal.subject})
    await states.transition(session, job, S.PENDING, reason=f"submitted by {principal.subject}")
    return job


async def _dependencies(session: AsyncSession, *, principal: Principal, workspace_id: uuid.UUID,
                        ids: Iterable[uuid.UUID]) -> list[Job]:
    out: list[Job] = []
    for dep_id in dict.fromkeys(ids):
        dep = await get_scoped(session, Job, dep_id, principal, entity="job")
        if dep.workspace_id != workspace_id:
            raise ValidationFailed("A job can only depend on jobs in its own workspace",
                                   details={**_field_error("depends_on", "dependency is in another workspace"),
                                            "job_id": str(dep_id)})
        out.append(dep)
    return out


async def _check_no_cycle(session: AsyncSession, *, parent_id: uuid.UUID, depends_on: list[uuid.UUID]) -> None:
    """400 when the new child of ``parent_id`` would wait (through dependencies and children) for its parent.

    Edges "X waits for Y": X depends on Y; X is Y's parent (a parent completes after its children). The new
    job's parent waits for the new job, so the submit closes a cycle iff ``parent_id`` is reachable from a
    dependency.
    """
    seen: set[uuid.UUID] = set()
    frontier = list(depends_on)
    while frontier:
        if parent_id in frontier:
            raise ValidationFailed("depends_on would create a cycle: the job would wait for its own ancestor",
                                   details=_field_error("depends_on", "cycle through an ancestor"))
        seen.update(frontier)
        if len(seen) > CYCLE_SEARCH_LIMIT:
            raise ValidationFailed("depends_on graph too large to check", details=_field_error("depends_on", "too large"))
        live = select(Job.id).where(Job.status.not_in(TERMINAL_VALUES))
        deps = select(JobDependency.depends_on_id).where(JobDependency.job_id.in_(frontier),
                                                         JobDependency.job_id.in_(live))
        kids = select(Job.id).where(Job.parent_job_id.in_(frontier), Job.parent_job_id.in_(live))
        nxt = set((await session.execute(deps)).scalars()) | set((await session.execute(kids)).scalars())
        frontier = [j for j in nxt if j not in seen]


def job_token(key: str, job: Job, *, issuer: str = "overseer", ttl: timedelta = JOB_TOKEN_TTL) -> str:
    """The short-lived JWT handed to a job's agent: its workspace, jobs:read + jobs:write, claim ``job_id``."""
    return create_token(key, subject=f"job:{job.id}", scopes=[Scope.jobs_read.value, Scope.jobs_write.value],
                        workspace_ids=[job.workspace_id], ttl=ttl, issuer=issuer, extra={"job_id": str(job.id)})


# ------------------------------------------------------------------------------------------ reads


async def get(session: AsyncSession, *, principal: Principal, job_id: uuid.UUID) -> Job:
    return await get_scoped(session, Job, job_id, principal, entity="job")


async def list_(session: AsyncSession, *, principal: Principal, workspace_id: uuid.UUID | None = None,
                status: str | None = None, parent_job_id: uuid.UUID | None = None, depth: int | None = None,
                roots: bool = False, limit: int = 50, offset: int = 0) -> tuple[list[Job], int]:
    stmt = scoped(select(Job), Job, principal).order_by(Job.created_at, Job.id)
    if workspace_id:
        stmt = stmt.where(Job.workspace_id == workspace_id)
    if status:
        stmt = stmt.where(Job.status == status.upper())
    if parent_job_id:
        stmt = stmt.where(Job.parent_job_id == parent_job_id)
    if roots:
        stmt = stmt.where(Job.parent_job_id.is_(None))
    if depth is not None:
        stmt = stmt.where(Job.depth == depth)
    return await paginate(session, stmt, limit=limit, offset=offset)


async def dependencies_of(session: AsyncSession, job_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[uuid.UUID]]:
    out: dict[uuid.UUID, list[uuid.UUID]] = {}
    if not job_ids:
        return out
    for jid, dep in (await session.execute(select(JobDependency.job_id, JobDependency.depends_on_id)
                                           .where(JobDependency.job_id.in_(job_ids)))).all():
        out.setdefault(jid, []).append(dep)
    return out


async def subtree(session: AsyncSession, root_id: uuid.UUID, *, include_root: bool = True) -> list[Job]:
    """The job and all its descendants (recursive query), parents before children."""
    tree = select(Job.id, Job.depth).where(Job.id == root_id).cte("tree", recursive=True)
    tree = tree.union_all(select(Job.id, Job.depth).where(Job.parent_job_id == tree.c.id))
    rows = (await session.execute(select(Job).join(tree, Job.id == tree.c.id)
                                  .order_by(Job.depth, Job.created_at))).scalars().all()
    return [j for j in rows if include_root or j.id != root_id]


async def is_in_subtree(session: AsyncSession, *, root_id: uuid.UUID, job_id: uuid.UUID) -> bool:
    return any(j.id == job_id for j in await subtree(session, root_id))


async def detail(session: AsyncSession, *, job: Job) -> dict[str, Any]:
    """Children, dependencies, allocations, turns (from the worker's events) and transitions of ``job``."""
    children = (await session.execute(select(Job).where(Job.parent_job_id == job.id)
                                      .order_by(Job.created_at))).scalars().all()
    dep_ids = (await dependencies_of(session, [job.id])).get(job.id, [])
    deps = (await session.execute(select(Job).where(Job.id.in_(dep_ids)))).scalars().all() if dep_ids else []
    allocations = (await session.execute(select(ResourceAllocation).where(ResourceAllocation.job_id == job.id)
                                         .order_by(ResourceAllocation.allocated_at))).scalars().all()
    turns: list[dict[str, Any]] = []
    if job.worker_id is not None and job.started_at is not None:
        evs = (await session.execute(
            select(Event).where(Event.entity_type == "worker", Event.entity_id == str(job.worker_id),
                                Event.event_type.in_(("turn.started", "turn.completed")),
                                Event.created_at >= job.started_at - timedelta(seconds=1))
            .order_by(Event.id))).scalars().all()
        by_turn: dict[str, dict[str, Any]] = {}
        for e in evs:
            tid = str(e.payload.get("turn_id"))
            t = by_turn.setdefault(tid, {"thread_id": e.payload.get("thread_id"), "turn_id": e.payload.get("turn_id"),
                                         "status": "running", "started_at": e.created_at, "completed_at": None,
                                         "final_message": None})
            if e.event_type == "turn.completed":
                t.update(status=e.payload.get("status"), completed_at=e.created_at,
                         final_message=e.payload.get("final_message"))
        turns = list(by_turn.values())
    transitions = [{"from": e.payload.get("from"), "to": e.payload.get("to"), "reason": e.payload.get("reason"),
                    "at": e.created_at.isoformat()}
                   for e in (await session.execute(
                       select(Event).where(Event.entity_type == "job", Event.entity_id == str(job.id),
                                           Event.event_type == "job.state_changed").order_by(Event.id))).scalars()]
    return {"children": list(children), "dependencies": list(deps), "allocations": list(allocations),
            "turns": turns, "transitions": transitions, "depends_on": dep_ids}


# ------------------------------------------------------------------------------------------ finishing


async def finish(session: AsyncSession, job: Job, target: JobStatus, *, reason: str, error: str | None = None,
                 result: str | None = None) -> bool:
    """Move ``job`` to a terminal ``target`` and release what it holds, in the caller's transaction.

    Returns False when the job was already terminal (nothing changes).
    """
    assert target in TERMINAL
    if states.is_terminal(job.status):
        return False
    if error is not None:
        job.error = error[:4000]
    if result is not None:
        job.result = result
    if target == S.CANCELED:
        job.cancel_reason = reason[:2000]
    await states.transition(session, job, target, reason=reason[:500], flush=False)
    await quotas.release_job(session, job, reason=f"job {target.value.lower()}")
    await session.flush()
    return True


async def cancel(session: AsyncSession, *, principal: Principal, job_id: uuid.UUID, reason: str | None
                 ) -> tuple[Job, list[uuid.UUID]]:
    """Cancel a PENDING or RUNNING job and its unfinished descendants (parents first).

    Returns the job and the workers whose turns must now be interrupted (RUNNING jobs on a worker).
    Idempotent for a CANCELED job; 409 for a COMPLETED or FAILED one; 403 for a job token outside its subtree.
    """
    job = await get_scoped(session, Job, job_id, principal, entity="job")
    if principal.job_id is not None and not await is_in_subtree(session, root_id=principal.job_id, job_id=job.id):
        raise Forbidden("A job's token may only cancel jobs it spawned",
                        details={"job_id": str(principal.job_id), "target_job_id": str(job.id)})
    if job.status == S.CANCELED:
        return job, []
    if states.is_terminal(job.status):
        raise InvalidStateTransition("job", job.id, job.status, S.CANCELED.value)
    why = reason or f"canceled by {principal.subject}"
    workers: list[uuid.UUID] = []
    for j in await subtree(session, job.id):
        locked = await quotas.lock_job(session, j.id)
        if locked is None or states.is_terminal(locked.status):
            continue
        if locked.status == S.RUNNING and locked.worker_id is not None and locked.turn_ended_at is None:
            workers.append(locked.worker_id)
        await finish(session, locked, S.CANCELED, reason=why if locked.id == job.id else
                     f"parent job {job.id} canceled: {why}")
    return job, workers


async def settle_parents(session: AsyncSession, *, limit: int = 500) -> list[Job]:
    """Finish RUNNING parents whose own turn ended and whose children are all terminal."""
    child = Job.__table__.alias("child")
    unfinished = select(child.c.id).where(child.c.parent_job_id == Job.id,
                                          child.c.status.not_in(TERMINAL_VALUES)).exists()
    done: list[Job] = []
    seen: set[uuid.UUID] = set()
    while len(done) < limit:  # finishing a child can settle its parent: repeat until nothing changes
        ids = [i for i in (await session.execute(
            select(Job.id).where(Job.status == S.RUNNING, Job.turn_ended_at.is_not(None), ~unfinished)
            .order_by(Job.depth.desc()).limit(limit))).scalars().all() if i not in seen]
        if not ids:
            break
        seen.update(ids)
        done.extend(await _settle(session, ids))
    return done


async def _settle(session: AsyncSession, ids: list[uuid.UUID]) -> list[Job]:
    done: list[Job] = []
    for parent_id in ids:
        locked = await quotas.lock_job(session, parent_id)
        if locked is None or locked.status != S.RUNNING:
            continue
        kids = (await session.execute(select(Job.id, Job.status).where(Job.parent_job_id == parent_id))).all()
        if any(not states.is_terminal(st) for _, st in kids):
            continue
        bad = [(cid, st) for cid, st in kids if st != S.COMPLETED]
        if bad:
            await finish(session, locked, S.FAILED, reason=f"child job {bad[0][0]} {bad[0][1].lower()}",
                         error=f"{len(bad)} child job(s) did not complete: " +
                               ", ".join(f"{c} {s}" for c, s in bad[:10]))
        else:
            await finish(session, locked, S.COMPLETED, reason=f"turn and {len(kids)} child job(s) completed")
        done.append(locked)
    return done


async def cancel_blocked_dependents(session: AsyncSession, *, limit: int = 500) -> list[Job]:
    """Cancel PENDING jobs one of whose dependencies FAILED or was CANCELED (with that reason)."""
    dep = Job.__table__.alias("dep")
    rows = (await session.execute(
        select(JobDependency.job_id, JobDependency.depends_on_id, dep.c.status)
        .join(Job, Job.id == JobDependency.job_id)
        .join(dep, dep.c.id == JobDependency.depends_on_id)
        .where(Job.status == S.PENDING, dep.c.status.in_((S.FAILED.value, S.CANCELED.value)))
        .limit(limit))).all()
    out: list[Job] = []
    for job_id, dep_id, dep_status in rows:
        job = await quotas.lock_job(session, job_id)
        if job is None or job.status != S.PENDING:
            continue
        await finish(session, job, S.CANCELED, reason=f"dependency {dep_id} {dep_status.lower()}")
        out.append(job)
    return out


def wait_key(w: dict[str, Any] | None) -> Any:
    """What makes two blockers "the same reason" (counts such as ``in_use`` may change without a new event)."""
    if w is None:
        return None
    return (w.get("kind"), w.get("scope"), w.get("limit"), tuple(w.get("dependencies") or ()), w.get("pending"),
            w.get("worker_id"))


async def set_waiting(session: AsyncSession, job: Job, waiting: dict[str, Any] | None) -> bool:
    """Record the job's current blocker; appends ``job.waiting`` only when the reason changes."""
    if wait_key(job.waiting) == wait_key(waiting):
        return False
    job.waiting = waiting
    if waiting is not None:
        event_log.defer(session, workspace_id=job.workspace_id, event_type="job.waiting", entity_type="job",
                        entity_id=job.id, payload={**waiting, "depth": job.depth})
    return True


async def report_progress(session: AsyncSession, *, principal: Principal, job_id: uuid.UUID, message: str,
                          percent: float | None) -> Job:
    """Append a ``job.progress`` event. A job token may report only on its own job (403)."""
    job = await get_scoped(session, Job, job_id, principal, entity="job")
    if principal.job_id is not None and principal.job_id != job.id:
        raise Forbidden("A job's token may only report progress of its own job",
                        details={"job_id": str(principal.job_id), "target_job_id": str(job.id)})
    if states.is_terminal(job.status):
        raise InvalidStateTransition("job", job.id, job.status, job.status)
    event_log.defer(session, workspace_id=job.workspace_id, event_type="job.progress", entity_type="job",
                    entity_id=job.id, payload={"message": message, "percent": percent, "actor": principal.subject})
    return job


# ------------------------------------------------------------------------------------------ quotas API


async def quota_rows(session: AsyncSession, *, principal: Principal, settings: Settings) -> list[dict[str, Any]]:
    """Effective quota per visible workspace and depth, plus the node-wide caps, with current use."""
    table = await quotas.load_quotas(session, default=settings.default_depth_quota)
    visible = await workspaces.list_visible(session, principal=principal)
    usage = await quotas.load_usage(session)
    out: list[dict[str, Any]] = []
    for depth in range(settings.max_job_depth):
        out.append({"workspace_id": None, "depth": depth, "max_workers": table.global_cap(depth),
                    "source": "global", "in_use": usage.by_depth.get(depth, 0)})
    for ws in visible:
        for depth in range(settings.max_job_depth):
            out.append({"workspace_id": ws.id, "depth": depth, "max_workers": table.limit(ws.id, depth),
                        "source": table.source(ws.id, depth), "in_use": usage.in_use(ws.id, depth)})
    return out


async def set_quotas(session: AsyncSession, *, principal: Principal, items: list[QuotaSet], settings: Settings) -> None:
    """Upsert (or with ``max_workers`` None delete) quota rows. Admin only (checked by the route)."""
    for item in items:
        if item.depth >= settings.max_job_depth:
            raise MaxDepthExceeded(f"Depth {item.depth} is not allowed: jobs go from depth 0 to "
                                   f"{settings.max_job_depth - 1}", details={"depth": item.depth,
                                                                               "max_depth": settings.max_job_depth})
        if item.workspace_id is not None:
            await workspaces.get(session, principal=principal, workspace_id=item.workspace_id)
    for item in items:
        row = (await session.execute(select(ResourceQuota).where(
            ResourceQuota.depth == item.depth,
            ResourceQuota.workspace_id == item.workspace_id if item.workspace_id is not None
            else ResourceQuota.workspace_id.is_(None)))).scalar_one_or_none()
        if item.max_workers is None:
            if row is not None:
                await session.delete(row)
        elif row is None:
            session.add(ResourceQuota(workspace_id=item.workspace_id, depth=item.depth, max_workers=item.max_workers))
        else:
            row.max_workers = item.max_workers
            row.updated_at = utcnow()
        await session.flush()
    targets: set[uuid.UUID | None] = {i.workspace_id for i in items if i.workspace_id is not None}
    for ws_id in targets or {None}:
        ws_events = [ws_id] if ws_id is not None else [w.id for w in await workspaces.list_visible(session,
                                                                                                   principal=principal)]
        for w in ws_events:
            event_log.defer(session, workspace_id=w, event_type="resource.quotas_changed", entity_type="workspace",
                            entity_id=w, payload={"actor": principal.subject,
                                                  "quotas": [i.model_dump(mode="json") for i in items
                                                             if i.workspace_id in (None, w)]})


async def usage(session: AsyncSession, *, principal: Principal, settings: Settings) -> dict[str, Any]:
    table = await quotas.load_quotas(session, default=settings.default_depth_quota)
    visible_ids = None if principal.workspace_ids is None else list(principal.workspace_ids)
    mine = await quotas.load_usage(session, workspace_ids=visible_ids)
    allocations = (await session.execute(scoped(select(ResourceAllocation), ResourceAllocation, principal)
                                         .where(ResourceAllocation.released_at.is_(None))
                                         .order_by(ResourceAllocation.allocated_at))).scalars().all()
    return {
        "total_in_use": sum(mine.by_depth.values()),
        "by_depth": [{"depth": d, "in_use": mine.by_depth.get(d, 0), "global_cap": table.global_cap(d)}
                     for d in range(settings.max_job_depth)],
        "by_workspace": [{"workspace_id": ws, "depth": d, "in_use": n, "limit": table.limit(ws, d)}
                         for (ws, d), n in sorted(mine.by_slot.items(), key=lambda kv: (str(kv[0][0]), kv[0][1]))
                         if n],
        "allocations": list(allocations),
    }


async def get_allocation(session: AsyncSession, *, principal: Principal, allocation_id: uuid.UUID
                         ) -> ResourceAllocation:
    row = (await session.execute(scoped(select(ResourceAllocation).where(ResourceAllocation.id == allocation_id),
                                        ResourceAllocation, principal))).scalar_one_or_none()
    if row is None:
        raise NotFound("allocation", allocation_id)
    return row


@functools.lru_cache(maxsize=256)
def _snapshot_query(workspace_ids: frozenset[uuid.UUID] | None, *, live: int, recent: int) -> Any:
    """The statement of :func:`snapshot` for one set of visible workspaces, built once (tenant-filtered)."""
    who = Principal("snapshot", frozenset(), workspace_ids)
    terminal = Job.status.in_(TERMINAL_VALUES)
    live_ids = scoped(select(Job.id).where(~terminal).order_by(Job.depth, Job.created_at).limit(live), Job, who)
    done_ids = scoped(select(Job.id).where(terminal).order_by(Job.completed_at.desc()).limit(recent), Job, who)
    return scoped(select(
        Job.id, Job.workspace_id, Job.parent_job_id, Job.depth, Job.status, func.substr(Job.prompt, 1, 200),
        Job.priority, Job.agent_kind, Job.worker_id, Job.thread_id, Job.turn_id, Job.waiting,
        func.substr(Job.result, 1, 300), Job.error, Job.created_at, Job.started_at, Job.completed_at),
        Job, who).where(Job.id.in_(live_ids) | Job.id.in_(done_ids))


async def snapshot(session: AsyncSession, *, principal: Principal, settings: Settings | None = None,
                   recent: int = 50, live: int = 100) -> list[dict[str, Any]]:
    """Jobs for the operations snapshot (``ops.read.snapshot``): the ``live`` first unfinished jobs (by depth,
    then oldest; every one: ``GET /api/v1/jobs``) and the ``recent`` last finished ones, with depth, parent,
    worker, blockers (``waiting``) and the quota use of their depth. One query of plain rows; the quota
    tables are read only when there is a job to show."""
    default = settings.default_depth_quota if settings else 4
    rows = (await (await session.connection()).execute(
        _snapshot_query(principal.workspace_ids, live=live, recent=recent))).all()
    if not rows:
        return []
    done = frozenset(TERMINAL_VALUES)
    rows = sorted((r for r in rows if r.status not in done), key=lambda r: (r.depth, r.created_at)) + sorted(
        (r for r in rows if r.status in done), key=lambda r: r.completed_at or r.created_at, reverse=True)
    table = await quotas.load_quotas(session, default=default)
    use = await quotas.load_usage(session, workspace_ids=None if principal.workspace_ids is None
                                  else list(principal.workspace_ids))
    out = []
    for (job_id, ws_id, parent_id, depth, status, prompt, priority, agent_kind, worker_id, thread_id, turn_id,
         waiting, result, error, created_at, started_at, completed_at) in rows:
        blockers = [] if waiting is None else [{"kind": waiting.get("kind"), "reason": waiting.get("reason"),
                                                **{k: v for k, v in waiting.items() if k not in ("kind", "reason")}}]
        out.append({"id": str(job_id), "workspace_id": str(ws_id), "parent_job_id":
                    str(parent_id) if parent_id else None, "depth": depth, "status": status,
                    "prompt": prompt, "priority": priority, "agent_kind": agent_kind,
                    "worker_id": str(worker_id) if worker_id else None, "thread_id": thread_id,
                    "turn_id": turn_id, "blockers": blockers, "result": result or None,
                    "error": error, "created_at": created_at.isoformat(),
                    "started_at": started_at.isoformat() if started_at else None,
                    "completed_at": completed_at.isoformat() if completed_at else None,
                    "quota": {"depth": depth, "in_use": use.in_use(ws_id, depth),
                              "limit": table.limit(ws_id, depth), "global_cap": table.global_cap(depth)}})
    return out


__all__ = ["cancel", "create", "detail", "finish", "get", "job_token", "list_", "set_quotas", "settle_parents", "snapshot",
           "subtree", "usage"]
