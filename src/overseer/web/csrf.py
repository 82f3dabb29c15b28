"""CSRF guard for cookie-authenticated requests (issue 6 item 4). A pure ASGI middleware.

Rule: a POST/PUT/PATCH/DELETE that carries the ``overseer_token`` cookie and no ``Authorization``
header must name its own origin: the ``Origin`` header (or, when there is none, the ``Referer``) must
have the same scheme, host and port as the request itself (scheme from the ASGI scope, which uvicorn
sets from ``X-Forwarded-Proto`` behind a trusted proxy; host and port from the ``Host`` header).
Anything else, ``Origin: null`` included, is 403 ``ORIGIN_MISMATCH`` in the error envelope, before
the request reaches a route (or the idempotency middleware, which runs inside this one).

Bearer requests (scripts, the CLI) are untouched: a browser cannot add an ``Authorization`` header to
a cross-site request without a CORS preflight, which Overseer never grants. Safe methods are
untouched: they change nothing. ``SameSite=Strict`` on the cookie is the first line; this is the
second (it also covers same-site but cross-origin pages, e.g. another port on localhost).
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from overseer.auth.deps import COOKIE_NAME

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

Origin = tuple[str, str, int | None]


def _origin(url: str) -> Origin | None:
    """(scheme, host, port) of an absolute http(s) URL, default port filled in; None if unusable."""
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    if scheme not in ("http", "https") or not host:
        return None
    return scheme, host, port


def request_origin(scope: Scope, headers: Headers) -> Origin | None:
    """The origin the request was addressed to: the scope's scheme + the ``Host`` header."""
    host = headers.get("host")
    if not host:
        return None
    scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
    return _origin(f"{scheme}://{host}")


def check(scope: Scope) -> tuple[bool, dict[str, str | None]]:
    """(allowed, details) for one HTTP request scope; details explain a refusal."""
    if scope.get("method") not in UNSAFE_METHODS:
        return True, {}
    headers = Headers(scope=scope)
    if "authorization" in headers:
        return True, {}
    if COOKIE_NAME not in cookie_parser(headers.get("cookie", "")):
        return True, {}
    claimed_header = "origin" if "origin" in headers else "referer"
    claimed = headers.get(claimed_header)
    expected = request_origin(scope, headers)
    got = _origin(claimed) if claimed and claimed != "null" else None
    if expected is not None and got == expected:
        return True, {}
    return False, {"origin": claimed, "header": claimed_header if claimed else None,
                   "expected": f"{expected[0]}://{headers.get('host')}" if expected else None}


class CsrfMiddleware:
    """Refuse cookie-authenticated unsafe requests from another origin (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        allowed, details = check(scope)
        if allowed:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": {
            "code": "ORIGIN_MISMATCH",
            "message": "Cookie-authenticated requests must come from this server's own page "
                       "(Origin or Referer must match); scripts should send an Authorization header",
            "details": details}}).encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"vary", b"Origin")]})
        await send({"type": "http.response.body", "body": body})
