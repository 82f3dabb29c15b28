"""The worker state machine (manager-ai-mvp-spec.md §1.1 B, extended by issue 3 item 6).

Spec transitions::

    IDLE -> RUNNING -> PAUSED -> RUNNING
         -> RUNNING -> COMPLETED
         -> RUNNING -> FAILED -> RETRYING -> RUNNING
         -> RUNNING -> TERMINATED

Overseer adds: RUNNING -> IDLE when a turn ends and the agent stays up; IDLE -> PAUSED (hold further
turns); PAUSED -> IDLE (resume with no thread to continue); IDLE/PAUSED/RETRYING -> FAILED (the agent
died); RETRYING -> IDLE (restarted with no turn to continue); and TERMINATED from every live state.
COMPLETED and TERMINATED are terminal.

``transition()`` is the only function that changes ``Worker.status``: it validates the pair, writes a
``state_transitions`` row with the reason, and appends a ``worker.state_changed`` event, all in the
caller's transaction.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from overseer.clock import utcnow
from overseer.errors import InvalidStateTransition
from overseer.events import log as event_log
from overseer.workers.models import StateTransition, Worker, WorkerStatus

S = WorkerStatus

TRANSITIONS: dict[WorkerStatus, frozenset[WorkerStatus]] = {
    S.IDLE: frozenset({S.RUNNING, S.PAUSED, S.FAILED, S.COMPLETED, S.TERMINATED}),
    S.RUNNING: frozenset({S.IDLE, S.PAUSED, S.COMPLETED, S.FAILED, S.TERMINATED}),
    S.PAUSED: frozenset({S.RUNNING, S.IDLE, S.FAILED, S.TERMINATED}),
    S.FAILED: frozenset({S.RETRYING, S.TERMINATED}),
    S.RETRYING: frozenset({S.RUNNING, S.IDLE, S.FAILED, S.TERMINATED}),
    S.COMPLETED: frozenset(),
    S.TERMINATED: frozenset(),
}

LIVE_STATES = frozenset({S.IDLE, S.RUNNING, S.PAUSED, S.RETRYING})
"""States in which the worker has (or is getting) an agent process."""


def can_transition(current: str, target: str) -> bool:
    return WorkerStatus(target) in TRANSITIONS[WorkerStatus(current)]


def check(worker: Worker, target: WorkerStatus) -> None:
    """Raise :class:`InvalidStateTransition` (409) unless ``worker`` may move to ``target``."""
    if not can_transition(worker.status, target):
        raise InvalidStateTransition("worker", worker.id, worker.status, target.value)


async def transition(session: AsyncSession, worker: Worker, target: WorkerStatus, *, reason: str) -> bool:
    """Move ``worker`` to ``target``; returns False (and does nothing) if it is already there.

    Raises :class:`InvalidStateTransition` for an illegal pair. The caller's transaction commits it.
    """
    if worker.status == target:
        return False
    check(worker, target)
    previous = worker.status
    worker.status = target.value
    worker.updated_at = utcnow()
    session.add(
        StateTransition(
            worker_id=worker.id,
            workspace_id=worker.workspace_id,
            from_state=previous,
            to_state=target.value,
            reason=reason,
        )
    )
    event_log.defer(
        session,
        workspace_id=worker.workspace_id,
        event_type="worker.state_changed",
        entity_type="worker",
        entity_id=worker.id,
        payload={"from": previous, "to": target.value, "reason": reason, "kind": worker.kind},
    )
    await session.flush()
    return True
