"""The supervisor transition table (TKT-001): every (current, requested) pair, legal or not."""

from __future__ import annotations

import itertools
import uuid

import pytest

from overseer.errors import InvalidStateTransition
from overseer.supervisors import states
from overseer.supervisors.models import SupervisorStatus as S

SID = uuid.UUID(int=7)

LEGAL = {
    (S.SPAWNING, S.ACTIVE): "supervisor.started",
    (S.SPAWNING, S.FAILED): "supervisor.failed",
    (S.SPAWNING, S.TERMINATED): "supervisor.stopped",
    (S.ACTIVE, S.PAUSED): "supervisor.paused",
    (S.ACTIVE, S.UNRESPONSIVE): "supervisor.unresponsive",
    (S.ACTIVE, S.FAILED): "supervisor.failed",
    (S.ACTIVE, S.TERMINATED): "supervisor.stopped",
    (S.PAUSED, S.ACTIVE): "supervisor.resumed",
    (S.PAUSED, S.UNRESPONSIVE): "supervisor.unresponsive",
    (S.PAUSED, S.FAILED): "supervisor.failed",
    (S.PAUSED, S.TERMINATED): "supervisor.stopped",
    (S.UNRESPONSIVE, S.ACTIVE): "supervisor.recovered",
    (S.UNRESPONSIVE, S.PAUSED): "supervisor.recovered",
    (S.UNRESPONSIVE, S.FAILED): "supervisor.failed",
    (S.UNRESPONSIVE, S.TERMINATED): "supervisor.stopped",
    (S.FAILED, S.ACTIVE): "supervisor.started",
    (S.FAILED, S.TERMINATED): "supervisor.stopped",
}
ALL_PAIRS = list(itertools.product(S, S))
ILLEGAL = [pair for pair in ALL_PAIRS if pair not in LEGAL]


def test_the_table_is_exactly_the_documented_machine() -> None:
    assert dict(states.TRANSITIONS) == LEGAL


@pytest.mark.parametrize(("current", "requested"), list(LEGAL), ids=lambda s: str(s))
def test_legal_pair_returns_its_event(current: S, requested: S) -> None:
    assert states.transition(SID, current, requested) == LEGAL[(current, requested)]
    assert states.transition(SID, current, requested, event=LEGAL[(current, requested)]) == LEGAL[
        (current, requested)]


@pytest.mark.parametrize(("current", "requested"), ILLEGAL, ids=lambda s: str(s))
def test_illegal_pair_is_409_with_details(current: S, requested: S) -> None:
    with pytest.raises(InvalidStateTransition) as info:
        states.transition(SID, current, requested)
    err = info.value
    assert err.status == 409
    assert err.code == "INVALID_STATE_TRANSITION"
    assert err.details["id"] == str(SID)
    assert err.details["current_state"] == current
    assert err.details["requested_state"] == requested


def test_terminated_is_final_and_nothing_stays_put() -> None:
    assert not any(src == S.TERMINATED for src, _ in LEGAL)
    assert not any(src == dst for src, dst in LEGAL)


@pytest.mark.parametrize(("current", "requested", "event"), [
    (S.UNRESPONSIVE, S.PAUSED, "supervisor.paused"),    # pause cannot be used to leave UNRESPONSIVE
    (S.UNRESPONSIVE, S.ACTIVE, "supervisor.resumed"),   # nor resume
    (S.UNRESPONSIVE, S.ACTIVE, "supervisor.started"),   # nor start
    (S.PAUSED, S.ACTIVE, "supervisor.started"),         # start is not resume
    (S.FAILED, S.ACTIVE, "supervisor.resumed"),
])
def test_a_command_must_match_the_event_of_the_pair(current: S, requested: S, event: str) -> None:
    with pytest.raises(InvalidStateTransition):
        states.transition(SID, current, requested, event=event)


def test_unknown_status_strings_are_illegal() -> None:
    with pytest.raises(InvalidStateTransition):
        states.transition(SID, "BOGUS", S.ACTIVE)
    with pytest.raises(InvalidStateTransition):
        states.transition(SID, S.ACTIVE, "BOGUS")


def test_state_sets() -> None:
    assert states.RUNNING == {S.ACTIVE, S.PAUSED, S.UNRESPONSIVE}
    assert states.SWEPT == {S.ACTIVE, S.PAUSED}
    assert states.DELETABLE == {S.SPAWNING, S.FAILED, S.TERMINATED}
    assert states.RUNNING.isdisjoint(states.DELETABLE)
