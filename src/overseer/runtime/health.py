"""The pull half of the supervisor loop (CM-003): a health tick on an interval.

Every ``health_tick_s`` seconds, over threads with an active turn (no idle noise):
- the worker's process is gone on this node, or no event for ``disconnect_after_s`` -> ``health.disconnected``;
- no event for ``stall_after_s`` while running -> ``health.stalled``;
- a workspace with active work and no event for ``stale_after_s`` -> ``health.workspace_stale``.
Each is appended once per episode (the projection already says stalled/stale/disconnected: nothing
new is written), and the reducer turns them into signals. Any agent event ends the episode, so a
later one raises the same signal id again, which reopens it.

Also applies the optional per-workspace approval timeout (``workspace.settings["approval_timeout_s"]``):
an approval pending longer gets the default decision (decline, or ``approval_timeout_decision``) and
the feed says so (``approval.timed_out``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from overseer.auth.tokens import Principal
from overseer.clock import Clock
from overseer.config import Settings
from overseer.db.engine import Database
from overseer.events import log as event_log
from overseer.ops.models import ApprovalStatus, PendingApproval
from overseer.ops.projections import OpsThread, OpsWorkspace, Signal
from overseer.runtime.workers import WorkerManager
from overseer.workers.models import Worker
from overseer.workspaces.models import Workspace

log = logging.getLogger(__name__)
SYSTEM = Principal("overseer:health", frozenset({"admin"}), None)


class HealthMonitor:
    """A runtime component: ``start()`` launches the tick loop, ``stop()`` cancels it."""

    def __init__(self, *, db: Database, settings: Settings, clock: Clock, workers: WorkerManager) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.workers = workers
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="overseer-health")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.health_tick_s)
            try:
                await self.tick()
            except Exception:
                log.exception("health tick failed")

    async def tick(self) -> int:
        """Run one health check; returns the number of health events appended."""
        now = self.clock.now()
        s = self.settings
        appended = 0
        async with self.db.session() as session:
            rows = (await session.execute(
                select(OpsThread, Worker.status, Worker.node_id)
                .join(Worker, Worker.id == OpsThread.worker_id)
                .where(OpsThread.active_turn_id.is_not(None)))).all()
            open_disconnects = set((await session.execute(
                select(Signal.id).where(Signal.kind == "disconnected", Signal.is_open.is_(True)))).scalars())
            busy_ws: dict[Any, float] = {}
            for th, worker_status, _node in rows:
                silent = (now - th.last_activity_at).total_seconds() if th.last_activity_at else 0.0
                busy_ws[th.workspace_id] = min(busy_ws.get(th.workspace_id, silent), silent)
                payload = {"thread_id": th.thread_id, "worker_id": str(th.worker_id), "silent_s": round(silent, 1),
                           "since": th.last_activity_at.isoformat() if th.last_activity_at else None}
                gone = (worker_status in ("IDLE", "RUNNING") and th.worker_id is not None
                        and not self.workers.is_alive(th.worker_id))
                if gone or silent > s.disconnect_after_s:
                    if th.status != "failed" and f"disconnected:{th.worker_id}" not in open_disconnects:
                        reason = "agent process is gone" if gone else f"agent silent for {int(silent)} s"
                        await event_log.append(session, workspace_id=th.workspace_id, event_type="health.disconnected",
                                               entity_type="thread", entity_id=th.thread_id,
                                               payload={**payload, "reason": reason})
                        appended += 1
                elif silent > s.stall_after_s and th.status == "running":
                    await event_log.append(session, workspace_id=th.workspace_id, event_type="health.stalled",
                                           entity_type="thread", entity_id=th.thread_id, payload=payload)
                    appended += 1
            if busy_ws:
                healthy = (await session.execute(select(OpsWorkspace).where(
                    OpsWorkspace.workspace_id.in_(list(busy_ws)), OpsWorkspace.health == "healthy"))).scalars()
                for ws in healthy:
                    if busy_ws[ws.workspace_id] > s.stale_after_s:
                        await event_log.append(session, workspace_id=ws.workspace_id,
                                               event_type="health.workspace_stale", entity_type="workspace",
                                               entity_id=ws.workspace_id,
                                               payload={"silent_s": round(busy_ws[ws.workspace_id], 1)})
                        appended += 1
        await self._approval_timeouts(now)
        return appended

    async def _approval_timeouts(self, now: Any) -> None:
        async with self.db.read_session() as session:
            rows = (await session.execute(
                select(PendingApproval, Workspace.settings).join(Workspace, Workspace.id == PendingApproval.workspace_id)
                .where(PendingApproval.status == ApprovalStatus.pending))).all()
        from overseer.ops import approvals

        for approval, ws_settings in rows:
            timeout = (ws_settings or {}).get("approval_timeout_s")
            if not timeout or now - approval.created_at < timedelta(seconds=float(timeout)):
                continue
            decision = (ws_settings or {}).get("approval_timeout_decision", "decline")
            try:
                await approvals.decide(self.db, lambda: self.workers, principal=SYSTEM, approval_id=approval.id,
                                       decision=decision)
            except Exception as exc:  # closed meanwhile, or the agent is gone: nothing to time out
                log.info("approval %s not timed out: %s", approval.id, exc)
                continue
            async with self.db.session() as session:
                await event_log.append(session, workspace_id=approval.workspace_id, event_type="approval.timed_out",
                                       entity_type="approval", entity_id=approval.id,
                                       payload={"decision": decision, "timeout_s": timeout,
                                                "command": approval.command, "worker_id": str(approval.worker_id)})
