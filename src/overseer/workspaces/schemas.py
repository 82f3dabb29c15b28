from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import AnyHttpUrl, Field

from overseer.schemas import ReadSchema, WriteSchema


class WorkspaceCreate(WriteSchema):
    name: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    root_path: str = Field(min_length=1, max_length=4096)
    settings: dict[str, Any] = Field(default_factory=dict)


class WorkspaceRead(ReadSchema):
    id: uuid.UUID
    name: str
    root_path: str
    settings: dict[str, Any]
    created_at: datetime


SignalKind = Literal["needs_approval", "needs_input", "failed", "stalled", "disconnected"]
DEFAULT_WEBHOOK_KINDS: tuple[SignalKind, ...] = ("needs_approval", "needs_input", "failed")


class Webhook(WriteSchema):
    """An outbound webhook: a generic JSON POST or Slack's incoming-webhook format."""

    url: AnyHttpUrl
    format: Literal["generic", "slack"] = "generic"
    kinds: list[SignalKind] = Field(default_factory=lambda: list(DEFAULT_WEBHOOK_KINDS), max_length=5)


class WorkspaceSettings(WriteSchema):
    """Per-workspace settings (PUT replaces them whole)."""

    webhooks: list[Webhook] = Field(default_factory=list, max_length=20)
    approval_timeout_s: float | None = Field(default=None, gt=0, le=7 * 86400)
    """Pending approvals older than this get ``approval_timeout_decision`` (issue 4 item 5)."""
    approval_timeout_decision: Literal["decline", "cancel", "accept"] = "decline"
