"""Heartbeat and agent-health arithmetic (TKT-001 "Supervisor health monitoring"). Pure, no I/O.

Missed heartbeats, defined once and used by both the ``/health`` endpoint and the runtime sweep::

    missed = floor((now - reference) / interval)

``reference`` is ``last_heartbeat``, or, for a running supervisor that has never heartbeated, the
time it last changed (``updated_at``). A supervisor is UNRESPONSIVE when ``missed > max_missed``:
with the defaults (30 s, 3) that is a last heartbeat 120 s or more ago. A healthy agent writes one
heartbeat per interval, so ``missed`` stays at 0 or 1 however the sweep's ticks fall.

Agents are healthy when their worker's ``last_event_at`` is within ``agent_healthy_window_s`` (90 s,
TKT-001 "Technical Notes"); an agent never seen is unhealthy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


def missed_heartbeats(reference: datetime, now: datetime, interval_s: float) -> int:
    """Whole heartbeat intervals (``interval_s`` seconds) elapsed since ``reference``; never negative."""
    if interval_s <= 0:
        raise ValueError("interval_s must be positive")
    elapsed = (now - reference).total_seconds()
    return max(0, math.floor(elapsed / interval_s))


def is_unresponsive(reference: datetime, now: datetime, interval_s: float, max_missed: int) -> bool:
    """True when more than ``max_missed`` intervals passed since ``reference`` (TKT-001: "> 3 missed")."""
    return missed_heartbeats(reference, now, interval_s) > max_missed


@dataclass(frozen=True, slots=True)
class AgentCounts:
    """Agents of a supervisor's teams: ``total`` = ``healthy`` + ``unhealthy``."""

    total: int
    healthy: int
    unhealthy: int

    def as_dict(self) -> dict[str, int]:
        return {"total": self.total, "healthy": self.healthy, "unhealthy": self.unhealthy}


def count_agents(last_seen: Iterable[datetime | None], now: datetime, window_s: float) -> AgentCounts:
    """Count agents by freshness: seen at or after ``now - window_s`` is healthy, else (or never) unhealthy."""
    cutoff = now - timedelta(seconds=window_s)
    seen = list(last_seen)
    healthy = sum(1 for at in seen if at is not None and at >= cutoff)
    return AgentCounts(total=len(seen), healthy=healthy, unhealthy=len(seen) - healthy)
