"""``/api/v1/supervisors`` and ``/api/v1/teams`` (TKT-001; issue items 6 and 8). Thin: rules live in the service.

Reads need ``supervisor:read``, writes ``supervisor:write``. Another workspace's supervisor or team
is 404. Lifecycle commands change the database first (the state of record), then ask the node's
``SupervisorManager`` (when the runtime runs) to bring its heartbeat agent in line.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from overseer.auth.deps import SupervisorRead as ReadPrincipal
from overseer.auth.deps import SupervisorWrite as WritePrincipal
from overseer.auth.tokens import Principal
from overseer.clock import Clock
from overseer.db.engine import Database
from overseer.deps import DbDep, PageDep, RuntimeDep, SettingsDep
from overseer.errors import COMMON_ERRORS
from overseer.schemas import Page
from overseer.supervisors import service
from overseer.supervisors.models import Supervisor, SupervisorStatus
from overseer.supervisors.schemas import (
    HealthRead,
    HierarchyNode,
    MemberCreate,
    MemberRead,
    SupervisorCreate,
    SupervisorRead,
    SupervisorUpdate,
    TeamCreate,
    TeamRead,
    TeamStatusRead,
    TeamUpdate,
)


def _clock(request: Request) -> Clock:
    return request.app.state.clock  # type: ignore[no-any-return]


ClockDep = Annotated[Clock, Depends(_clock)]

supervisors_router = APIRouter(prefix="/api/v1/supervisors", tags=["supervisors"], responses=COMMON_ERRORS)
teams_router = APIRouter(prefix="/api/v1/teams", tags=["teams"], responses=COMMON_ERRORS)


async def _reconcile_agent(runtime: Any, supervisor_id: uuid.UUID) -> None:
    """Tell the supervisor manager a status changed; a no-op when the runtime is not running."""
    manager = runtime.components.get("supervisors") if runtime is not None else None
    if manager is not None:
        await manager.reconcile(supervisor_id)


# --- supervisors -------------------------------------------------------------------------------


@supervisors_router.post("", status_code=201, response_model=SupervisorRead)
async def create_supervisor(body: SupervisorCreate, principal: WritePrincipal, db: DbDep, settings: SettingsDep,
                            clock: ClockDep) -> SupervisorRead:
    """Create a supervisor in SPAWNING."""
    async with db.session() as session:
        sup = await service.create(session, principal=principal, data=body, settings=settings, clock=clock)
        return SupervisorRead.model_validate(sup)


@supervisors_router.get("", response_model=Page[SupervisorRead])
async def list_supervisors(principal: ReadPrincipal, db: DbDep, page: PageDep,
                           status: SupervisorStatus | None = None) -> Page[SupervisorRead]:
    """The supervisors the token can see, oldest first; ``status`` filters."""
    async with db.read_session() as session:
        rows, total = await service.list_page(session, principal=principal, status=status, limit=page.limit,
                                              offset=page.offset)
        return Page(items=[SupervisorRead.model_validate(r) for r in rows], total=total, limit=page.limit,
                    offset=page.offset)


@supervisors_router.get("/{supervisor_id}", response_model=SupervisorRead)
async def get_supervisor(supervisor_id: uuid.UUID, principal: ReadPrincipal, db: DbDep) -> SupervisorRead:
    async with db.read_session() as session:
        return SupervisorRead.model_validate(
            await service.get(session, principal=principal, supervisor_id=supervisor_id))


@supervisors_router.patch("/{supervisor_id}", response_model=SupervisorRead)
async def update_supervisor(supervisor_id: uuid.UUID, body: SupervisorUpdate, principal: WritePrincipal,
                            db: DbDep, settings: SettingsDep, clock: ClockDep) -> SupervisorRead:
    """Change name, description, config, policy version or parent (the subtree is re-levelled)."""
    async with db.session() as session:
        sup = await service.update(session, principal=principal, supervisor_id=supervisor_id, data=body,
                                   settings=settings, clock=clock)
        return SupervisorRead.model_validate(sup)


@supervisors_router.delete("/{supervisor_id}", status_code=204, response_class=Response)
async def delete_supervisor(supervisor_id: uuid.UUID, principal: WritePrincipal, db: DbDep,
                            clock: ClockDep) -> Response:
    """Delete a supervisor that is not running (SPAWNING, FAILED, TERMINATED) and has no children."""
    async with db.session() as session:
        await service.delete(session, principal=principal, supervisor_id=supervisor_id, clock=clock)
    return Response(status_code=204)


async def _lifecycle(command: Callable[..., Awaitable[Supervisor]], supervisor_id: uuid.UUID,
                     principal: Principal, db: Database, runtime: Any, clock: Clock) -> SupervisorRead:
    async with db.session() as session:
        sup = await command(session, principal=principal, supervisor_id=supervisor_id, clock=clock)
        result = SupervisorRead.model_validate(sup)
    await _reconcile_agent(runtime, supervisor_id)
    return result


@supervisors_router.post("/{supervisor_id}/start", response_model=SupervisorRead)
async def start_supervisor(supervisor_id: uuid.UUID, principal: WritePrincipal, db: DbDep, runtime: RuntimeDep,
                           clock: ClockDep) -> SupervisorRead:
    """SPAWNING or FAILED -> ACTIVE; its heartbeat agent starts."""
    return await _lifecycle(service.start, supervisor_id, principal, db, runtime, clock)


@supervisors_router.post("/{supervisor_id}/pause", response_model=SupervisorRead)
async def pause_supervisor(supervisor_id: uuid.UUID, principal: WritePrincipal, db: DbDep, runtime: RuntimeDep,
                           clock: ClockDep) -> SupervisorRead:
    """ACTIVE -> PAUSED; it keeps heartbeating but stops monitoring its teams."""
    return await _lifecycle(service.pause, supervisor_id, principal, db, runtime, clock)


@supervisors_router.post("/{supervisor_id}/resume", response_model=SupervisorRead)
async def resume_supervisor(supervisor_id: uuid.UUID, principal: WritePrincipal, db: DbDep, runtime: RuntimeDep,
                            clock: ClockDep) -> SupervisorRead:
    """PAUSED -> ACTIVE."""
    return await _lifecycle(service.resume, supervisor_id, principal, db, runtime, clock)


@supervisors_router.post("/{supervisor_id}/stop", response_model=SupervisorRead)
async def stop_supervisor(supervisor_id: uuid.UUID, principal: WritePrincipal, db: DbDep, runtime: RuntimeDep,
                          clock: ClockDep) -> SupervisorRead:
    """Any state but TERMINATED -> TERMINATED; its heartbeat agent stops."""
    return await _lifecycle(service.stop, supervisor_id, principal, db, runtime, clock)


@supervisors_router.get("/{supervisor_id}/health", response_model=HealthRead)
async def supervisor_health(supervisor_id: uuid.UUID, principal: ReadPrincipal, db: DbDep, settings: SettingsDep,
                            clock: ClockDep) -> HealthRead:
    """Heartbeat freshness (seconds, missed intervals) and the health of its teams' agents."""
    async with db.read_session() as session:
        return await service.get_health(session, principal=principal, supervisor_id=supervisor_id,
                                        settings=settings, clock=clock)


