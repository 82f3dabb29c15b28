"""The supervisor state machine: one transition table and one ``transition()`` check (TKT-001).

TKT-001 "Key Implementation Details": SPAWNING -> ACTIVE -> PAUSED/FAILED -> TERMINATED, plus
UNRESPONSIVE, entered when more than ``supervisor_max_missed_heartbeats`` heartbeats are missed and
left (back to ACTIVE or PAUSED, whichever it was) when heartbeats resume.

Each legal (from, to) pair is recorded under exactly one event type, ``supervisor.<verb>``. Commands
name the event they mean (``event="supervisor.paused"``), so a ``pause`` cannot be used to leave
UNRESPONSIVE even though UNRESPONSIVE -> PAUSED is legal as a *recovery*.

This module is pure (no I/O). The only writer of ``supervisors.status`` is
``overseer.supervisors.service``, which calls :func:`transition` before every change.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from overseer.errors import InvalidStateTransition
from overseer.supervisors.models import SupervisorStatus as S

STARTED = "supervisor.started"
PAUSED = "supervisor.paused"
RESUMED = "supervisor.resumed"
STOPPED = "supervisor.stopped"
FAILED = "supervisor.failed"
UNRESPONSIVE = "supervisor.unresponsive"
RECOVERED = "supervisor.recovered"

TRANSITIONS: Mapping[tuple[S, S], str] = {
    (S.SPAWNING, S.ACTIVE): STARTED,
    (S.SPAWNING, S.FAILED): FAILED,
    (S.SPAWNING, S.TERMINATED): STOPPED,
    (S.ACTIVE, S.PAUSED): PAUSED,
    (S.ACTIVE, S.UNRESPONSIVE): UNRESPONSIVE,
    (S.ACTIVE, S.FAILED): FAILED,
    (S.ACTIVE, S.TERMINATED): STOPPED,
    (S.PAUSED, S.ACTIVE): RESUMED,
    (S.PAUSED, S.UNRESPONSIVE): UNRESPONSIVE,
    (S.PAUSED, S.FAILED): FAILED,
    (S.PAUSED, S.TERMINATED): STOPPED,
    (S.UNRESPONSIVE, S.ACTIVE): RECOVERED,
    (S.UNRESPONSIVE, S.PAUSED): RECOVERED,
    (S.UNRESPONSIVE, S.FAILED): FAILED,
    (S.UNRESPONSIVE, S.TERMINATED): STOPPED,
    # A failed supervisor may be started again (restart); TERMINATED is final.
    (S.FAILED, S.ACTIVE): STARTED,
    (S.FAILED, S.TERMINATED): STOPPED,
}
"""(current, requested) -> the event type recorded for that change."""

RUNNING = frozenset({S.ACTIVE, S.PAUSED, S.UNRESPONSIVE})
"""States in which a supervisor has (or should have) a heartbeating agent."""

SWEPT = frozenset({S.ACTIVE, S.PAUSED})
"""States the missed-heartbeat sweep may move to UNRESPONSIVE."""

DELETABLE = frozenset({S.SPAWNING, S.FAILED, S.TERMINATED})
"""States in which a supervisor may be deleted (nothing runs for it)."""


def transition(supervisor_id: uuid.UUID, current: str, requested: str, *, event: str | None = None) -> str:
    """Check that ``current -> requested`` is legal and return its event type (``supervisor.<verb>``).

    ``event``, when given, must be the event the pair is recorded under: it is how a command (start,
    pause, resume, stop) says which change it means.

    Raises:
        InvalidStateTransition: (409) the pair is not in :data:`TRANSITIONS`, or is recorded under
            another event; details ``{id, current_state, requested_state}`` (manager-ai-mvp-spec §2.4).
    """
    try:
        found = TRANSITIONS.get((S(current), S(requested)))
    except ValueError:  # a status string outside the enum is never a legal endpoint
        found = None
    if found is None or (event is not None and found != event):
        raise InvalidStateTransition("supervisor", supervisor_id, str(current), str(requested))
    return found
