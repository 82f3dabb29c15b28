"""Declarative base, naming convention and portable column types.

- ``Uuid``: native UUID on PostgreSQL, CHAR(32) on SQLite (SQLAlchemy's ``Uuid``).
- ``JSONType``: JSONB on PostgreSQL, JSON (text) on SQLite.
- ``UTCDateTime``: timezone-aware UTC in and out on both (SQLite stores naive UTC).
- ``BigIntPK``: BIGINT on PostgreSQL, INTEGER on SQLite (so it is the rowid and autoincrements).
The naming convention gives every constraint a name, which SQLite batch migrations need.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, MetaData, TypeDecorator, Uuid
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from overseer.clock import utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always returned timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def sqlite_file_path(url: str) -> str | None:
    """The file of a SQLite URL (``sqlite+aiosqlite:///path``), or None for another database or an
    in-memory one (``:memory:``, no path: one database per connection)."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return u.database


_SECOND_TEXT: dict[tuple[int, ...], str] = {}


def sqlite_datetime(value: datetime) -> str:
    """``value`` as SQLAlchemy's SQLite ``DateTime`` stores it (via ``UTCDateTime``): naive UTC text
    ``YYYY-MM-DD HH:MM:SS.ffffff`` (microseconds always present).

    The text up to the second is cached per second (``isoformat`` of an aware datetime costs ~1.5 us,
    a visible share of the ingest; events of one batch share a few seconds)."""
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
    second = (value.year, value.month, value.day, value.hour, value.minute, value.second)
    base = _SECOND_TEXT.get(second)
    if base is None:
        if len(_SECOND_TEXT) > 4096:
            _SECOND_TEXT.clear()
        base = _SECOND_TEXT[second] = value.replace(microsecond=0).isoformat(" ")[:19]
    return f"{base}.{value.microsecond:06d}"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = {
        uuid.UUID: Uuid(),
        datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
        list[dict[str, Any]]: JSONType,
    }


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4, sort_order=-10)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow, sort_order=100)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, sort_order=101)
