"""FastAPI dependencies: the authenticated principal, scope checks, and typed aliases.

A token comes from ``Authorization: Bearer <jwt>`` or, for the web page, the ``overseer_token``
cookie. 401 for a missing/malformed/badly signed/expired token; 403 for a missing scope (§2.2).
Use the aliases: ``def route(principal: SupervisorRead)``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from overseer.auth.scopes import Scope
from overseer.auth.tokens import Principal, decode_token
from overseer.errors import Forbidden, Unauthorized

COOKIE_NAME = "overseer_token"
_bearer = HTTPBearer(auto_error=False, description="A JWT signed with HS256")


async def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    token = credentials.credentials if credentials else request.cookies.get(COOKIE_NAME)
    if not token:
        raise Unauthorized("Missing bearer token")
    principal = decode_token(request.app.state.jwt_key, token)
    request.state.principal = principal
    return principal


def require(*scopes: Scope) -> object:
    """Dependency factory: the principal, after checking it holds every scope in ``scopes``."""

    async def _check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        missing = [s.value for s in scopes if not principal.has_scope(s)]
        if missing:
            raise Forbidden("Token lacks a required scope", details={"required": missing})
        return principal

    return Depends(_check)


AnyPrincipal = Annotated[Principal, Depends(current_principal)]
SupervisorRead = Annotated[Principal, require(Scope.supervisor_read)]
SupervisorWrite = Annotated[Principal, require(Scope.supervisor_write)]
JobsRead = Annotated[Principal, require(Scope.jobs_read)]
JobsWrite = Annotated[Principal, require(Scope.jobs_write)]
Admin = Annotated[Principal, require(Scope.admin)]
