"""Table ``chat_messages``: the global Supervisor chat, one conversation per owner (issue 6 item 5).

``owner`` is the token subject that wrote (or was answered in) the conversation. ``workspace_ids`` lists
every workspace whose data the message concerns; a reader sees a message only when it is the owner **and**
can see every one of those workspaces (``ops.chat.visible``), so a message never reveals another
workspace's data. ``payload`` is the structured side of the message (command, contract, results,
violations, references to workers/threads/turns/approvals); see ``ops/AGENTS.md`` "chat".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from overseer.clock import utcnow
from overseer.db.base import Base, BigIntPK

_JSON = JSON().with_variant(JSONB(), "postgresql")
ROLES = ("user", "assistant", "system")


class ChatMessage(Base):
    __tablename__ = "chat_messages"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    """user | assistant (a reply to a command or to free text) | system (news from dispatched work)."""
    text: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(_JSON, default=dict)
    workspace_ids: Mapped[list[str]] = mapped_column(_JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_chat_messages_owner_id", "owner", "id"),)
