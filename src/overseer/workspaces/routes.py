"""``/api/v1/workspaces`` (issue 2 item 9)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from overseer.auth.deps import Admin, AnyPrincipal, SupervisorWrite
from overseer.deps import DbDep
from overseer.errors import COMMON_ERRORS
from overseer.workspaces import service
from overseer.workspaces.schemas import WorkspaceCreate, WorkspaceRead, WorkspaceSettings

router = APIRouter(prefix="/api/v1/workspaces", tags=["workspaces"], responses=COMMON_ERRORS)


@router.post("", status_code=201, response_model=WorkspaceRead)
async def create_workspace(body: WorkspaceCreate, principal: Admin, db: DbDep) -> WorkspaceRead:
    """Create a workspace (admin)."""
    async with db.session() as session:
        ws = await service.create(session, data=body, actor=principal.subject)
        return WorkspaceRead.model_validate(ws)


@router.get("", response_model=list[WorkspaceRead])
async def list_workspaces(principal: AnyPrincipal, db: DbDep) -> list[WorkspaceRead]:
    """The workspaces the token covers."""
    async with db.read_session() as session:
        return [WorkspaceRead.model_validate(w) for w in await service.list_visible(session, principal=principal)]


@router.get("/{workspace_id}", response_model=WorkspaceRead)
async def get_workspace(workspace_id: uuid.UUID, principal: AnyPrincipal, db: DbDep) -> WorkspaceRead:
    async with db.read_session() as session:
        return WorkspaceRead.model_validate(await service.get(session, principal=principal, workspace_id=workspace_id))


@router.put("/{workspace_id}/settings", response_model=WorkspaceRead)
async def put_settings(workspace_id: uuid.UUID, body: WorkspaceSettings, principal: SupervisorWrite, db: DbDep
                       ) -> WorkspaceRead:
    """Replace the workspace's settings: outbound webhooks, the approval timeout and its decision."""
    async with db.session() as session:
        ws = await service.update_settings(session, principal=principal, workspace_id=workspace_id, data=body)
        return WorkspaceRead.model_validate(ws)
