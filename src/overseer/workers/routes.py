"""Worker control API (manager-ai-mvp-spec.md §1.1 A, §4.1; issue 3 item 6).

Served twice with the same handlers: under ``/api/supervisor`` (the spec's paths) and ``/api/v1``.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from overseer.auth.deps import SupervisorRead, SupervisorWrite
from overseer.deps import DbDep
from overseer.errors import COMMON_ERRORS, AgentUnavailable, ServiceUnavailable, error_responses
from overseer.runtime.workers import WorkerManager
from overseer.workers import service
from overseer.workers.models import Worker
from overseer.workers.schemas import (
    MetricsRead,
    SteerCreate,
    TurnCreate,
    TurnRead,
    WorkerCreate,
    WorkerDetail,
    WorkerList,
    WorkerRead,
)

ERRORS = {**COMMON_ERRORS, **error_responses(422)}


def manager_of(request: Request) -> WorkerManager:
    runtime = request.app.state.runtime
    manager = runtime.components.get("workers") if runtime is not None else None
    if manager is None:
        raise ServiceUnavailable("The agent runtime is not running on this node", code="RUNTIME_UNAVAILABLE")
    return manager  # type: ignore[no-any-return]


def _read(request: Request, worker: Worker, model: type[WorkerRead] = WorkerRead, **extra: Any) -> Any:
    runtime = request.app.state.runtime
    manager = runtime.components.get("workers") if runtime is not None else None
    alive = bool(manager and manager.is_alive(worker.id))
    out = model.model_validate(worker, from_attributes=True).model_copy(update=extra)
    out.liveness = service.liveness(worker, alive=alive, now=request.app.state.clock.now(),  # type: ignore[assignment]
                                    settings=request.app.state.settings)
    return out


def build_router(prefix: str, *, with_create: bool) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=["workers"], responses=ERRORS)

    @router.get("/workers", response_model=WorkerList)
    async def list_workers(request: Request, principal: SupervisorRead, db: DbDep,
                           status: Annotated[str | None, Query(max_length=20)] = None,
                           workspace_id: uuid.UUID | None = None) -> WorkerList:
        """List the caller's workers with status (UC-1)."""
        async with db.read_session() as session:
            rows = await service.list_(session, principal=principal, status=status, workspace_id=workspace_id)
            return WorkerList(workers=[_read(request, w) for w in rows])

    @router.get("/workers/{worker_id}", response_model=WorkerDetail)
    async def get_worker(request: Request, worker_id: uuid.UUID, principal: SupervisorRead, db: DbDep
                         ) -> WorkerDetail:
        """Worker details with its recent state transitions."""
        async with db.read_session() as session:
            worker = await service.get(session, principal=principal, worker_id=worker_id)
            transitions = await service.transitions(session, worker=worker)
            return _read(request, worker, WorkerDetail, transitions=transitions)  # type: ignore[no-any-return]

    async def _after(request: Request, db: Any, principal: Any, worker_id: uuid.UUID) -> WorkerRead:
        async with db.read_session() as session:
            return _read(request, await service.get(session, principal=principal, worker_id=worker_id))  # type: ignore[no-any-return]

    async def _visible(db: Any, principal: Any, worker_id: uuid.UUID) -> None:
        async with db.read_session() as session:
            await service.get(session, principal=principal, worker_id=worker_id)

    @router.post("/workers/{worker_id}/pause", response_model=WorkerRead)
    async def pause_worker(request: Request, worker_id: uuid.UUID, principal: SupervisorWrite, db: DbDep
                           ) -> WorkerRead:
        """RUNNING/IDLE -> PAUSED: interrupt the running turn, hold further turns (UC-2)."""
        await _visible(db, principal, worker_id)
        await manager_of(request).pause(worker_id, reason=f"paused by {principal.subject}")
        return await _after(request, db, principal, worker_id)

    @router.post("/workers/{worker_id}/resume", response_model=WorkerRead)
    async def resume_worker(request: Request, worker_id: uuid.UUID, principal: SupervisorWrite, db: DbDep
                            ) -> WorkerRead:
        """PAUSED -> RUNNING: reattach the thread and continue it with the resume prompt (UC-3)."""
        await _visible(db, principal, worker_id)
        await manager_of(request).resume(worker_id, reason=f"resumed by {principal.subject}")
        return await _after(request, db, principal, worker_id)

    @router.post("/workers/{worker_id}/terminate", response_model=WorkerRead)
    async def terminate_worker(request: Request, worker_id: uuid.UUID, principal: SupervisorWrite, db: DbDep
                               ) -> WorkerRead:
        """Any live state -> TERMINATED: interrupt, stop gracefully, kill after the grace period."""
        await _visible(db, principal, worker_id)
        await manager_of(request).terminate(worker_id, reason=f"terminated by {principal.subject}")
        return await _after(request, db, principal, worker_id)

    @router.get("/metrics", response_model=MetricsRead)
    async def get_metrics(request: Request, principal: SupervisorRead, db: DbDep) -> MetricsRead:
        """Aggregate metrics over the caller's workspaces."""
        async with db.read_session() as session:
            data = await service.metrics(session, principal=principal)
        runtime = request.app.state.runtime
        manager = runtime.components.get("workers") if runtime is not None else None
        data["events_per_second"] = manager.stats.rate() if manager else 0.0
        data["events_total"] = manager.stats.events if manager else 0
        return MetricsRead(**data)

    if with_create:

        @router.post("/workers", status_code=201, response_model=WorkerRead)
        async def create_worker(request: Request, body: WorkerCreate, principal: SupervisorWrite, db: DbDep
                                ) -> WorkerRead:
            """Start a worker (a real agent process) in the workspace's directory."""
            manager = manager_of(request)
            async with db.session() as session:
                worker = await service.create(session, principal=principal, data=body)
                # Check the binary before committing, so a misconfigured node creates nothing.
                from overseer.workspaces.models import Workspace

                workspace = await session.get(Workspace, worker.workspace_id)
                assert workspace is not None
                manager.agent_config(worker, workspace)
            try:
                await manager.launch(worker.id)
            except AgentUnavailable as exc:
                await manager.mark_failed(worker.id, reason=exc.message)
                raise
            return await _after(request, db, principal, worker.id)

        @router.post("/workers/{worker_id}/turns", status_code=202, response_model=TurnRead)
        async def send_turn(request: Request, worker_id: uuid.UUID, body: TurnCreate, principal: SupervisorWrite,
                            db: DbDep) -> TurnRead:
            """Send the worker a turn; returns at once with the thread and turn ids (202)."""
            await _visible(db, principal, worker_id)
            thread_id, turn_id = await manager_of(request).send_turn(
                worker_id, body.prompt, thread_id=body.thread_id, model=body.model, effort=body.effort,
                reason=f"turn sent by {principal.subject}")
            return TurnRead(worker_id=worker_id, thread_id=thread_id, turn_id=turn_id, status="RUNNING")

        @router.post("/workers/{worker_id}/steer", status_code=202, response_model=TurnRead)
        async def steer_turn(request: Request, worker_id: uuid.UUID, body: SteerCreate, principal: SupervisorWrite,
                             db: DbDep) -> TurnRead:
            """Add input to the worker's running turn."""
            await _visible(db, principal, worker_id)
            manager = manager_of(request)
            await manager.steer(worker_id, body.prompt)
            live = manager.agents.get(worker_id)
            return TurnRead(worker_id=worker_id, thread_id=live.thread_id if live else None,
                            turn_id=live.turn_id if live else None, status="RUNNING")

        @router.post("/workers/{worker_id}/interrupt", response_model=WorkerRead)
        async def interrupt_turn(request: Request, worker_id: uuid.UUID, principal: SupervisorWrite, db: DbDep
                                 ) -> WorkerRead:
            """Interrupt the running turn; the worker stays up and returns to IDLE."""
            await _visible(db, principal, worker_id)
            await manager_of(request).interrupt(worker_id)
            return await _after(request, db, principal, worker_id)

    return router


routers = [build_router("/api/supervisor", with_create=False), build_router("/api/v1", with_create=True)]
