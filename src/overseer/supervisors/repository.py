"""Every query over supervisors, teams and members.

Caller-facing reads take a :class:`Principal` and go through ``db.repository.scoped``/``get_scoped``
(the one tenant filter). Functions without a principal are for the runtime, which acts for every
workspace, or take ids the caller already loaded through a scoped read.

Status and heartbeat writes are compare-and-set ``UPDATE``s, so two writers (an API request and the
runtime sweep, or two nodes) can never both win a change: the loser sees ``False``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from overseer.auth.tokens import Principal
from overseer.db.repository import get_scoped, paginate, scoped
from overseer.events.models import Event
from overseer.supervisors.models import Supervisor, SupervisorTeam, SupervisorTeamMember
from overseer.workers.models import Worker

# --- supervisors -------------------------------------------------------------------------------


async def get_supervisor(session: AsyncSession, principal: Principal, supervisor_id: uuid.UUID,
                         *, for_update: bool = False) -> Supervisor:
    """The supervisor if the caller may see it. Raises NotFound (404)."""
    return await get_scoped(session, Supervisor, supervisor_id, principal, entity="supervisor",
                            for_update=for_update)


async def find_supervisor(session: AsyncSession, principal: Principal, supervisor_id: uuid.UUID
                          ) -> Supervisor | None:
    """The supervisor if the caller may see it, else None."""
    stmt = scoped(select(Supervisor).where(Supervisor.id == supervisor_id), Supervisor, principal)
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_supervisors(session: AsyncSession, principal: Principal, *, status: str | None,
                           limit: int, offset: int) -> tuple[list[Supervisor], int]:
    """A page of visible supervisors, oldest first; ``status`` filters when given."""
    stmt = scoped(select(Supervisor), Supervisor, principal).order_by(Supervisor.created_at, Supervisor.id)
    if status is not None:
        stmt = stmt.where(Supervisor.status == status)
    return await paginate(session, stmt, limit=limit, offset=offset)


async def child_ids(session: AsyncSession, supervisor_id: uuid.UUID) -> list[uuid.UUID]:
    """Ids of the direct children of a supervisor (children share its workspace)."""
    stmt = select(Supervisor.id).where(Supervisor.parent_id == supervisor_id).order_by(Supervisor.id)
    return list((await session.execute(stmt)).scalars())


async def subtree(session: AsyncSession, root: Supervisor) -> list[Supervisor]:
    """``root`` and every descendant (recursive CTE, same workspace), ordered by level then name."""
    tree = (
        select(Supervisor.id)
        .where(Supervisor.id == root.id)
        .cte("subtree", recursive=True)
    )
    # UNION (not ALL) so a corrupt cycle could never make the walk endless.
    tree = tree.union(
        select(Supervisor.id)
        .join(tree, Supervisor.parent_id == tree.c.id)
        .where(Supervisor.workspace_id == root.workspace_id)
    )
    stmt = (select(Supervisor).where(Supervisor.id.in_(select(tree.c.id)))
            .order_by(Supervisor.hierarchy_level, Supervisor.name, Supervisor.id))
    return list((await session.execute(stmt)).scalars())


async def set_status(session: AsyncSession, supervisor: Supervisor, *, to: str, at: datetime,
                     guard: Sequence[ColumnElement[bool]] = ()) -> bool:
    """Move ``supervisor`` from its loaded status to ``to`` if the row still has that status.

    Every ``guard`` must hold too. Sets ``updated_at`` to ``at`` and updates the loaded object.
    Returns False, changing nothing, when another writer changed the row first.
    """
    stmt = (
        update(Supervisor)
        .where(Supervisor.id == supervisor.id, Supervisor.status == supervisor.status, *guard)
        .values(status=to, updated_at=at)
        .returning(Supervisor.id)
        .execution_options(synchronize_session=False)
    )
    if (await session.execute(stmt)).first() is None:
        return False
    set_committed_value(supervisor, "status", to)
    set_committed_value(supervisor, "updated_at", at)
    return True


async def current_status(session: AsyncSession, supervisor_id: uuid.UUID) -> str | None:
    """The stored status (None if the row is gone), bypassing the loaded object."""
    stmt = select(Supervisor.status).where(Supervisor.id == supervisor_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def delete_supervisor(session: AsyncSession, supervisor: Supervisor) -> None:
    """Delete the row; the database cascades to its teams and their members."""
    await session.execute(delete(Supervisor).where(Supervisor.id == supervisor.id))


async def write_heartbeat(session: AsyncSession, supervisor_id: uuid.UUID, *, at: datetime,
                          running: frozenset[str], health_metrics: dict[str, Any] | None) -> bool:
    """Record a heartbeat at ``at`` (and ``health_metrics`` when given) if the status is in ``running``.

    ``updated_at`` is left alone: it tracks changes a person made, not liveness. Returns False when
    the supervisor is gone or no longer running.
    """
    values: dict[str, Any] = {"last_heartbeat": at, "updated_at": Supervisor.updated_at}
    if health_metrics is not None:
        values["health_metrics"] = health_metrics
    stmt = (
        update(Supervisor)
        .where(Supervisor.id == supervisor_id, Supervisor.status.in_(running))
        .values(**values)
        .returning(Supervisor.id)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(stmt)).first() is not None


async def supervisors_in(session: AsyncSession, statuses: frozenset[str]) -> list[Supervisor]:
    """Every supervisor, in every workspace, whose status is in ``statuses`` (runtime only)."""
    stmt = select(Supervisor).where(Supervisor.status.in_(statuses)).order_by(Supervisor.id)
    return list((await session.execute(stmt)).scalars())


async def get_supervisor_unscoped(session: AsyncSession, supervisor_id: uuid.UUID, *, for_update: bool = False
                                  ) -> Supervisor | None:
    """The supervisor by id, in any workspace (runtime only)."""
    stmt = select(Supervisor).where(Supervisor.id == supervisor_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def status_before_unresponsive(session: AsyncSession, supervisor_id: uuid.UUID) -> str | None:
    """The state a supervisor left when it last became UNRESPONSIVE, read from its event log."""
    stmt = (
        select(Event.payload)
        .where(Event.entity_type == "supervisor", Event.entity_id == str(supervisor_id),
               Event.event_type == "supervisor.unresponsive")
        .order_by(Event.id.desc())
        .limit(1)
    )
    payload = (await session.execute(stmt)).scalar_one_or_none()
    return None if payload is None else payload.get("from_state")


# --- teams and members -------------------------------------------------------------------------


async def get_team(session: AsyncSession, principal: Principal, team_id: uuid.UUID) -> SupervisorTeam:
    """The team if the caller may see it. Raises NotFound (404)."""
    return await get_scoped(session, SupervisorTeam, team_id, principal, entity="team")


async def list_teams(session: AsyncSession, principal: Principal, supervisor_id: uuid.UUID, *,
                     limit: int, offset: int) -> tuple[list[SupervisorTeam], int]:
    """A page of a supervisor's teams, oldest first."""
    stmt = (scoped(select(SupervisorTeam), SupervisorTeam, principal)
            .where(SupervisorTeam.supervisor_id == supervisor_id)
            .order_by(SupervisorTeam.created_at, SupervisorTeam.id))
    return await paginate(session, stmt, limit=limit, offset=offset)


