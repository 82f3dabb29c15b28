"""Table ``dispatch_records``: the durable idempotency store of the dispatch executor (CM-005).

One row per (``workspace_id``, ``dedupe_key``) that a ``dispatch_turn`` action carried. The row is
inserted *before* the action acts (the unique constraint makes a concurrent twin lose the race) with
``result`` NULL ("in progress"), and filled with the action's result once it was dispatched. Unlike the
fork's in-memory map it survives a restart.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from overseer.clock import utcnow
from overseer.db.base import Base, IdMixin

# SQL NULL (not JSON null) for "no result yet", so ``result IS NULL`` finds reservations.
_Result = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


class DispatchRecord(IdMixin, Base):
    __tablename__ = "dispatch_records"

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    dedupe_key: Mapped[str] = mapped_column(String(200))
    action_id: Mapped[str] = mapped_column(String(100))
    result: Mapped[dict[str, Any] | None] = mapped_column(_Result, nullable=True)
    """The action's result (see ``ops.dispatch.ActionResult``); NULL while the action is in progress."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("workspace_id", "dedupe_key", name="uq_dispatch_records_workspace_id_dedupe_key"),)
