"""The pure reducer (ops/state.py): rules, and live == replayed (Hypothesis)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from overseer.ops.state import OpsState, reduce, reduce_many, replay

WS = [str(uuid.UUID(int=i)) for i in (1, 2)]
WORKERS = [str(uuid.UUID(int=i)) for i in (0x11, 0x12, 0x13)]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Ev:
    id: int
    workspace_id: str
    event_type: str
    entity_type: str
    entity_id: str
    payload: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = T0


def agent(i: int, t: str, worker: str = WORKERS[0], ws: str = WS[0], **payload: Any) -> Ev:
    return Ev(i, ws, t, "worker", worker, {"thread_id": f"th-{worker[-2:]}", **payload},
              T0 + timedelta(seconds=i))


class TestRules:
    def test_turn_lifecycle_sets_task_and_completes(self) -> None:
        s = replay([agent(1, "thread.started"), agent(2, "turn.started", turn_id="t1", prompt="fix the bug"),
                    agent(3, "turn.completed", turn_id="t1", status="completed", final_message="fixed")])
        th = s.threads["th-11"]
        assert (th.status, th.current_task, th.last_message) == ("completed", "fix the bug", "fixed")
        assert s.workspaces[WS[0]].current_task == "fix the bug"
        assert s.signals["completed:th-11:t1"].kind == "completed"

    def test_approval_blocks_then_decision_unblocks(self) -> None:
        s = replay([agent(1, "turn.started", turn_id="t1", prompt="p"),
                    agent(2, "approval.requested", approval_id="a1", command="rm -rf build", turn_id="t1")])
        th = s.threads["th-11"]
        assert th.status == "waiting_input" and th.blockers[0]["ref"] == "approval:a1"
        sig = s.signals["needs_approval:a1"]
        assert sig.is_open and sig.context["command"] == "rm -rf build"
        reduce(s, Ev(3, WS[0], "approval.decided", "approval", "a1", {"thread_id": "th-11", "decision": "accept"}))
        assert th.status == "running" and th.blockers == [] and not s.signals["needs_approval:a1"].is_open

    def test_failed_turn_raises_failed(self) -> None:
        s = replay([agent(1, "turn.started", turn_id="t1"),
                    agent(2, "turn.completed", turn_id="t1", status="failed", error="model 500")])
        assert s.threads["th-11"].status == "failed"
        assert "model 500" in s.signals["failed:th-11:t1"].title

    def test_stall_reopens_after_ack_when_raised_again(self) -> None:
        s = replay([agent(1, "turn.started", turn_id="t1"),
                    Ev(2, WS[0], "health.stalled", "thread", "th-11", {"thread_id": "th-11", "silent_s": 200})])
        assert s.threads["th-11"].status == "stalled"
        reduce(s, Ev(3, WS[0], "signal.acked", "signal", "stalled:th-11", {"by": "me"}))
        assert s.signals["stalled:th-11"].acked_at is not None
        reduce(s, agent(4, "message.delta", delta="x"))  # activity ends the episode
        assert s.threads["th-11"].status == "running" and not s.signals["stalled:th-11"].is_open
        reduce(s, Ev(5, WS[0], "health.stalled", "thread", "th-11", {"thread_id": "th-11", "silent_s": 300}))
        sig = s.signals["stalled:th-11"]
        assert sig.is_open and sig.acked_at is None and sig.raise_count == 2

    def test_unexpected_exit_disconnects(self) -> None:
        s = replay([agent(1, "turn.started", turn_id="t1"), agent(2, "agent.exited", returncode=-9, expected=False)])
        assert s.workspaces[WS[0]].health == "disconnected"
        assert s.signals[f"disconnected:{WORKERS[0]}"].is_open
        assert s.threads["th-11"].status == "failed"

    def test_lost_thread_fails_it_and_raises_failed_naming_the_new_thread(self) -> None:
        s = replay([agent(1, "turn.started", turn_id="t1", prompt="port the parser"),
                    agent(2, "agent.exited", returncode=-9, expected=False),
                    Ev(3, WS[0], "thread.lost", "thread", "th-11",
                       {"worker_id": WORKERS[0], "thread_id": "th-11", "new_thread_id": "th-new-0001",
                        "error": "No conversation found", "turn_interrupted": True}),
                    agent(4, "thread.started", thread_id="th-new-0001")])
        sig = s.signals["failed:th-11:lost"]
        assert sig.is_open and sig.kind == "failed" and sig.worker_id == WORKERS[0]
        assert "th-new-0" in sig.title and sig.context["turn_interrupted"] is True
        assert sig.context["task"] == "port the parser" and "No conversation" in sig.context["error"]
        assert s.threads["th-11"].status == "failed" and s.worker_threads[WORKERS[0]] == "th-new-0001"

    def test_restart_limit_raises_failed_until_the_worker_runs_again(self) -> None:
        s = replay([agent(1, "thread.started"),
                    Ev(2, WS[0], "worker.restart_exhausted", "worker", WORKERS[0],
                       {"restarts": 5, "window_s": 600, "last_error": "spawn failed"})])
        sig = s.signals[f"failed:{WORKERS[0]}:restarts"]
        assert sig.is_open and "spawn failed" in sig.title and sig.thread_id == "th-11"
        reduce(s, Ev(3, WS[0], "worker.state_changed", "worker", WORKERS[0], {"to": "IDLE"}))
        assert not s.signals[f"failed:{WORKERS[0]}:restarts"].is_open

    def test_expected_exit_is_quiet(self) -> None:
        s = replay([agent(1, "thread.started"), agent(2, "agent.exited", expected=True)])
        assert s.signals == {}

    def test_plan_gives_next_step(self) -> None:
        s = replay([agent(1, "turn.started", turn_id="t1"),
                    agent(2, "plan.updated", steps=[{"step": "read", "status": "completed"},
                                                    {"step": "write tests", "status": "pending"}])])
        assert s.threads["th-11"].next_step == "write tests"


# ------------------------------------------------------------------ live == replayed

def _event_strategy() -> st.SearchStrategy[tuple[str, str, str, dict[str, Any]]]:
    worker = st.sampled_from(WORKERS)
    turn = st.sampled_from(["t1", "t2"])
    req = st.sampled_from(["r1", "r2", "r3"])
    return st.one_of(
        st.tuples(st.just("worker"), worker, st.just("thread.started"), st.just({})),
        st.builds(lambda w, t, p: ("worker", w, "turn.started", {"turn_id": t, "prompt": p}), worker, turn,
                  st.text(max_size=5)),
        st.builds(lambda w, t, s: ("worker", w, "turn.completed", {"turn_id": t, "status": s, "error": "e"}),
                  worker, turn, st.sampled_from(["completed", "failed", "interrupted"])),
        st.builds(lambda w, r: ("worker", w, "approval.requested", {"approval_id": r, "command": "ls"}), worker, req),
        st.builds(lambda w, r: ("worker", w, "question.requested",
                                {"question_id": r, "questions": [{"id": "q", "question": "?"}]}), worker, req),
        st.builds(lambda r: ("approval", r, "approval.decided", {}), req),
        st.builds(lambda r: ("question", r, "question.answered", {}), req),
        st.builds(lambda w: ("worker", w, "message.delta", {"delta": "x"}), worker),
        st.builds(lambda w: ("worker", w, "message.delta", {"delta": "y", "thread_id": None}), worker),
        st.builds(lambda w, t: ("worker", w, t, {"agent_kind": "codex"}), worker,
                  st.sampled_from(["status", "token_usage", "item.completed"])),
        st.builds(lambda w, e: ("worker", w, "agent.exited", {"expected": e}), worker, st.booleans()),
        st.builds(lambda w: ("thread", f"th-{w[-2:]}", "health.stalled", {"thread_id": f"th-{w[-2:]}"}), worker),
        st.builds(lambda w: ("thread", w, "health.disconnected", {"worker_id": w, "thread_id": f"th-{w[-2:]}"}),
                  worker),
        st.builds(lambda k, w: ("signal", f"{k}:th-{w[-2:]}", "signal.acked", {"by": "x"}),
                  st.sampled_from(["stalled"]), worker),
        st.builds(lambda w: ("thread", f"th-{w[-2:]}", "thread.lost",
                             {"worker_id": w, "thread_id": f"th-{w[-2:]}", "new_thread_id": "th-new"}), worker),
        st.builds(lambda w: ("worker", w, "worker.restart_exhausted", {"restarts": 3}), worker),
        st.builds(lambda w: ("worker", w, "plan.updated", {"steps": [{"step": "a", "status": "pending"}]}), worker),
    )


def _materialize(raw: list[tuple[str, str, str, dict[str, Any]]]) -> list[Ev]:
    out = []
    for i, (entity_type, entity_id, t, payload) in enumerate(raw, start=1):
        p = dict(payload)
        if entity_type == "worker":
            p.setdefault("thread_id", f"th-{entity_id[-2:]}")
        ws = WS[0] if entity_id.endswith(("11", "12")) or entity_type != "worker" else WS[1]
        out.append(Ev(i, ws, t, entity_type, entity_id, p, T0 + timedelta(seconds=i)))
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(_event_strategy(), max_size=60), st.lists(st.integers(min_value=1, max_value=7), max_size=20))
def test_live_in_batches_equals_replay_from_the_log(raw: list[Any], cuts: list[int]) -> None:
    """Any sequence applied live (in arbitrary transaction batches, each on a state reloaded from the
    previous batch's snapshot) equals the same sequence replayed from the log in one pass."""
    events = _materialize(raw)
    live = OpsState()
    i = 0
    for n in [*cuts, len(events)]:
        batch, i = events[i:i + n], i + n
        live = live.copy()  # a restart between batches: the state is all there is
        reduce_many(live, batch)  # as OpsPipeline.on_commit folds a committed batch
        live.dirty.clear()
    replayed = replay(events)
    assert live.comparable() == replayed.comparable()


def test_reduce_many_keeps_what_the_first_event_of_a_run_does() -> None:
    """A stalled thread's next text delta makes it run again and settles the signal at that event."""
    events = [agent(1, "turn.started", turn_id="t1"),
              Ev(2, WS[0], "health.stalled", "thread", "th-11", {"thread_id": "th-11"}, T0),
              *(agent(i, "message.delta", delta="x", agent_kind="codex") for i in range(3, 8))]
    one_by_one = replay(events)
    batched = reduce_many(OpsState(), events)
    assert batched.signals["stalled:th-11"].last_event_id == 3 and not batched.signals["stalled:th-11"].is_open
    assert batched.threads["th-11"].last_event_id == 7 and batched.threads["th-11"].status == "running"
    assert batched.comparable() == one_by_one.comparable()


@settings(max_examples=300, deadline=None)
@given(st.lists(_event_strategy(), max_size=60), st.integers(min_value=0, max_value=59))
def test_reduce_many_equals_reduce_one_by_one(raw: list[Any], stall_at: int) -> None:
    """The batch fold skips the middle of liveness-only runs; state, dirty set and worker->thread map
    must equal reducing every event (a stalled thread among them, so a run's first event matters)."""
    events = _materialize(raw)
    if events:  # a stall inside the sequence: the next activity of its thread must clear it
        w = WORKERS[stall_at % len(WORKERS)]
        events.insert(stall_at % len(events), Ev(0, WS[0], "health.stalled", "thread", f"th-{w[-2:]}",
                                                 {"thread_id": f"th-{w[-2:]}"}, T0))
        events = [Ev(i, e.workspace_id, e.event_type, e.entity_type, e.entity_id, e.payload,
                     T0 + timedelta(seconds=i)) for i, e in enumerate(events, start=1)]
    one_by_one = OpsState()
    for ev in events:
        reduce(one_by_one, ev)
    batched = reduce_many(OpsState(), events)
    assert batched.comparable() == one_by_one.comparable()
    assert (batched.dirty, batched.worker_threads) == (one_by_one.dirty, one_by_one.worker_threads)
