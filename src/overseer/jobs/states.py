"""The job state machine (manager-ai-mvp-spec.md §1.2 B; issue 5 item 1).

::

    SUBMITTED -> PENDING -> RUNNING -> COMPLETED
                         -> RUNNING -> FAILED
                         -> RUNNING -> CANCELED   (interrupts the agent's turn)
              -> PENDING -> CANCELED

Overseer adds SUBMITTED -> CANCELED / FAILED (a submit that is rejected after it was recorded, or
canceled before the scheduler saw it) and PENDING -> FAILED (the agent could not be started).
COMPLETED, FAILED and CANCELED are terminal.

``transition()`` is the only function that changes ``Job.status``: it validates the pair, stamps
``started_at`` / ``completed_at``, and defers a ``job.state_changed`` event (the transition record),
all in the caller's transaction. The event is *deferred* (inserted at commit) on purpose: allocation
transactions take their quota locks first and the event-order lock last, so lock order stays fixed.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from overseer.clock import utcnow
from overseer.errors import InvalidStateTransition
from overseer.events import log as event_log
from overseer.jobs.models import TERMINAL, Job, JobStatus

S = JobStatus

TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    S.SUBMITTED: frozenset({S.PENDING, S.CANCELED, S.FAILED}),
    S.PENDING: frozenset({S.RUNNING, S.CANCELED, S.FAILED}),
    S.RUNNING: frozenset({S.COMPLETED, S.FAILED, S.CANCELED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELED: frozenset(),
}


def can_transition(current: str, target: str) -> bool:
    return JobStatus(target) in TRANSITIONS[JobStatus(current)]


def is_terminal(status: str) -> bool:
    return JobStatus(status) in TERMINAL


def check(job: Job, target: JobStatus) -> None:
    """Raise :class:`InvalidStateTransition` (409) unless ``job`` may move to ``target``."""
    if not can_transition(job.status, target):
        raise InvalidStateTransition("job", job.id, job.status, target.value)


async def transition(session: AsyncSession, job: Job, target: JobStatus, *, reason: str,
                     flush: bool = True) -> bool:
    """Move ``job`` to ``target``; returns False (and does nothing) if it is already there.

    Raises :class:`InvalidStateTransition` for an illegal pair. The caller's transaction commits it.
    """
    if job.status == target:
        return False
    check(job, target)
    previous = job.status
    now = utcnow()
    job.status = target.value
    job.updated_at = now
    if target == S.RUNNING:
        job.started_at = now
    if target in TERMINAL:
        job.completed_at = now
        job.waiting = None
    event_log.defer(
        session,
        workspace_id=job.workspace_id,
        event_type="job.state_changed",
        entity_type="job",
        entity_id=job.id,
        payload={"from": previous, "to": target.value, "reason": reason, "depth": job.depth,
                 "parent_job_id": job.parent_job_id, "worker_id": job.worker_id},
    )
    if flush:
        await session.flush()
    return True


__all__ = ["TRANSITIONS", "can_transition", "check", "is_terminal", "transition"]
