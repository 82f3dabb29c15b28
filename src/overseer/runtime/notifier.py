"""Outbound webhooks per workspace (CM-011; issue 6 item 4): for people away from the page.

A workspace's ``settings["webhooks"]`` is a list of ``{"url", "format": "generic"|"slack",
"kinds": [...]}`` (kinds default to needs_approval, needs_input, failed). Committed events that raise
one of those signals are posted as JSON (generic: the signal with its context and a link to the
thread; Slack: an incoming-webhook ``{"text": ...}``).

Delivery: a bounded in-memory queue drained by one task; each webhook is tried up to
``webhook_max_attempts`` times with jittered exponential backoff (``webhook_backoff_s`` base);
2xx is success; 4xx other than 408/429 is final. A delivery that finally fails appends a
``webhook.failed`` event so the feed says so. Deliveries in flight are lost if the server stops
(documented limit: the signal itself is durable and stays on the page).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from overseer.config import Settings
from overseer.db.engine import Database
from overseer.events import log as event_log
from overseer.events.bus import PublishedEvent
from overseer.workspaces.models import Workspace

log = logging.getLogger(__name__)
DEFAULT_KINDS = ("needs_approval", "needs_input", "failed")


def signal_kind(ev: PublishedEvent) -> str | None:
    """The notifiable signal an event raises, if any (mirrors the reducer's rules)."""
    t = ev.event_type
    if t == "approval.requested":
        return "needs_approval"
    if t == "question.requested":
        return "needs_input"
    if ((t == "turn.completed" and ev.payload.get("status") == "failed") or t == "worker.restart_exhausted"
            or t == "thread.lost"):
        return "failed"
    if t == "health.stalled":
        return "stalled"
    if t == "health.disconnected" or (t == "agent.exited" and not ev.payload.get("expected")):
        return "disconnected"
    return None


def describe(kind: str, ev: PublishedEvent) -> str:
    p = ev.payload
    if kind == "needs_approval":
        return f"Approval needed: {p.get('command') or p.get('tool_name') or 'a file change'}"
    if kind == "needs_input":
        qs = p.get("questions") or [{}]
        return f"Question: {qs[0].get('question', '?')}"
    if ev.event_type == "thread.lost":
        return f"Conversation lost: the agent had not saved thread {p.get('thread_id')}; continuing in a new thread"
    if kind == "failed":
        return f"Failed: {p.get('error') or p.get('last_error') or 'restart limit reached'}"
    return kind.replace("_", " ").capitalize()


@dataclass
class Delivery:
    url: str
    body: dict[str, Any]
    workspace_id: uuid.UUID
    kind: str


class Notifier:
    """Runtime component: listens on the bus, posts webhooks with retries and backoff."""

    def __init__(self, *, db: Database, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.db = db
        self.settings = settings
        self._queue: asyncio.Queue[PublishedEvent] = asyncio.Queue(maxsize=10_000)
        self._task: asyncio.Task[None] | None = None
        self._client = httpx.AsyncClient(timeout=10, transport=transport)
        self.delivered = 0
        self.failed = 0

    def _on_event(self, ev: PublishedEvent) -> None:
        if signal_kind(ev) is not None:
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(ev)

    async def start(self) -> None:
        self.db.bus.add_listener(self._on_event)
        self._task = asyncio.create_task(self._run(), name="overseer-notifier")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.aclose()

    async def _run(self) -> None:
        pending: set[asyncio.Task[None]] = set()
        while True:
            ev = await self._queue.get()
            try:
                for delivery in await self._deliveries(ev):
                    task = asyncio.create_task(self._deliver(delivery))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
            except Exception:
                log.exception("notifier failed on event %s", ev.id)

    async def _deliveries(self, ev: PublishedEvent) -> list[Delivery]:
        kind = signal_kind(ev)
        assert kind is not None
        async with self.db.read_session() as session:
            ws = await session.get(Workspace, ev.workspace_id)
        hooks = (ws.settings or {}).get("webhooks", []) if ws else []
        out = []
        thread_id = ev.payload.get("thread_id")
        link = f"{self.settings.resolved_public_url}/#thread-{thread_id}" if thread_id else self.settings.resolved_public_url
        text = describe(kind, ev)
        for hook in hooks:
            if not isinstance(hook, dict) or not hook.get("url"):
                continue
            if kind not in hook.get("kinds", DEFAULT_KINDS):
                continue
            if hook.get("format") == "slack":
                body: dict[str, Any] = {"text": f"*{ws.name if ws else ''}* {text}\n<{link}|Open in Overseer>"}
            else:
                body = {"kind": kind, "text": text, "workspace_id": str(ev.workspace_id),
                        "workspace": ws.name if ws else None, "thread_id": thread_id, "event_id": ev.id,
                        "event_type": ev.event_type, "context": ev.payload, "link": link,
                        "created_at": ev.created_at.isoformat()}
            out.append(Delivery(str(hook["url"]), body, ev.workspace_id, kind))
        return out

    async def _deliver(self, d: Delivery) -> None:
        attempts = self.settings.webhook_max_attempts
        error = ""
        for attempt in range(attempts):
            try:
                resp = await self._client.post(d.url, json=d.body)
                if resp.is_success:
                    self.delivered += 1
                    return
                error = f"HTTP {resp.status_code}"
                if 400 <= resp.status_code < 500 and resp.status_code not in (408, 429):
                    break
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            if attempt + 1 < attempts:
                await asyncio.sleep(self.settings.webhook_backoff_s * 2 ** attempt * (0.5 + random.random()))
        log.warning("webhook to %s failed after retries: %s", d.url, error)
        async with self.db.session() as session:
            await event_log.append(session, workspace_id=d.workspace_id, event_type="webhook.failed",
                                   entity_type="workspace", entity_id=d.workspace_id,
                                   payload={"url": d.url, "kind": d.kind, "error": error})
        self.failed += 1
