"""The pure scheduling policy and quota arithmetic (``jobs.quotas``; issue 5 items 3 and 4), by Hypothesis.

A state machine submits, schedules, finishes, cancels and crashes jobs at random against a ledger of
allocations that mirrors what the database does (allocate on start, release on every terminal state or
crash). It checks after every step that no quota (per workspace and depth, or node-wide per depth) is ever
exceeded, that nothing but a running job holds an allocation, that the policy never leaves a free slot idle
while a ready job fits it, and, when everything is done, that usage is back to zero.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from overseer.jobs.quotas import Candidate, QuotaTable, Usage, check_fit, plan

WORKSPACES = ["w0", "w1", "w2"]
DEPTHS = list(range(5))


@st.composite
def quota_tables(draw: Any) -> QuotaTable:
    default = draw(st.integers(0, 4))
    ws = draw(st.dictionaries(st.tuples(st.sampled_from(WORKSPACES), st.sampled_from(DEPTHS)), st.integers(0, 5),
                              max_size=6))
    caps = draw(st.dictionaries(st.sampled_from(DEPTHS), st.integers(0, 6), max_size=3))
    return QuotaTable(default, ws, caps)


class SchedulerModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.quotas = QuotaTable(1)
        self.jobs: dict[int, dict[str, Any]] = {}
        self.allocations: list[dict[str, Any]] = []
        self.seq = 0
        self.cursor = 0

    @initialize(quotas=quota_tables())
    def setup(self, quotas: QuotaTable) -> None:
        self.quotas = quotas

    # ---- helpers

    def usage(self) -> Usage:
        return Usage.of((a["ws"], a["depth"], a["n"]) for a in self.allocations if a["open"])

    def release(self, job_id: int) -> None:
        for a in self.allocations:
            if a["job"] == job_id:
                a["open"] = False  # idempotent, like released_at

    def with_status(self, status: str) -> list[int]:
        return sorted(j for j, v in self.jobs.items() if v["status"] == status)

    # ---- rules

    @rule(ws=st.sampled_from(WORKSPACES), depth=st.sampled_from(DEPTHS), priority=st.integers(-2, 2),
          n=st.integers(1, 2))
    def submit(self, ws: str, depth: int, priority: int, n: int) -> None:
        self.seq += 1
        self.jobs[self.seq] = {"ws": ws, "depth": depth, "priority": priority, "created": self.seq, "n": n,
                               "status": "pending"}

    @rule(max_starts=st.one_of(st.none(), st.integers(1, 4)))
    def schedule(self, max_starts: int | None) -> None:
        pending = self.with_status("pending")
        cands = [Candidate(j, self.jobs[j]["ws"], self.jobs[j]["depth"], self.jobs[j]["priority"],
                           self.jobs[j]["created"], self.jobs[j]["n"]) for j in pending]
        before = self.usage()
        result = plan(cands, before, self.quotas, max_starts=max_starts, start_depth=self.cursor)
        self.cursor = result.next_depth
        assert len({c.job_id for c in result.start}) == len(result.start)
        assert {c.job_id for c in result.start} <= set(pending)
        assert before.by_slot == self.usage().by_slot  # plan is pure
        if max_starts is not None:
            assert len(result.start) <= max_starts
        for c in result.start:  # what allocate() does in its transaction: check again, then take the slot
            assert check_fit(self.quotas, self.usage(), c.workspace_id, c.depth, c.worker_count) is None
            self.allocations.append({"job": c.job_id, "ws": c.workspace_id, "depth": c.depth, "n": c.worker_count,
                                     "open": True})
            self.jobs[c.job_id]["status"] = "running"
        if max_starts is None:  # a full pass leaves no ready job that would still fit
            for j in self.with_status("pending"):
                v = self.jobs[j]
                assert check_fit(self.quotas, self.usage(), v["ws"], v["depth"], v["n"]) is not None
                assert j in result.blocked

    @precondition(lambda self: self.with_status("running"))
    @rule(data=st.data(), outcome=st.sampled_from(["completed", "failed", "crashed", "canceled"]))
    def end_running(self, data: st.DataObject, outcome: str) -> None:
        job_id = data.draw(st.sampled_from(self.with_status("running")))
        self.jobs[job_id]["status"] = outcome
        self.release(job_id)

    @precondition(lambda self: self.with_status("pending"))
    @rule(data=st.data())
    def cancel_pending(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(self.with_status("pending")))
        self.jobs[job_id]["status"] = "canceled"
        self.release(job_id)

    @precondition(lambda self: any(not a["open"] for a in self.allocations))
    @rule()
    def release_again_is_a_no_op(self) -> None:
        before = self.usage().by_slot.copy()
        for a in self.allocations:
            if not a["open"]:
                self.release(a["job"])
        assert self.usage().by_slot == before

    # ---- invariants

    @invariant()
    def no_quota_is_ever_exceeded(self) -> None:
        usage = self.usage()
        for (ws, depth), n in usage.by_slot.items():
            assert n <= self.quotas.limit(ws, depth), (ws, depth, n)
        for depth, n in usage.by_depth.items():
            cap = self.quotas.global_cap(depth)
            assert cap is None or n <= cap

    @invariant()
    def only_running_jobs_hold_allocations(self) -> None:
        holders = {a["job"] for a in self.allocations if a["open"]}
        assert holders == set(self.with_status("running"))

    def teardown(self) -> None:
        for job_id in self.with_status("running"):
            self.jobs[job_id]["status"] = "completed"
            self.release(job_id)
        assert sum(self.usage().by_slot.values()) == 0  # usage returns to zero when the work is done


TestSchedulerModel = SchedulerModel.TestCase
TestSchedulerModel.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


@given(st.lists(st.tuples(st.sampled_from(DEPTHS), st.integers(-3, 3)), min_size=1, max_size=40))
@settings(max_examples=150, deadline=None)
def test_round_robin_serves_every_depth_with_ready_jobs(jobs: list[tuple[int, int]]) -> None:
    """With one start per pass, every depth that has ready work starts one within len(depths) passes."""
    cands = [Candidate(i, "w", d, p, i) for i, (d, p) in enumerate(jobs)]
    depths = sorted({d for d, _ in jobs})
    quotas, usage, cursor, served = QuotaTable(100), Usage(), 0, []
    remaining = list(cands)
    for _ in range(len(depths)):
        result = plan(remaining, usage, quotas, max_starts=1, start_depth=cursor)
        [c] = result.start
        served.append(c.depth)
        usage.add(c.workspace_id, c.depth, 1)
        remaining = [r for r in remaining if r.job_id != c.job_id]
        cursor = result.next_depth
    assert sorted(served) == depths


@given(st.lists(st.tuples(st.integers(-3, 3), st.integers(0, 1000)), min_size=1, max_size=30, unique_by=lambda t: t[1]))
@settings(max_examples=150, deadline=None)
def test_within_a_depth_higher_priority_then_oldest_goes_first(jobs: list[tuple[int, int]]) -> None:
    cands = [Candidate(i, "w", 0, p, created) for i, (p, created) in enumerate(jobs)]
    order = plan(cands, Usage(), QuotaTable(len(jobs))).start
    assert [(-c.priority, c.created_at) for c in order] == sorted((-c.priority, c.created_at) for c in cands)


def test_a_full_workspace_does_not_block_another_at_the_same_depth() -> None:
    cands = [Candidate(1, "busy", 1, 9, 0), Candidate(2, "busy", 1, 8, 1), Candidate(3, "free", 1, 0, 2)]
    usage = Usage.of([("busy", 1, 2)])
    result = plan(cands, usage, QuotaTable(2))
    assert [c.job_id for c in result.start] == [3]
    assert result.blocked[1].details() == {"scope": "workspace", "workspace_id": "busy", "depth": 1, "limit": 2,
                                           "in_use": 2, "requested": 1}


def test_the_node_wide_cap_blocks_the_whole_depth() -> None:
    cands = [Candidate(i, f"w{i}", 0, 0, i) for i in range(4)]
    result = plan(cands, Usage(), QuotaTable(5, {}, {0: 2}))
    assert len(result.start) == 2 and {d.scope for d in result.blocked.values()} == {"global"}
