"""Heartbeat arithmetic (TKT-001: heartbeat every interval, > 3 missed -> UNRESPONSIVE), no sleeps."""

from __future__ import annotations

from datetime import timedelta

import pytest

from overseer.clock import ManualClock
from overseer.supervisors.health import AgentCounts, count_agents, is_unresponsive, missed_heartbeats

INTERVAL = 30.0
MAX_MISSED = 3


class TestMissedHeartbeats:
    @pytest.mark.parametrize(("elapsed", "missed"), [
        (0, 0), (29.999, 0), (30, 1), (59.9, 1), (60, 2), (90, 3), (119.999, 3), (120, 4), (3600, 120),
    ])
    def test_counts_whole_intervals(self, elapsed: float, missed: int) -> None:
        clock = ManualClock()
        beat = clock.now()
        clock.advance(elapsed)
        assert missed_heartbeats(beat, clock.now(), INTERVAL) == missed

    def test_a_heartbeat_from_the_future_counts_as_none_missed(self) -> None:
        clock = ManualClock()
        assert missed_heartbeats(clock.now() + timedelta(seconds=5), clock.now(), INTERVAL) == 0

    def test_interval_must_be_positive(self) -> None:
        clock = ManualClock()
        with pytest.raises(ValueError):
            missed_heartbeats(clock.now(), clock.now(), 0)

    def test_millisecond_intervals(self) -> None:
        clock = ManualClock()
        beat = clock.now()
        clock.advance(0.2)
        assert missed_heartbeats(beat, clock.now(), 0.05) == 4


class TestUnresponsive:
    def test_three_missed_is_still_responsive_four_is_not(self) -> None:
        clock = ManualClock()
        beat = clock.now()
        clock.advance(3 * INTERVAL)
        assert not is_unresponsive(beat, clock.now(), INTERVAL, MAX_MISSED)
        clock.advance(INTERVAL - 0.001)
        assert not is_unresponsive(beat, clock.now(), INTERVAL, MAX_MISSED)
        clock.advance(0.001)
        assert is_unresponsive(beat, clock.now(), INTERVAL, MAX_MISSED)

    def test_a_fresh_heartbeat_recovers(self) -> None:
        clock = ManualClock()
        beat = clock.now()
        clock.advance(10 * INTERVAL)
        assert is_unresponsive(beat, clock.now(), INTERVAL, MAX_MISSED)
        beat = clock.now()  # heartbeats resume
        assert not is_unresponsive(beat, clock.now(), INTERVAL, MAX_MISSED)
        clock.advance(INTERVAL)
        assert not is_unresponsive(beat, clock.now(), INTERVAL, MAX_MISSED)

    def test_a_healthy_loop_never_looks_unresponsive(self) -> None:
        clock = ManualClock()
        beat = clock.now()
        for _ in range(100):
            clock.advance(INTERVAL * 1.02)  # a little late every time
            assert missed_heartbeats(beat, clock.now(), INTERVAL) <= 1
            assert not is_unresponsive(beat, clock.now(), INTERVAL, MAX_MISSED)
            beat = clock.now()


class TestAgentCounts:
    def test_healthy_within_the_window_unhealthy_outside_or_never_seen(self) -> None:
        clock = ManualClock()
        now = clock.now()
        seen = [now, now - timedelta(seconds=90), now - timedelta(seconds=90.001), None,
                now - timedelta(hours=1)]
        assert count_agents(seen, now, 90.0) == AgentCounts(total=5, healthy=2, unhealthy=3)

    def test_no_agents(self) -> None:
        clock = ManualClock()
        counts = count_agents([], clock.now(), 90.0)
        assert counts.as_dict() == {"total": 0, "healthy": 0, "unhealthy": 0}

    def test_agents_age_out_as_time_passes(self) -> None:
        clock = ManualClock()
        seen = [clock.now()]
        assert count_agents(seen, clock.now(), 90.0).healthy == 1
        clock.advance(91)
        assert count_agents(seen, clock.now(), 90.0).unhealthy == 1
