"""Shared API schema bases: strict write DTOs, read DTOs from ORM objects, pagination."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, ConfigDict, field_validator

T = TypeVar("T")


def contains_nul(value: Any) -> bool:
    """True when ``value`` (a string, or a JSON-like structure of them, keys included) holds U+0000."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return any(contains_nul(v) for v in value)
    return False


class WriteSchema(BaseModel):
    """Request bodies: unknown fields are rejected (400), strings are stripped, and no text may hold
    the NUL character (400 ``VALIDATION_ERROR`` naming the field): PostgreSQL's text and JSONB types
    refuse it and file paths cannot contain it, so accepting it would fail later with a 500 on one
    database and not the other."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if contains_nul(value):
            raise ValueError("must not contain the NUL character (U+0000)")
        return value


class ReadSchema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class Pagination(BaseModel):
    limit: int = 50
    offset: int = 0


def pagination(
    limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Annotated[int, Query(ge=0)] = 0
) -> Pagination:
    return Pagination(limit=limit, offset=offset)
