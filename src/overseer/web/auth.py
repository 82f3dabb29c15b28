"""Browser sign-in with one-time links (issue 6 item 4).

``overseer open`` (or ``overseer demo``) prints ``<public url>/auth/login?code=<code>``. The code is a
short-lived JWT signed with the app key:

- claims ``sub``, ``scopes``, ``workspace_ids`` (the session to grant), ``purpose: "login"``, a random
  ``jti``, ``exp`` = now + :data:`LOGIN_TTL` (2 minutes), and ``aud`` = :data:`LOGIN_AUDIENCE`. The
  audience makes the API refuse it as a bearer token (PyJWT rejects a token with an ``aud`` claim
  when the verifier names no audience), so a leaked link is only good for one sign-in.
- single use: :class:`UsedCodes` remembers each redeemed ``jti`` until its ``exp``. It lives in this
  process's memory, so a restart forgets it; harmless, as every code expires 2 minutes after it was
  made. With several server processes behind one URL a code could be redeemed once per process
  within those 2 minutes (move the set to the database if that matters).

Redeeming a code yields a normal Overseer session JWT (:data:`SESSION_TTL`, 12 h) with the same
subject, scopes and workspaces, which the route puts in the ``overseer_token`` cookie (HttpOnly,
SameSite=Strict, Path=/, Secure on https).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import jwt

from overseer.auth.tokens import ALGORITHM, create_token, principal_from_claims
from overseer.config import Settings
from overseer.errors import OverseerError, Unauthorized

LOGIN_TTL = timedelta(minutes=2)
SESSION_TTL = timedelta(hours=12)
LOGIN_AUDIENCE = "overseer:login"
PURPOSE = "login"


class LoginCodeError(Unauthorized):
    """A sign-in code that cannot be redeemed; ``code`` says why (expired, used, invalid)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


class UsedCodes:
    """The ``jti`` of every redeemed sign-in code, kept until the code's own expiry (in memory)."""

    def __init__(self) -> None:
        self._used: dict[str, float] = {}

    def consume(self, jti: str, exp: float, *, now: float | None = None) -> None:
        """Mark ``jti`` used; raise :class:`LoginCodeError` (``LOGIN_CODE_USED``) if it already was."""
        now = time.time() if now is None else now
        for old in [k for k, until in self._used.items() if until < now]:
            del self._used[old]
        if jti in self._used:
            raise LoginCodeError("LOGIN_CODE_USED", "This sign-in link was already used")
        self._used[jti] = exp

    def __len__(self) -> int:
        return len(self._used)


def create_login_code(key: str, *, subject: str, scopes: Iterable[str], workspace_ids: Iterable[str | uuid.UUID],
                      ttl: timedelta = LOGIN_TTL) -> str:
    """A one-time sign-in code granting a session with these scopes and workspaces (``["*"]``: admin only)."""
    return create_token(key, subject=subject, scopes=scopes, workspace_ids=workspace_ids, ttl=ttl,
                        extra={"purpose": PURPOSE, "jti": uuid.uuid4().hex, "aud": LOGIN_AUDIENCE})


def create_login_link(settings: Settings, key: str, *, subject: str, scopes: Iterable[str],
                      workspace_ids: Iterable[str | uuid.UUID], base_url: str | None = None) -> str:
    """``<public url>/auth/login?code=...`` for :func:`create_login_code` (valid 2 minutes, once)."""
    code = create_login_code(key, subject=subject, scopes=scopes, workspace_ids=workspace_ids)
    base = (base_url or settings.resolved_public_url).rstrip("/")
    return f"{base}/auth/login?{urlencode({'code': code})}"


def redeem_login_code(key: str, code: str, used: UsedCodes) -> dict[str, Any]:
    """Verify ``code`` and mark it used; return the session's claims ``{sub, scopes, workspace_ids}``.

    Raises :class:`LoginCodeError`: ``LOGIN_CODE_EXPIRED``, ``LOGIN_CODE_USED`` or ``LOGIN_CODE_INVALID``.
    """
    try:
        if jwt.get_unverified_header(code).get("alg") != ALGORITHM:
            raise LoginCodeError("LOGIN_CODE_INVALID", "This sign-in link is not valid")
        claims = jwt.decode(code, key, algorithms=[ALGORITHM], audience=LOGIN_AUDIENCE,
                            options={"require": ["exp", "sub", "jti", "aud"]})
    except jwt.ExpiredSignatureError as exc:
        raise LoginCodeError("LOGIN_CODE_EXPIRED", "This sign-in link has expired") from exc
    except jwt.PyJWTError as exc:
        raise LoginCodeError("LOGIN_CODE_INVALID", "This sign-in link is not valid") from exc
    if claims.get("purpose") != PURPOSE or not isinstance(claims.get("jti"), str):
        raise LoginCodeError("LOGIN_CODE_INVALID", "This sign-in link is not valid")
    try:
        principal = principal_from_claims(claims)  # the same rules as any token (e.g. '*' needs admin)
    except OverseerError as exc:
        raise LoginCodeError("LOGIN_CODE_INVALID", f"This sign-in link is not valid: {exc.message}") from exc
    used.consume(claims["jti"], float(claims["exp"]))
    workspaces: list[str] = (["*"] if principal.workspace_ids is None
                             else sorted(str(w) for w in principal.workspace_ids))
    return {"sub": principal.subject, "scopes": sorted(principal.scopes), "workspace_ids": workspaces}


def create_session_token(key: str, claims: dict[str, Any], ttl: timedelta = SESSION_TTL) -> str:
    """The normal Overseer JWT for a redeemed code (what the ``overseer_token`` cookie holds)."""
    return create_token(key, subject=claims["sub"], scopes=claims["scopes"], workspace_ids=claims["workspace_ids"],
                        ttl=ttl)