@supervisors_router.get("/{supervisor_id}/status", response_model=TeamStatusRead)
async def supervisor_team_status(supervisor_id: uuid.UUID, principal: ReadPrincipal, db: DbDep) -> TeamStatusRead:
    """Its teams with member counts (TSK-003 ``get_team_status``)."""
    async with db.read_session() as session:
        return await service.get_team_status(session, principal=principal, supervisor_id=supervisor_id)


@supervisors_router.get("/{supervisor_id}/hierarchy", response_model=HierarchyNode)
async def supervisor_hierarchy(supervisor_id: uuid.UUID, principal: ReadPrincipal, db: DbDep) -> HierarchyNode:
    """The supervision subtree rooted at this supervisor."""
    async with db.read_session() as session:
        return await service.get_hierarchy(session, principal=principal, supervisor_id=supervisor_id)


@supervisors_router.post("/{supervisor_id}/teams", status_code=201, response_model=TeamRead)
async def create_team(supervisor_id: uuid.UUID, body: TeamCreate, principal: WritePrincipal, db: DbDep,
                      clock: ClockDep) -> TeamRead:
    async with db.session() as session:
        team = await service.create_team(session, principal=principal, supervisor_id=supervisor_id, data=body,
                                         clock=clock)
        return TeamRead.model_validate(team)


