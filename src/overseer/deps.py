"""Typed FastAPI dependencies shared by every router (the database, settings, the runtime)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from overseer.config import Settings
from overseer.db.engine import Database
from overseer.schemas import Pagination, pagination


def get_db(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_runtime(request: Request) -> Any:
    return request.app.state.runtime


DbDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
PageDep = Annotated[Pagination, Depends(pagination)]
RuntimeDep = Annotated[Any, Depends(get_runtime)]
