"""events: the two event-type indexes become partial, over request events only.

``ix_events_event_type_id`` and ``ix_events_workspace_id_event_type_id`` indexed every row, so every
appended text delta or status event paid two more B-tree inserts (about half of an event's insert
cost on SQLite, ``benchmarks/pipeline.py``), while the only query that needs an index by type is the
"needs my input" feed, over ``approval.requested`` / ``question.requested``. Both are now partial,
``WHERE event_type IN ('approval.requested', 'question.requested')`` (``events.models.REQUEST_EVENTS_SQL``);
other type filters use the ``(workspace_id, id)`` and entity indexes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHERE = "event_type IN ('approval.requested', 'question.requested')"  # == events.models.REQUEST_EVENTS_SQL


def upgrade() -> None:
    op.drop_index("ix_events_event_type_id", table_name="events")
    op.drop_index("ix_events_workspace_id_event_type_id", table_name="events")
    where = sa.text(_WHERE)
    op.create_index("ix_events_request_type_id", "events", ["event_type", "id"],
                    sqlite_where=where, postgresql_where=where)
    op.create_index("ix_events_workspace_id_request_type_id", "events", ["workspace_id", "event_type", "id"],
                    sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    op.drop_index("ix_events_workspace_id_request_type_id", table_name="events")
    op.drop_index("ix_events_request_type_id", table_name="events")
    op.create_index("ix_events_workspace_id_event_type_id", "events", ["workspace_id", "event_type", "id"])
    op.create_index("ix_events_event_type_id", "events", ["event_type", "id"])