@supervisors_router.get("/{supervisor_id}/teams", response_model=Page[TeamRead])
async def list_teams(supervisor_id: uuid.UUID, principal: ReadPrincipal, db: DbDep, page: PageDep
                     ) -> Page[TeamRead]:
    async with db.read_session() as session:
        rows, total = await service.list_teams(session, principal=principal, supervisor_id=supervisor_id,
                                               limit=page.limit, offset=page.offset)
        return Page(items=[TeamRead.model_validate(r) for r in rows], total=total, limit=page.limit,
                    offset=page.offset)


# --- teams -------------------------------------------------------------------------------------


@teams_router.get("/{team_id}", response_model=TeamRead)
async def get_team(team_id: uuid.UUID, principal: ReadPrincipal, db: DbDep) -> TeamRead:
    async with db.read_session() as session:
        return TeamRead.model_validate(await service.get_team(session, principal=principal, team_id=team_id))


@teams_router.patch("/{team_id}", response_model=TeamRead)
async def update_team(team_id: uuid.UUID, body: TeamUpdate, principal: WritePrincipal, db: DbDep,
                      clock: ClockDep) -> TeamRead:
    async with db.session() as session:
        team = await service.update_team(session, principal=principal, team_id=team_id, data=body, clock=clock)
        return TeamRead.model_validate(team)


@teams_router.delete("/{team_id}", status_code=204, response_class=Response)
async def delete_team(team_id: uuid.UUID, principal: WritePrincipal, db: DbDep, clock: ClockDep) -> Response:
    """Delete a team and its membership history; its active members become free."""
    async with db.session() as session:
        await service.delete_team(session, principal=principal, team_id=team_id, clock=clock)
    return Response(status_code=204)


@teams_router.post("/{team_id}/members", status_code=201, response_model=MemberRead)
async def add_member(team_id: uuid.UUID, body: MemberCreate, principal: WritePrincipal, db: DbDep,
                     clock: ClockDep) -> MemberRead:
    """Add a worker of the same workspace; 409 if it is an active member of any team."""
    async with db.session() as session:
        member = await service.add_member(session, principal=principal, team_id=team_id, data=body, clock=clock)
        return MemberRead.model_validate(member)


@teams_router.delete("/{team_id}/members/{agent_id}", response_model=MemberRead)
async def remove_member(team_id: uuid.UUID, agent_id: uuid.UUID, principal: WritePrincipal, db: DbDep,
                        clock: ClockDep) -> MemberRead:
    """End an active membership (sets ``left_at``; the row stays as history)."""
    async with db.session() as session:
        member = await service.remove_member(session, principal=principal, team_id=team_id, agent_id=agent_id,
                                             clock=clock)
        return MemberRead.model_validate(member)


@teams_router.get("/{team_id}/members", response_model=Page[MemberRead])
async def list_members(team_id: uuid.UUID, principal: ReadPrincipal, db: DbDep, page: PageDep,
                       include_past: Annotated[bool, Query()] = False) -> Page[MemberRead]:
    """Active members by join time; ``include_past=true`` adds those who left."""
    async with db.read_session() as session:
        rows, total = await service.list_members(session, principal=principal, team_id=team_id,
                                                 include_past=include_past, limit=page.limit, offset=page.offset)
        return Page(items=[MemberRead.model_validate(r) for r in rows], total=total, limit=page.limit,
                    offset=page.offset)


routers = [supervisors_router, teams_router]
