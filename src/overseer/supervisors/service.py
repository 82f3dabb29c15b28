"""Supervisor, team and membership rules (TKT-001, TSK-003; issue items 6 and 8).

Contracts:
- Every status change goes through :func:`_transition`: it checks ``states.transition``, writes the
  row with a compare-and-set, and appends a ``supervisor.<verb>`` event in the same transaction
  (published after commit by ``Database.session()``). Nothing else writes ``supervisors.status``.
- Functions only ``flush()``; the caller's ``db.session()`` commits.
- Functions taking a ``principal`` serve the API: another workspace's rows are 404. Functions
  without one (:func:`heartbeat`, :func:`sweep`, :func:`fail`) serve the runtime, which acts for
  every workspace.
- Time comes from the injected :class:`Clock`.

The supervision tree: ``hierarchy_level`` = parent's + 1, levels ``0 .. supervisor_max_hierarchy_levels
- 1``, parent in the same workspace, no cycles. DELETE is refused (409) while a supervisor runs
(ACTIVE, PAUSED, UNRESPONSIVE: stop it first) or has children; its teams and their membership history
go with it (their events stay in the log).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from overseer.auth.tokens import Principal
from overseer.clock import Clock
from overseer.config import Settings
from overseer.errors import Conflict, InvalidStateTransition, MaxDepthExceeded, NotFound, ValidationFailed
from overseer.events import log as event_log
from overseer.supervisors import health, states
from overseer.supervisors import repository as repo
from overseer.supervisors.models import Supervisor, SupervisorTeam, SupervisorTeamMember
from overseer.supervisors.models import SupervisorStatus as S
from overseer.supervisors.schemas import (
    AgentHealthRead,
    HealthRead,
    HierarchyNode,
    MemberCreate,
    SupervisorCreate,
    SupervisorUpdate,
    TeamCreate,
    TeamStatusItem,
    TeamStatusRead,
    TeamUpdate,
)
from overseer.workspaces import service as workspaces

RUNTIME_ACTOR = "runtime"


def _invalid(field: str, message: str, **details: Any) -> ValidationFailed:
    """A 400 in the same shape as request validation errors (``details.fields[].loc``)."""
    return ValidationFailed(message, details={"fields": [{"loc": ["body", field], "msg": message}], **details})


# --- the one status writer ---------------------------------------------------------------------


async def _transition(session: AsyncSession, supervisor: Supervisor, *, to: S, at: datetime, actor: str,
                      event: str | None = None, payload: dict[str, Any] | None = None,
                      guard: Sequence[ColumnElement[bool]] = ()) -> bool:
    """Validate, write and record ``supervisor.status -> to``.

    Returns False, writing nothing, if another writer changed the row since it was loaded (or a
    ``guard`` no longer holds). Raises InvalidStateTransition (409) for an illegal change.
    """
    from_state = supervisor.status
    event_type = states.transition(supervisor.id, from_state, to, event=event)
    if not await repo.set_status(session, supervisor, to=to, at=at, guard=guard):
        return False
    await event_log.append(
        session, workspace_id=supervisor.workspace_id, event_type=event_type, entity_type="supervisor",
        entity_id=supervisor.id, at=at,
        payload={"from_state": str(from_state), "to_state": str(to), "actor": actor, **(payload or {})},
    )
    return True


# --- supervisors (API) -------------------------------------------------------------------------


async def _resolve_workspace(session: AsyncSession, principal: Principal, workspace_id: uuid.UUID | None
                             ) -> uuid.UUID:
    if workspace_id is None:
        workspace_id = principal.default_workspace_id
        if workspace_id is None:
            raise _invalid("workspace_id", "workspace_id is required: the token covers several workspaces")
    try:
        await workspaces.get(session, principal=principal, workspace_id=workspace_id)
    except NotFound:
        raise _invalid("workspace_id", f"workspace {workspace_id} does not exist") from None
    return workspace_id


async def _load_parent(session: AsyncSession, principal: Principal, parent_id: uuid.UUID,
                       workspace_id: uuid.UUID) -> Supervisor:
    parent = await repo.find_supervisor(session, principal, parent_id)
    if parent is None:
        raise _invalid("parent_id", f"parent supervisor {parent_id} does not exist")
    if parent.workspace_id != workspace_id:
        raise _invalid("parent_id", "parent supervisor must be in the same workspace")
    return parent


def _check_level(level: int, settings: Settings, parent_id: uuid.UUID | None) -> None:
    max_levels = settings.supervisor_max_hierarchy_levels
    if level >= max_levels:
        raise MaxDepthExceeded(
            f"A supervision tree has at most {max_levels} levels (0..{max_levels - 1})",
            details={"parent_id": str(parent_id), "level": level, "max_levels": max_levels},
        )


async def create(session: AsyncSession, *, principal: Principal, data: SupervisorCreate, settings: Settings,
                 clock: Clock) -> Supervisor:
    """Create a SPAWNING supervisor (TKT-001 "create"; issue item 6).

    Raises ValidationFailed (400: no workspace given for a multi-workspace token, unknown workspace,
    unknown/invisible parent, parent in another workspace), MaxDepthExceeded (400: a level past
    ``supervisor_max_hierarchy_levels``).
    """
    workspace_id = await _resolve_workspace(session, principal, data.workspace_id)
    level = 0
    if data.parent_id is not None:
        parent = await _load_parent(session, principal, data.parent_id, workspace_id)
        level = parent.hierarchy_level + 1
        _check_level(level, settings, data.parent_id)
    now = clock.now()
    supervisor = Supervisor(
        id=uuid.uuid4(), workspace_id=workspace_id, name=data.name, description=data.description,
        status=S.SPAWNING, config=data.config, parent_id=data.parent_id, hierarchy_level=level,
        policy_version_id=data.policy_version_id, health_metrics={}, created_at=now, updated_at=now,
    )
    session.add(supervisor)
    await session.flush()
    await event_log.append(session, workspace_id=workspace_id, event_type="supervisor.created",
                           entity_type="supervisor", entity_id=supervisor.id, at=now,
                           payload={"name": supervisor.name, "parent_id": supervisor.parent_id,
                                    "hierarchy_level": level, "actor": principal.subject})
    return supervisor


async def get(session: AsyncSession, *, principal: Principal, supervisor_id: uuid.UUID) -> Supervisor:
    """One visible supervisor. Raises NotFound (404, also for another workspace's)."""
    return await repo.get_supervisor(session, principal, supervisor_id)


async def list_page(session: AsyncSession, *, principal: Principal, status: S | None, limit: int, offset: int
                    ) -> tuple[list[Supervisor], int]:
    """A page of visible supervisors (oldest first) and the total; ``status`` filters."""
    return await repo.list_supervisors(session, principal, status=status, limit=limit, offset=offset)


async def update(session: AsyncSession, *, principal: Principal, supervisor_id: uuid.UUID,
                 data: SupervisorUpdate, settings: Settings, clock: Clock) -> Supervisor:
    """Apply a PATCH: fields sent are set (``null`` clears), fields left out are unchanged.

    Moving ``parent_id`` re-levels the whole subtree. Raises NotFound (404), ValidationFailed (400:
    unknown parent, parent in another workspace, a cycle), MaxDepthExceeded (400: the subtree would
    reach past the last level).
    """
    supervisor = await repo.get_supervisor(session, principal, supervisor_id, for_update=True)
    changed = sorted(data.model_fields_set)
    if not changed:
        return supervisor
    for field in ("name", "description", "config", "policy_version_id"):
        if field in data.model_fields_set:
            setattr(supervisor, field, getattr(data, field))
    if "parent_id" in data.model_fields_set and data.parent_id != supervisor.parent_id:
        await _reparent(session, principal, supervisor, data.parent_id, settings)
    now = clock.now()
    supervisor.updated_at = now
    await session.flush()
    await event_log.append(session, workspace_id=supervisor.workspace_id, event_type="supervisor.updated",
                           entity_type="supervisor", entity_id=supervisor.id, at=now,
                           payload={"fields": changed, "actor": principal.subject})
    return supervisor


async def _reparent(session: AsyncSession, principal: Principal, supervisor: Supervisor,
                    parent_id: uuid.UUID | None, settings: Settings) -> None:
    tree = await repo.subtree(session, supervisor)
    if parent_id is None:
        new_level = 0
    else:
        if parent_id in {node.id for node in tree}:
            raise _invalid("parent_id", "parent_id would make a cycle: it is this supervisor or a descendant",
                           id=str(supervisor.id), parent_id=str(parent_id))
        parent = await _load_parent(session, principal, parent_id, supervisor.workspace_id)
        new_level = parent.hierarchy_level + 1
    height = max(node.hierarchy_level for node in tree) - supervisor.hierarchy_level
    _check_level(new_level + height, settings, parent_id)
    delta = new_level - supervisor.hierarchy_level
    for node in tree:
        node.hierarchy_level += delta
    supervisor.parent_id = parent_id


async def delete(session: AsyncSession, *, principal: Principal, supervisor_id: uuid.UUID, clock: Clock) -> None:
    """Delete a supervisor that is not running and has no children, with its teams and memberships.

    Raises NotFound (404), Conflict (409: ACTIVE/PAUSED/UNRESPONSIVE, stop it first; or it has
    child supervisors).
    """
    supervisor = await repo.get_supervisor(session, principal, supervisor_id, for_update=True)
    if supervisor.status not in states.DELETABLE:
        raise Conflict(
            f"Supervisor {supervisor.id} is {supervisor.status}; stop it before deleting it",
            details={"id": str(supervisor.id), "current_state": supervisor.status,
                     "deletable_states": sorted(states.DELETABLE)},
        )
    children = await repo.child_ids(session, supervisor.id)
    if children:
        raise Conflict(f"Supervisor {supervisor.id} has child supervisors; delete or move them first",
                       details={"id": str(supervisor.id), "children": [str(c) for c in children]})
    await event_log.append(session, workspace_id=supervisor.workspace_id, event_type="supervisor.deleted",
                           entity_type="supervisor", entity_id=supervisor.id, at=clock.now(),
                           payload={"name": supervisor.name, "actor": principal.subject})
    await repo.delete_supervisor(session, supervisor)


async def _command(session: AsyncSession, *, principal: Principal, supervisor_id: uuid.UUID, to: S, event: str,
                   clock: Clock) -> Supervisor:
    supervisor = await repo.get_supervisor(session, principal, supervisor_id, for_update=True)
    if not await _transition(session, supervisor, to=to, at=clock.now(), actor=principal.subject, event=event):
        current = await repo.current_status(session, supervisor.id)
        raise InvalidStateTransition("supervisor", supervisor.id, str(current), str(to))
    return supervisor


async def start(session: AsyncSession, *, principal: Principal, supervisor_id: uuid.UUID, clock: Clock
                ) -> Supervisor:
    """SPAWNING (or FAILED, a restart) -> ACTIVE; event ``supervisor.started`` (TSK-003 ``start``).

    Raises NotFound (404), InvalidStateTransition (409).
    """
    return await _command(session, principal=principal, supervisor_id=supervisor_id, to=S.ACTIVE,
                          event=states.STARTED, clock=clock)


async def pause(session: AsyncSession, *, principal: Principal, supervisor_id: uuid.UUID, clock: Clock
                ) -> Supervisor:
    """ACTIVE -> PAUSED: keeps heartbeating, stops monitoring; event ``supervisor.paused`` (TSK-003).

    Raises NotFound (404), InvalidStateTransition (409).
    """
    return await _command(session, principal=principal, supervisor_id=supervisor_id, to=S.PAUSED,
                          event=states.PAUSED, clock=clock)


async def resume(session: AsyncSession, *, principal: Principal, supervisor_id: uuid.UUID, clock: Clock
                 ) -> Supervisor:
    """PAUSED -> ACTIVE; event ``supervisor.resumed`` (TSK-003). Raises NotFound (404), InvalidStateTransition (409)."""
    return await _command(session, principal=principal, supervisor_id=supervisor_id, to=S.ACTIVE,
                          event=states.RESUMED, clock=clock)


async def stop(session: AsyncSession, *, principal: Principal, supervisor_id: uuid.UUID, clock: Clock
               ) -> Supervisor:
    """Any non-final state -> TERMINATED; event ``supervisor.stopped`` (TSK-003 ``stop``).

    Raises NotFound (404), InvalidStateTransition (409: already TERMINATED).
    """
    return await _command(session, principal=principal, supervisor_id=supervisor_id, to=S.TERMINATED,
                          event=states.STOPPED, clock=clock)


async def get_health(session: AsyncSession, *, principal: Principal, supervisor_id: uuid.UUID,
                     settings: Settings, clock: Clock) -> HealthRead:
    """Heartbeat freshness and team agent health, computed now (TKT-001 ``GET .../health``).

    Agents are the active members of the supervisor's teams; healthy = worker ``last_event_at``
    within ``agent_healthy_window_s``. See :mod:`overseer.supervisors.health` for ``missed_heartbeats``.
    Raises NotFound (404).
    """
    supervisor = await repo.get_supervisor(session, principal, supervisor_id)
    now = clock.now()
    interval = settings.supervisor_heartbeat_interval_s
    agents = health.count_agents(await repo.agents_last_seen(session, supervisor.id), now,
                                 settings.agent_healthy_window_s)
    last = supervisor.last_heartbeat
    missed = None
    if supervisor.status in states.RUNNING:
        missed = health.missed_heartbeats(last or supervisor.updated_at, now, interval)
    return HealthRead(
        supervisor_id=supervisor.id, status=S(supervisor.status), last_heartbeat=last,
        seconds_since_heartbeat=None if last is None else max(0.0, (now - last).total_seconds()),
        missed_heartbeats=missed, heartbeat_interval_s=interval,
        max_missed_heartbeats=settings.supervisor_max_missed_heartbeats,
        agents=AgentHealthRead(**agents.as_dict()), checked_at=now,
    )


async def get_team_status(session: AsyncSession, *, principal: Principal, supervisor_id: uuid.UUID
                          ) -> TeamStatusRead:
    """Teams with member counts (TSK-003 ``get_team_status``). Raises NotFound (404)."""
    supervisor = await repo.get_supervisor(session, principal, supervisor_id)
    teams = [
        TeamStatusItem(team_id=team.id, team_name=team.name, objective=team.objective, member_count=total,
                       active_members=active)
        for team, total, active in await repo.team_counts(session, supervisor.id)
    ]
    return TeamStatusRead(supervisor_id=supervisor.id, status=S(supervisor.status), teams=teams,
                          total_teams=len(teams), total_members=sum(t.active_members for t in teams))


async def get_hierarchy(session: AsyncSession, *, principal: Principal, supervisor_id: uuid.UUID
                        ) -> HierarchyNode:
    """The supervision subtree rooted at a supervisor (``parent_id`` on each node leads up). Raises NotFound (404)."""
    supervisor = await repo.get_supervisor(session, principal, supervisor_id)
    nodes = {
        s.id: HierarchyNode(id=s.id, name=s.name, status=S(s.status), hierarchy_level=s.hierarchy_level,
                            parent_id=s.parent_id)
        for s in await repo.subtree(session, supervisor)
    }
    for node in nodes.values():  # subtree() orders by level, so children stay in name order
        if node.id != supervisor.id and node.parent_id in nodes:
            nodes[node.parent_id].children.append(node)
    return nodes[supervisor.id]


# --- supervisors (runtime) ---------------------------------------------------------------------


async def heartbeat(session: AsyncSession, *, supervisor_id: uuid.UUID, settings: Settings, clock: Clock
                    ) -> S | None:
    """Record one heartbeat of a running supervisor (TSK-003 ``_send_heartbeat``); runtime only.

    - UNRESPONSIVE: heartbeats resumed, so it goes back to the state it left (``supervisor.recovered``).
    - ACTIVE: monitors: ``health_metrics`` = ``{computed_at, agents: {total, healthy, unhealthy},
      monitoring: true}``.
    - PAUSED: heartbeats without monitoring (``health_metrics.monitoring`` = false, counts kept).

    Returns the status after the heartbeat, or None when the supervisor no longer runs (deleted,
    SPAWNING, FAILED, TERMINATED): its agent should exit.
    """
    supervisor = await repo.get_supervisor_unscoped(session, supervisor_id, for_update=True)
    if supervisor is None or supervisor.status not in states.RUNNING:
        return None
    now = clock.now()
    if supervisor.status == S.UNRESPONSIVE:
        previous = await repo.status_before_unresponsive(session, supervisor.id)
        target = S.PAUSED if previous == S.PAUSED else S.ACTIVE
        await _transition(session, supervisor, to=target, at=now, actor=RUNTIME_ACTOR,
                          payload={"last_heartbeat": supervisor.last_heartbeat})
    if supervisor.status == S.ACTIVE:
        agents = health.count_agents(await repo.agents_last_seen(session, supervisor.id), now,
                                     settings.agent_healthy_window_s)
        metrics = {"computed_at": now.isoformat(), "agents": agents.as_dict(), "monitoring": True}
    else:
        metrics = {**supervisor.health_metrics, "monitoring": False}
    if not await repo.write_heartbeat(session, supervisor.id, at=now, running=states.RUNNING,
                                      health_metrics=metrics):
        return None
    return S(supervisor.status)


async def sweep(session: AsyncSession, *, settings: Settings, clock: Clock) -> list[uuid.UUID]:
    """Mark UNRESPONSIVE every ACTIVE/PAUSED supervisor, in any workspace, with more than
    ``supervisor_max_missed_heartbeats`` missed intervals (TKT-001); runtime only.

    Reads only the database, so it catches a heartbeat that stopped for any reason (crashed task,
    dead node). A heartbeat written while the sweep ran wins (the change is guarded on it).
    Returns the ids marked; each gets a ``supervisor.unresponsive`` event.
    """
    now = clock.now()
    interval = settings.supervisor_heartbeat_interval_s
    marked: list[uuid.UUID] = []
    for supervisor in await repo.supervisors_in(session, states.SWEPT):
        seen = supervisor.last_heartbeat
        missed = health.missed_heartbeats(seen or supervisor.updated_at, now, interval)
        if missed <= settings.supervisor_max_missed_heartbeats:
            continue
        if await _transition(session, supervisor, to=S.UNRESPONSIVE, at=now, actor=RUNTIME_ACTOR,
                             payload={"missed_heartbeats": missed, "last_heartbeat": seen},
                             guard=[Supervisor.last_heartbeat.is_not_distinct_from(seen)]):
            marked.append(supervisor.id)
    return marked


async def running_ids(session: AsyncSession) -> list[uuid.UUID]:
    """Ids of every ACTIVE, PAUSED or UNRESPONSIVE supervisor, in any workspace; runtime only."""
    return [s.id for s in await repo.supervisors_in(session, states.RUNNING)]


async def stored_status(session: AsyncSession, *, supervisor_id: uuid.UUID) -> S | None:
    """The supervisor's stored status, None if it is gone; runtime only."""
    status = await repo.current_status(session, supervisor_id)
    return None if status is None else S(status)


async def fail(session: AsyncSession, *, supervisor_id: uuid.UUID, reason: str, clock: Clock) -> bool:
    """Mark a supervisor FAILED because its agent crashed; event ``supervisor.failed`` with ``reason``.

    Runtime only. Returns False when it is gone or already FAILED/TERMINATED.
    """
    supervisor = await repo.get_supervisor_unscoped(session, supervisor_id, for_update=True)
    if supervisor is None or (supervisor.status, S.FAILED) not in states.TRANSITIONS:
        return False
    return await _transition(session, supervisor, to=S.FAILED, at=clock.now(), actor=RUNTIME_ACTOR,
                             payload={"reason": reason[:2000]})


# --- teams and members -------------------------------------------------------------------------


async def create_team(session: AsyncSession, *, principal: Principal, supervisor_id: uuid.UUID,
                      data: TeamCreate, clock: Clock) -> SupervisorTeam:
    """Create a team under a visible supervisor (TKT-001 "Team creation"). Raises NotFound (404)."""
    supervisor = await repo.get_supervisor(session, principal, supervisor_id)
    now = clock.now()
    team = SupervisorTeam(id=uuid.uuid4(), supervisor_id=supervisor.id, workspace_id=supervisor.workspace_id,
                          name=data.name, description=data.description, objective=data.objective,
                          config=data.config, created_at=now, updated_at=now)
    session.add(team)
    await session.flush()
    await event_log.append(session, workspace_id=team.workspace_id, event_type="team.created",
                           entity_type="team", entity_id=team.id, at=now,
                           payload={"supervisor_id": supervisor.id, "name": team.name, "actor": principal.subject})
    return team


async def list_teams(session: AsyncSession, *, principal: Principal, supervisor_id: uuid.UUID, limit: int,
                     offset: int) -> tuple[list[SupervisorTeam], int]:
    """A page of a visible supervisor's teams and the total. Raises NotFound (404)."""
    supervisor = await repo.get_supervisor(session, principal, supervisor_id)
    return await repo.list_teams(session, principal, supervisor.id, limit=limit, offset=offset)


async def get_team(session: AsyncSession, *, principal: Principal, team_id: uuid.UUID) -> SupervisorTeam:
    """One visible team. Raises NotFound (404, also for another workspace's)."""
    return await repo.get_team(session, principal, team_id)


async def update_team(session: AsyncSession, *, principal: Principal, team_id: uuid.UUID, data: TeamUpdate,
                      clock: Clock) -> SupervisorTeam:
    """Apply a PATCH (fields sent are set, ``null`` clears description/objective). Raises NotFound (404)."""
    team = await repo.get_team(session, principal, team_id)
    if not data.model_fields_set:
        return team
    for field in sorted(data.model_fields_set):
        setattr(team, field, getattr(data, field))
    now = clock.now()
    team.updated_at = now
    await session.flush()
    await event_log.append(session, workspace_id=team.workspace_id, event_type="team.updated",
                           entity_type="team", entity_id=team.id, at=now,
                           payload={"fields": sorted(data.model_fields_set), "actor": principal.subject})
    return team


async def delete_team(session: AsyncSession, *, principal: Principal, team_id: uuid.UUID, clock: Clock) -> None:
    """Delete a team with its membership history; its active members are free to join another team.

    The ``team.deleted`` event lists the agents that were active members. Raises NotFound (404).
    """
    team = await repo.get_team(session, principal, team_id)
    released = await repo.active_agent_ids(session, team.id)
    await event_log.append(session, workspace_id=team.workspace_id, event_type="team.deleted",
                           entity_type="team", entity_id=team.id, at=clock.now(),
                           payload={"supervisor_id": team.supervisor_id, "name": team.name,
                                    "released_agent_ids": released,
                                    "actor": principal.subject})
    await repo.delete_team(session, team)


async def add_member(session: AsyncSession, *, principal: Principal, team_id: uuid.UUID, data: MemberCreate,
                     clock: Clock) -> SupervisorTeamMember:
    """Make a worker of the team's workspace an active member with a role (TKT-001 "agent assignment").

    An agent is an active member of at most one team. Raises NotFound (404: team), ValidationFailed
    (400: no such worker in the team's workspace), Conflict (409: already an active member of a team,
    named in ``details``).
    """
    team = await repo.get_team(session, principal, team_id)
    worker = await repo.find_worker(session, principal, data.agent_id)
    if worker is None or worker.workspace_id != team.workspace_id:
        raise _invalid("agent_id", f"agent {data.agent_id} is not a worker of this team's workspace")
    current = await repo.active_membership(session, data.agent_id)
    if current is not None:
        raise _already_member(data.agent_id, current[1])
    now = clock.now()
    member = SupervisorTeamMember(id=uuid.uuid4(), team_id=team.id, workspace_id=team.workspace_id,
                                  agent_id=data.agent_id, role=data.role, joined_at=now, left_at=None,
                                  member_metadata=data.metadata)
    session.add(member)
    try:
        await session.flush()
    except IntegrityError:
        # Lost a race to the partial unique index (one active membership per agent); the whole
        # unit of work rolls back with this error.
        raise Conflict(f"Agent {data.agent_id} is already an active member of another team",
                       details={"agent_id": str(data.agent_id)}) from None
    await event_log.append(session, workspace_id=team.workspace_id, event_type="team.member_added",
                           entity_type="team", entity_id=team.id, at=now,
                           payload={"agent_id": data.agent_id, "role": data.role, "actor": principal.subject})
    return member


def _already_member(agent_id: uuid.UUID, team: SupervisorTeam) -> Conflict:
    return Conflict(f"Agent {agent_id} is already an active member of team {team.name!r} ({team.id})",
                    details={"agent_id": str(agent_id), "team_id": str(team.id), "team_name": team.name,
                             "supervisor_id": str(team.supervisor_id)})


async def remove_member(session: AsyncSession, *, principal: Principal, team_id: uuid.UUID, agent_id: uuid.UUID,
                        clock: Clock) -> SupervisorTeamMember:
    """End an agent's active membership: sets ``left_at``, keeping the row as history.

    Raises NotFound (404: the team, or the agent is not an active member of it).
    """
    team = await repo.get_team(session, principal, team_id)
    member = await repo.get_active_member(session, team.id, agent_id)
    if member is None:
        raise NotFound("team member", agent_id)
    now = clock.now()
    member.left_at = now
    await session.flush()
    await event_log.append(session, workspace_id=team.workspace_id, event_type="team.member_removed",
                           entity_type="team", entity_id=team.id, at=now,
                           payload={"agent_id": agent_id, "actor": principal.subject})
    return member


async def list_members(session: AsyncSession, *, principal: Principal, team_id: uuid.UUID, include_past: bool,
                       limit: int, offset: int) -> tuple[list[SupervisorTeamMember], int]:
    """A page of a team's members by join time (past ones when ``include_past``). Raises NotFound (404)."""
    team = await repo.get_team(session, principal, team_id)
    return await repo.list_members(session, principal, team.id, include_past=include_past, limit=limit,
                                   offset=offset)