async def active_agent_ids(session: AsyncSession, team_id: uuid.UUID) -> list[uuid.UUID]:
    """Agents that are active members of a team."""
    stmt = (select(SupervisorTeamMember.agent_id)
            .where(SupervisorTeamMember.team_id == team_id, SupervisorTeamMember.left_at.is_(None))
            .order_by(SupervisorTeamMember.joined_at))
    return list((await session.execute(stmt)).scalars())


async def delete_team(session: AsyncSession, team: SupervisorTeam) -> None:
    """Delete the row; the database cascades to its members."""
    await session.execute(delete(SupervisorTeam).where(SupervisorTeam.id == team.id))


async def active_membership(session: AsyncSession, agent_id: uuid.UUID
                            ) -> tuple[SupervisorTeamMember, SupervisorTeam] | None:
    """The agent's active membership and its team, if any (an agent has at most one)."""
    stmt = (
        select(SupervisorTeamMember, SupervisorTeam)
        .join(SupervisorTeam, SupervisorTeam.id == SupervisorTeamMember.team_id)
        .where(SupervisorTeamMember.agent_id == agent_id, SupervisorTeamMember.left_at.is_(None))
    )
    row = (await session.execute(stmt)).first()
    return None if row is None else (row[0], row[1])


async def get_active_member(session: AsyncSession, team_id: uuid.UUID, agent_id: uuid.UUID
                            ) -> SupervisorTeamMember | None:
    stmt = select(SupervisorTeamMember).where(
        SupervisorTeamMember.team_id == team_id, SupervisorTeamMember.agent_id == agent_id,
        SupervisorTeamMember.left_at.is_(None),
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_members(session: AsyncSession, principal: Principal, team_id: uuid.UUID, *, include_past: bool,
                       limit: int, offset: int) -> tuple[list[SupervisorTeamMember], int]:
    """A page of a team's memberships by join time; past ones (``left_at`` set) only if asked."""
    stmt = (scoped(select(SupervisorTeamMember), SupervisorTeamMember, principal)
            .where(SupervisorTeamMember.team_id == team_id)
            .order_by(SupervisorTeamMember.joined_at, SupervisorTeamMember.id))
    if not include_past:
        stmt = stmt.where(SupervisorTeamMember.left_at.is_(None))
    return await paginate(session, stmt, limit=limit, offset=offset)


async def find_worker(session: AsyncSession, principal: Principal, worker_id: uuid.UUID) -> Worker | None:
    """The worker (agent) if the caller may see it, else None."""
    stmt = scoped(select(Worker).where(Worker.id == worker_id), Worker, principal)
    return (await session.execute(stmt)).scalar_one_or_none()


async def team_counts(session: AsyncSession, supervisor_id: uuid.UUID
                      ) -> list[tuple[SupervisorTeam, int, int]]:
    """Each team of a supervisor with (all memberships ever, active memberships), oldest team first."""
    active = func.count(SupervisorTeamMember.id).filter(SupervisorTeamMember.left_at.is_(None))
    stmt = (
        select(SupervisorTeam, func.count(SupervisorTeamMember.id), active)
        .outerjoin(SupervisorTeamMember, SupervisorTeamMember.team_id == SupervisorTeam.id)
        .where(SupervisorTeam.supervisor_id == supervisor_id)
        .group_by(SupervisorTeam.id)
        .order_by(SupervisorTeam.created_at, SupervisorTeam.id)
    )
    return [(team, int(total), int(n_active)) for team, total, n_active in (await session.execute(stmt)).all()]


async def agents_last_seen(session: AsyncSession, supervisor_id: uuid.UUID) -> list[datetime | None]:
    """``last_event_at`` of every active member of the supervisor's teams (None: never seen or no worker row)."""
    stmt = (
        select(Worker.last_event_at)
        .select_from(SupervisorTeamMember)
        .join(SupervisorTeam, SupervisorTeam.id == SupervisorTeamMember.team_id)
        .outerjoin(Worker, and_(Worker.id == SupervisorTeamMember.agent_id,
                                Worker.workspace_id == SupervisorTeamMember.workspace_id))
        .where(SupervisorTeam.supervisor_id == supervisor_id, SupervisorTeamMember.left_at.is_(None))
    )
    return list((await session.execute(stmt)).scalars())
