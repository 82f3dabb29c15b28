"""Jobs and resources API (manager-ai-mvp-spec.md §1.2 A/B, UC-4, UC-5; issue 5 items 1 and 3).

Served under ``/api`` (the spec's paths) and ``/api/v1`` with the same handlers. Submits, cancels and
releases wake the job scheduler (runtime component ``"jobs"``) when this node runs one. Every writing unit
of work starts with ``quotas.begin_write`` (SQLite: take the write lock before reading, so concurrent
writers queue on the busy timeout instead of failing with "database is locked").
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from overseer.auth.deps import Admin, JobsRead, JobsWrite
from overseer.auth.tokens import Principal
from overseer.deps import DbDep, PageDep, SettingsDep
from overseer.errors import COMMON_ERRORS, Forbidden, MaxDepthExceeded, ValidationFailed, error_responses
from overseer.jobs import quotas, service
from overseer.jobs.models import Job, JobStatus
from overseer.jobs.schemas import (
    AllocateRequest,
    AllocationRead,
    JobCancel,
    JobCreate,
    JobDetail,
    JobPage,
    JobRead,
    ProgressReport,
    QuotasRead,
    QuotaUpdate,
    ReleaseRead,
    ReleaseRequest,
    UsageRead,
)

ERRORS = {**COMMON_ERRORS, **error_responses(422)}


def _scheduler(request: Request) -> Any:
    runtime = request.app.state.runtime
    return runtime.components.get("jobs") if runtime is not None else None


def _wake(request: Request) -> None:
    scheduler = _scheduler(request)
    if scheduler is not None:
        scheduler.wake()


def _read(job: Job, depends_on: list[uuid.UUID] | None = None) -> JobRead:
    return JobRead.model_validate(job, from_attributes=True).model_copy(update={"depends_on": depends_on or []})


def _no_job_token(principal: Principal) -> None:
    if principal.job_id is not None:
        raise Forbidden("A job's token may spawn and read jobs, not manage resources",
                        details={"job_id": str(principal.job_id)})


def build_router(prefix: str) -> APIRouter:
    router = APIRouter(prefix=prefix, responses=ERRORS)

    @router.post("/jobs", status_code=201, response_model=JobRead, tags=["jobs"])
    async def submit_job(request: Request, body: JobCreate, principal: JobsWrite, db: DbDep, settings: SettingsDep
                         ) -> JobRead:
        """Submit a job (UC-4) or, with ``parent_job_id``, a sub-job (UC-5). It starts when the scheduler can."""
        async with db.session() as session:
            await quotas.begin_write(session)
            job = await service.create(session, principal=principal, data=body, settings=settings)
            deps = (await service.dependencies_of(session, [job.id])).get(job.id, [])
            out = _read(job, deps)
        _wake(request)
        return out

    @router.get("/jobs", response_model=JobPage, tags=["jobs"])
    async def list_jobs(principal: JobsRead, db: DbDep, page: PageDep,
                        workspace_id: uuid.UUID | None = None,
                        status: Annotated[str | None, Query(max_length=20)] = None,
                        parent_job_id: uuid.UUID | None = None,
                        depth: Annotated[int | None, Query(ge=0, le=1000)] = None,
                        roots: bool = False) -> JobPage:
        """List the caller's jobs (oldest first), filtered by workspace, status, parent, depth or roots only."""
        if status is not None and status.upper() not in JobStatus.__members__:
            raise ValidationFailed(f"Unknown status {status!r}", details={"allowed": list(JobStatus.__members__)})
        async with db.read_session() as session:
            rows, total = await service.list_(session, principal=principal, workspace_id=workspace_id, status=status,
                                              parent_job_id=parent_job_id, depth=depth, roots=roots,
                                              limit=page.limit, offset=page.offset)
            deps = await service.dependencies_of(session, [j.id for j in rows])
            return JobPage(items=[_read(j, deps.get(j.id)) for j in rows], total=total, limit=page.limit,
                           offset=page.offset)

    @router.get("/jobs/{job_id}", response_model=JobDetail, tags=["jobs"])
    async def get_job(job_id: uuid.UUID, principal: JobsRead, db: DbDep) -> JobDetail:
        """A job with its children, dependencies, allocations, the turns it ran and its result."""
        async with db.read_session() as session:
            job = await service.get(session, principal=principal, job_id=job_id)
            extra = await service.detail(session, job=job)
            base = JobRead.model_validate(job, from_attributes=True).model_dump()
            base["depends_on"] = extra.pop("depends_on")
            return JobDetail.model_validate({
                **base, **extra,
                "children": [_read(c) for c in extra["children"]],
                "dependencies": [_read(d) for d in extra["dependencies"]],
                "allocations": [AllocationRead.model_validate(a, from_attributes=True) for a in extra["allocations"]],
            })

    @router.get("/jobs/{job_id}/tree", response_model=list[JobRead], tags=["jobs"])
    async def get_job_tree(job_id: uuid.UUID, principal: JobsRead, db: DbDep) -> list[JobRead]:
        """The job and all its descendants, parents before children (recursive query)."""
        async with db.read_session() as session:
            job = await service.get(session, principal=principal, job_id=job_id)
            rows = await service.subtree(session, job.id)
            deps = await service.dependencies_of(session, [j.id for j in rows])
            return [_read(j, deps.get(j.id)) for j in rows]

    @router.post("/jobs/{job_id}/cancel", response_model=JobRead, tags=["jobs"])
    async def cancel_job(request: Request, job_id: uuid.UUID, principal: JobsWrite, db: DbDep,
                         body: JobCancel | None = None) -> JobRead:
        """PENDING/RUNNING -> CANCELED, with every unfinished descendant; a running turn is interrupted."""
        async with db.session() as session:
            await quotas.begin_write(session)
            job, workers = await service.cancel(session, principal=principal, job_id=job_id,
                                                reason=body.reason if body else None)
            out = _read(job)
        scheduler = _scheduler(request)
        if scheduler is not None:
            await scheduler.stop_workers(workers, reason=f"job {job_id} canceled")
            scheduler.wake()
        return out

    @router.post("/jobs/{job_id}/progress", status_code=202, response_model=JobRead, tags=["jobs"])
    async def report_progress(job_id: uuid.UUID, body: ProgressReport, principal: JobsWrite, db: DbDep) -> JobRead:
        """Record a progress note of a running job (``job.progress`` event; a job token: its own job only)."""
        async with db.session() as session:
            await quotas.begin_write(session)
            job = await service.report_progress(session, principal=principal, job_id=job_id, message=body.message,
                                                percent=body.percent)
            return _read(job)

    # ------------------------------------------------------------------ resources (§1.2 A)

    @router.get("/resources/quotas", response_model=QuotasRead, tags=["resources"])
    async def get_quotas(principal: JobsRead, db: DbDep, settings: SettingsDep) -> QuotasRead:
        """Max concurrent workers per depth: per visible workspace, and the node-wide caps (workspace_id null)."""
        async with db.read_session() as session:
            rows = await service.quota_rows(session, principal=principal, settings=settings)
        return QuotasRead.model_validate({"max_job_depth": settings.max_job_depth,
                                          "default_max_workers": settings.default_depth_quota, "quotas": rows})

    @router.put("/resources/quotas", response_model=QuotasRead, tags=["resources"])
    async def put_quotas(request: Request, body: QuotaUpdate, principal: Admin, db: DbDep, settings: SettingsDep
                         ) -> QuotasRead:
        """Set quotas (admin). ``max_workers`` null removes a row (workspace: back to the default)."""
        async with db.session() as session:
            await quotas.begin_write(session)
            await service.set_quotas(session, principal=principal, items=body.quotas, settings=settings)
        _wake(request)
        return await get_quotas(principal, db, settings)

    @router.post("/resources/allocate", status_code=201, response_model=AllocationRead, tags=["resources"])
    async def allocate(request: Request, body: AllocateRequest, principal: JobsWrite, db: DbDep,
                       settings: SettingsDep) -> AllocationRead:
        """Allocate workers for a job at its depth; a PENDING job moves to RUNNING in the same transaction.

        409 ``QUOTA_EXCEEDED`` with ``{depth, limit, in_use, requested}`` when it does not fit.
        """
        _no_job_token(principal)
        if body.depth >= settings.max_job_depth:
            raise MaxDepthExceeded(f"Depth {body.depth} is not allowed", details={"depth": body.depth,
                                                                                 "max_depth": settings.max_job_depth})
        async with db.session() as session:
            await quotas.begin_write(session)
            job = await service.get(session, principal=principal, job_id=body.job_id)
            if body.depth != job.depth:
                raise ValidationFailed(f"Job {job.id} is at depth {job.depth}, not {body.depth}",
                                       details={"fields": [{"loc": ["body", "depth"], "msg": f"expected {job.depth}"}]})
            _, alloc = await quotas.allocate(
                session, job_id=job.id, workspace_id=job.workspace_id, depth=job.depth,
                worker_count=body.worker_count, default_quota=settings.default_depth_quota,
                start=job.status == JobStatus.PENDING, reason=f"resources allocated by {principal.subject}")
            out = AllocationRead.model_validate(alloc, from_attributes=True)
        _wake(request)
        return out

    @router.post("/resources/release", response_model=ReleaseRead, tags=["resources"])
    async def release(request: Request, body: ReleaseRequest, principal: JobsWrite, db: DbDep) -> ReleaseRead:
        """Release an allocation (idempotent: a second release returns it with ``already_released``)."""
        _no_job_token(principal)
        async with db.session() as session:
            await quotas.begin_write(session)
            alloc = await service.get_allocation(session, principal=principal, allocation_id=body.allocation_id)
            released = await quotas.release_allocation(session, alloc, reason=f"released by {principal.subject}")
            out = ReleaseRead.model_validate(alloc, from_attributes=True).model_copy(
                update={"already_released": not released})
        _wake(request)
        return out

    @router.get("/resources/usage", response_model=UsageRead, tags=["resources"])
    async def get_usage(principal: JobsRead, db: DbDep, settings: SettingsDep) -> UsageRead:
        """Workers in use now: per depth, per (workspace, depth), and the open allocations."""
        async with db.read_session() as session:
            data = await service.usage(session, principal=principal, settings=settings)
            data["allocations"] = [AllocationRead.model_validate(a, from_attributes=True) for a in data["allocations"]]
            return UsageRead.model_validate(data)

    return router


routers = [build_router("/api"), build_router("/api/v1")]
