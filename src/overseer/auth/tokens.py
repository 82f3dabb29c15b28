"""Issue and verify HS256 JWTs (manager-ai-mvp-spec.md §2.2).

Claims: ``sub`` (str), ``scopes`` (list[str]; a space-separated ``scope`` string is also accepted,
RFC 8693 style), ``workspace_id`` (str) and optionally ``workspace_ids`` (list[str]) for a principal
that spans workspaces; ``"*"`` means every workspace and is only honoured with the ``admin`` scope.
``exp`` is required. The algorithm is pinned to HS256: any other ``alg``, ``none`` included, is
rejected before the signature is looked at.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt

from overseer.auth.scopes import Scope
from overseer.clock import utcnow
from overseer.errors import Unauthorized

ALGORITHM = "HS256"
ALL_WORKSPACES = "*"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: subject, granted scopes, and the workspaces the caller may see.

    ``workspace_ids`` is None for an admin spanning every workspace (``"*"``). ``job_id`` is set
    for the short-lived tokens Overseer hands a job's agent (it may only act on that job's children).
    """

    subject: str
    scopes: frozenset[str]
    workspace_ids: frozenset[uuid.UUID] | None
    job_id: uuid.UUID | None = None

    @property
    def is_admin(self) -> bool:
        return Scope.admin in self.scopes

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes or self.is_admin

    def can_see(self, workspace_id: uuid.UUID) -> bool:
        return self.workspace_ids is None or workspace_id in self.workspace_ids

    @property
    def default_workspace_id(self) -> uuid.UUID | None:
        if self.workspace_ids and len(self.workspace_ids) == 1:
            return next(iter(self.workspace_ids))
        return None


def create_token(
    key: str,
    *,
    subject: str,
    scopes: Iterable[str],
    workspace_ids: Iterable[str | uuid.UUID],
    ttl: timedelta = timedelta(hours=1),
    issuer: str = "overseer",
    extra: dict[str, Any] | None = None,
) -> str:
    """Sign a token. ``workspace_ids`` may be ``["*"]`` (admin only, enforced when verifying)."""
    ids = [str(w) for w in workspace_ids]
    now = utcnow()
    claims: dict[str, Any] = {
        "sub": subject,
        "scopes": sorted(set(scopes)),
        "workspace_id": ids[0] if ids else None,
        "workspace_ids": ids,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
        "iss": issuer,
    }
    claims.update(extra or {})
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def decode_token(key: str, token: str) -> Principal:
    """Verify ``token`` and return its principal. Raises :class:`Unauthorized` on any defect."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise Unauthorized("Malformed token") from exc
    if header.get("alg") != ALGORITHM:
        raise Unauthorized("Token algorithm not accepted", details={"alg": str(header.get("alg"))})
    try:
        claims = jwt.decode(token, key, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("Token expired", code="TOKEN_EXPIRED") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"Invalid token: {exc}") from exc
    return principal_from_claims(claims)


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    raw_scopes = claims.get("scopes")
    if raw_scopes is None and isinstance(claims.get("scope"), str):
        raw_scopes = claims["scope"].split()
    if not isinstance(raw_scopes, list) or not all(isinstance(s, str) for s in raw_scopes):
        raise Unauthorized("Token scopes must be a list of strings")
    scopes = frozenset(raw_scopes)
    raw_ids: list[Any] = []
    if isinstance(claims.get("workspace_ids"), list):
        raw_ids.extend(claims["workspace_ids"])
    if claims.get("workspace_id") is not None:
        raw_ids.append(claims["workspace_id"])
    workspace_ids: frozenset[uuid.UUID] | None
    if ALL_WORKSPACES in raw_ids:
        if Scope.admin not in scopes:
            raise Unauthorized("Only an admin token may span every workspace")
        workspace_ids = None
    else:
        try:
            workspace_ids = frozenset(uuid.UUID(str(w)) for w in raw_ids)
        except ValueError as exc:
            raise Unauthorized("Token names an invalid workspace id") from exc
    job_id = claims.get("job_id")
    try:
        job_uuid = uuid.UUID(job_id) if job_id else None
    except ValueError as exc:
        raise Unauthorized("Token names an invalid job id") from exc
    return Principal(str(claims["sub"]), scopes, workspace_ids, job_uuid)
