"""The job transition table (manager-ai-mvp-spec.md §1.2 B): every (current, requested) pair, legal or not,
and what ``transition()`` records."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest

from overseer.errors import InvalidStateTransition
from overseer.events.log import DEFERRED_KEY
from overseer.jobs import states
from overseer.jobs.models import Job
from overseer.jobs.models import JobStatus as S

LEGAL = {
    (S.SUBMITTED, S.PENDING), (S.SUBMITTED, S.CANCELED), (S.SUBMITTED, S.FAILED),
    (S.PENDING, S.RUNNING), (S.PENDING, S.CANCELED), (S.PENDING, S.FAILED),
    (S.RUNNING, S.COMPLETED), (S.RUNNING, S.FAILED), (S.RUNNING, S.CANCELED),
}
ILLEGAL = [p for p in itertools.product(S, S) if p not in LEGAL and p[0] != p[1]]


class FakeSession:
    """Enough of an AsyncSession for ``transition``: it defers events and flushes."""

    def __init__(self) -> None:
        self.info: dict[str, Any] = {}
        self.flushes = 0

    async def flush(self) -> None:
        self.flushes += 1


def make(status: S) -> Job:
    return Job(id=uuid.uuid4(), workspace_id=uuid.uuid4(), depth=2, status=status.value, prompt="p")


def test_the_table_is_exactly_the_documented_machine() -> None:
    assert {(a, b) for a, targets in states.TRANSITIONS.items() for b in targets} == LEGAL


def test_terminal_states_have_no_way_out() -> None:
    for s in (S.COMPLETED, S.FAILED, S.CANCELED):
        assert states.is_terminal(s) and states.TRANSITIONS[s] == frozenset()
    assert not any(states.is_terminal(s) for s in (S.SUBMITTED, S.PENDING, S.RUNNING))


@pytest.mark.parametrize(("current", "target"), sorted(LEGAL), ids=str)
async def test_legal_pair_moves_and_records_a_state_changed_event(current: S, target: S) -> None:
    job, session = make(current), FakeSession()
    assert await states.transition(session, job, target, reason="because")  # type: ignore[arg-type]
    assert job.status == target
    [event] = session.info[DEFERRED_KEY]
    assert event["event_type"] == "job.state_changed" and event["entity_type"] == "job"
    assert event["payload"]["from"] == current and event["payload"]["to"] == target
    assert event["payload"]["reason"] == "because" and event["payload"]["depth"] == 2
    assert (job.started_at is not None) == (target == S.RUNNING)
    assert (job.completed_at is not None) == states.is_terminal(target)


@pytest.mark.parametrize(("current", "target"), ILLEGAL, ids=str)
async def test_illegal_pair_is_409_with_the_spec_details(current: S, target: S) -> None:
    job, session = make(current), FakeSession()
    with pytest.raises(InvalidStateTransition) as info:
        await states.transition(session, job, target, reason="no")  # type: ignore[arg-type]
    assert info.value.status == 409
    assert info.value.details["current_state"] == current and info.value.details["requested_state"] == target
    assert job.status == current and DEFERRED_KEY not in session.info


async def test_same_state_is_a_no_op() -> None:
    job, session = make(S.RUNNING), FakeSession()
    assert not await states.transition(session, job, S.RUNNING, reason="again")  # type: ignore[arg-type]
    assert DEFERRED_KEY not in session.info
