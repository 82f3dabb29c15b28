"""The one error tree, and the handlers that render every error in the spec's format.

Body (manager-ai-mvp-spec.md §2.4): ``{"error": {"code": str, "message": str, "details": {...}}}``.
Status codes: 400 invalid input, 401 missing/invalid token, 403 missing scope, 404 not found (also
another workspace's object), 409 state conflict, 422 idempotency key reused with another body,
503 database unavailable, 500 unexpected (never with a traceback in the body).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class OverseerError(Exception):
    """Base of every error Overseer reports to a client. Subclasses fix ``status`` and ``code``."""

    status: int = 500
    code: str = "INTERNAL_ERROR"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class ValidationFailed(OverseerError):
    status, code = 400, "VALIDATION_ERROR"


class MaxDepthExceeded(OverseerError):
    status, code = 400, "MAX_DEPTH_EXCEEDED"


class Unauthorized(OverseerError):
    status, code = 401, "UNAUTHORIZED"


class Forbidden(OverseerError):
    status, code = 403, "FORBIDDEN"


class NotFound(OverseerError):
    status, code = 404, "NOT_FOUND"

    def __init__(self, entity: str, entity_id: object) -> None:
        super().__init__(f"{entity} {entity_id} not found", details={"entity": entity, "id": str(entity_id)})


class Conflict(OverseerError):
    status, code = 409, "CONFLICT"


class InvalidStateTransition(OverseerError):
    """An illegal state change; ``details`` = {id, current_state, requested_state} (§2.4)."""

    status, code = 409, "INVALID_STATE_TRANSITION"

    def __init__(self, entity: str, entity_id: object, current: str, requested: str) -> None:
        super().__init__(
            f"Cannot move {entity} from {current} to {requested}",
            details={"id": str(entity_id), f"{entity}_id": str(entity_id), "current_state": current,
                     "requested_state": requested},
        )


class QuotaExceeded(OverseerError):
    status, code = 409, "QUOTA_EXCEEDED"


class IdempotencyKeyReused(OverseerError):
    status, code = 422, "IDEMPOTENCY_KEY_REUSED"


class ServiceUnavailable(OverseerError):
    status, code = 503, "SERVICE_UNAVAILABLE"


class AgentUnavailable(OverseerError):
    """The agent behind a worker could not be started or reached; ``details.setting`` names a fix."""

    status, code = 503, "AGENT_UNAVAILABLE"


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


class ErrorResponse(BaseModel):
    """The error envelope, for the OpenAPI document."""

    error: ErrorBody


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Declare error responses for a route's OpenAPI ``responses=``."""
    return {s: {"model": ErrorResponse} for s in statuses}


COMMON_ERRORS = error_responses(400, 401, 403, 404, 409, 503)


def _render(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status,
                        content={"error": {"code": code, "message": message, "details": details or {}}})


def _is_db_unavailable(exc: DBAPIError) -> bool:
    if isinstance(exc, OperationalError) or exc.connection_invalidated:
        return True
    text = str(exc.orig).lower() if exc.orig is not None else ""
    return any(s in text for s in ("locked", "connection", "terminat", "shutdown", "closed"))


def install_error_handlers(app: FastAPI) -> None:
    """Make every error, validation and routing included, render as the §2.4 envelope."""

    @app.exception_handler(OverseerError)
    async def _overseer(_: Request, exc: OverseerError) -> JSONResponse:
        return _render(exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return _render(400, "VALIDATION_ERROR", "The request is invalid", {"fields": fields})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 400: "BAD_REQUEST", 401: "UNAUTHORIZED",
                 403: "FORBIDDEN"}
        resp = _render(exc.status_code, codes.get(exc.status_code, "HTTP_ERROR"), str(exc.detail))
        if exc.headers:
            resp.headers.update(exc.headers)
        return resp

    @app.exception_handler(DBAPIError)
    async def _db(_: Request, exc: DBAPIError) -> JSONResponse:
        if _is_db_unavailable(exc):
            log.warning("database unavailable: %s", exc.orig)
            return _render(503, "DATABASE_UNAVAILABLE", "The database is busy or unreachable; retry shortly")
        log.exception("database error")
        return _render(500, "INTERNAL_ERROR", "Unexpected database error")

    @app.exception_handler(OSError)
    async def _os(_: Request, exc: OSError) -> JSONResponse:
        log.warning("database connection failed: %s", exc)
        return _render(503, "DATABASE_UNAVAILABLE", "The database is unreachable; retry shortly")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return _render(500, "INTERNAL_ERROR", "Unexpected error")
