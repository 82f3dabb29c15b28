"""Repository helpers. The tenant filter lives here and only here.

``scoped(stmt, model, principal)`` restricts any statement over a workspace-owned model to the
caller's workspaces. Every list/get of a workspace-owned row goes through it; an object in another
workspace is indistinguishable from a missing one (404, never 403).
"""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from overseer.auth.tokens import Principal
from overseer.errors import NotFound

T = TypeVar("T")
S = TypeVar("S", bound=Select)  # type: ignore[type-arg]


def scoped(stmt: S, model: Any, principal: Principal) -> S:
    """Add the caller's workspace filter to ``stmt`` (a no-op for an all-workspaces admin)."""
    if principal.workspace_ids is None:
        return stmt
    return stmt.where(model.workspace_id.in_(principal.workspace_ids))


async def get_scoped(session: AsyncSession, model: type[T], entity_id: uuid.UUID, principal: Principal,
                     *, entity: str, for_update: bool = False) -> T:
    """Load one row the caller may see, or raise :class:`NotFound`."""
    stmt = scoped(select(model).where(model.id == entity_id), model, principal)  # type: ignore[attr-defined]
    if for_update:
        stmt = stmt.with_for_update()
    row = (await session.execute(stmt)).scalar_one_or_none()
    if row is None:
        raise NotFound(entity, entity_id)
    return row


async def paginate(session: AsyncSession, stmt: Select[Any], *, limit: int, offset: int) -> tuple[list[Any], int]:
    """Run ``stmt`` with limit/offset; returns (rows, total count without limit)."""
    total = (await session.execute(select(func.count()).select_from(stmt.order_by(None).subquery()))).scalar_one()
    rows = (await session.execute(stmt.limit(limit).offset(offset))).scalars().all()
    return list(rows), int(total)
