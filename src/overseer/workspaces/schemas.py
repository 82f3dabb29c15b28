from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

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
