"""The ``workspaces`` table: every owned row elsewhere carries a ``workspace_id`` pointing here."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from overseer.clock import utcnow
from overseer.db.base import Base, IdMixin


class Workspace(IdMixin, Base):
    __tablename__ = "workspaces"

    name: Mapped[str] = mapped_column(String(255), unique=True)
    root_path: Mapped[str] = mapped_column(String(4096))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Workspace({self.name!r}, {self.id})"


__all__ = ["Workspace", "uuid"]
