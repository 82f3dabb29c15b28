"""Workspace rules: names are unique, root paths are absolute directories (created if missing)."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from overseer.auth.tokens import Principal
from overseer.db.repository import scoped
from overseer.errors import Conflict, NotFound, ValidationFailed
from overseer.events import log as event_log
from overseer.workspaces.models import Workspace
from overseer.workspaces.schemas import WorkspaceCreate, WorkspaceSettings


async def create(session: AsyncSession, *, data: WorkspaceCreate, actor: str) -> Workspace:
    """Create a workspace. Raises ValidationFailed (relative path), Conflict (name taken)."""
    root = Path(data.root_path).expanduser()
    if not root.is_absolute():
        raise ValidationFailed("root_path must be absolute", details={"fields": [{"loc": ["body", "root_path"]}]})
    if (await session.execute(select(Workspace.id).where(Workspace.name == data.name))).first():
        raise Conflict(f"Workspace name {data.name!r} is taken", details={"name": data.name})
    root.mkdir(parents=True, exist_ok=True)
    ws = Workspace(id=uuid.uuid4(), name=data.name, root_path=str(root), settings=data.settings)
    session.add(ws)
    await session.flush()
    await event_log.append(session, workspace_id=ws.id, event_type="workspace.created", entity_type="workspace",
                           entity_id=ws.id, payload={"name": ws.name, "root_path": ws.root_path, "actor": actor})
    return ws


async def list_visible(session: AsyncSession, *, principal: Principal) -> list[Workspace]:
    ws = (await session.execute(scoped_ws(select(Workspace), principal).order_by(Workspace.name))).scalars()
    return list(ws)


def scoped_ws(stmt, principal: Principal):  # type: ignore[no-untyped-def]
    """Workspaces are filtered by their own id (they have no ``workspace_id`` column)."""
    if principal.workspace_ids is None:
        return stmt
    return stmt.where(Workspace.id.in_(principal.workspace_ids))


async def get(session: AsyncSession, *, principal: Principal, workspace_id: uuid.UUID) -> Workspace:
    ws = (await session.execute(scoped_ws(select(Workspace).where(Workspace.id == workspace_id), principal))).scalar()
    if ws is None:
        raise NotFound("workspace", workspace_id)
    return ws


async def resolve(session: AsyncSession, *, principal: Principal, ref: str) -> Workspace:
    """Find a visible workspace by id or by name."""
    try:
        return await get(session, principal=principal, workspace_id=uuid.UUID(ref))
    except ValueError:
        pass
    ws = (await session.execute(scoped_ws(select(Workspace).where(Workspace.name == ref), principal))).scalar()
    if ws is None:
        raise NotFound("workspace", ref)
    return ws


async def update_settings(session: AsyncSession, *, principal: Principal, workspace_id: uuid.UUID,
                          data: WorkspaceSettings) -> Workspace:
    """Replace a visible workspace's settings. Raises NotFound."""
    ws = await get(session, principal=principal, workspace_id=workspace_id)
    ws.settings = data.model_dump(mode="json")
    await event_log.append(session, workspace_id=ws.id, event_type="workspace.settings_changed",
                           entity_type="workspace", entity_id=ws.id,
                           payload={"by": principal.subject, "webhooks": len(data.webhooks),
                                    "approval_timeout_s": data.approval_timeout_s})
    return ws


__all__ = ["create", "get", "list_visible", "resolve", "scoped", "scoped_ws", "update_settings"]
