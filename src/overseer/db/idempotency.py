"""The ``idempotency_keys`` table: stored responses of state-changing requests (§1.1 B).

A row is keyed by (subject, key). ``request_hash`` is a SHA-256 of method, path and body; a repeat
with the same hash replays ``status_code``/``response_body``; another hash is 422. A row whose
``status_code`` is NULL is a request still in flight.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from overseer.clock import utcnow
from overseer.db.base import Base


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"

    subject: Mapped[str] = mapped_column(String(255), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(2048))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column()
    response_body: Mapped[dict[str, Any] | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
