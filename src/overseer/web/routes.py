"""The live page and browser sign-in (issue 6 items 2-4).

- ``GET /`` and ``GET /ui``: the page (``templates/index.html`` + ``/static/app.js`` + ``/static/app.css``)
  when the ``overseer_token`` cookie holds a valid token; otherwise a small sign-in page that points
  at ``overseer open``. The page is a pure API client (see ``web/AGENTS.md``).
- ``GET /auth/login?code=...``: redeem a one-time sign-in code (``web/auth.py``), set the session
  cookie, then send the browser to ``/``.
- ``POST /auth/logout``: clear the cookie (204).
- ``/static``: the assets (``StaticFiles``), shipped inside the package.

:func:`install` wires it all into an app: this router, the static mount and the CSRF middleware.
"""

from __future__ import annotations

import hashlib
import html
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from overseer.auth.deps import COOKIE_NAME
from overseer.auth.tokens import decode_token
from overseer.errors import OverseerError
from overseer.web.auth import SESSION_TTL, LoginCodeError, UsedCodes, create_session_token, redeem_login_code
from overseer.web.csrf import CsrfMiddleware

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
TEMPLATES = HERE / "templates"

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

router = APIRouter(tags=["web"], include_in_schema=False)


def _asset_version() -> str:
    digest = hashlib.sha256()
    for name in sorted(p.name for p in STATIC_DIR.iterdir() if p.is_file()):
        digest.update(name.encode())
        digest.update((STATIC_DIR / name).read_bytes())
    return digest.hexdigest()[:12]


def _template(name: str, **values: str) -> str:
    text = (TEMPLATES / name).read_text(encoding="utf-8")
    for key, value in {"v": _asset_version(), **values}.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def _page(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def _signin_page(message: str | None = None, status: int = 200) -> HTMLResponse:
    note = f'<p class="signin-error" role="alert">{html.escape(message)}</p>' if message else ""
    return _page(_template("signin.html", error=note), status)


def _signed_in(request: Request) -> bool:
    token = request.cookies.get(COOKIE_NAME)
    if not token:
        return False
    try:
        decode_token(request.app.state.jwt_key, token)
    except OverseerError:
        return False
    return True


def used_codes(app: Any) -> UsedCodes:
    """The app's memory of redeemed sign-in codes (created on first use)."""
    used = getattr(app.state, "login_codes_used", None)
    if used is None:
        used = app.state.login_codes_used = UsedCodes()
    return used


@router.get("/", response_class=HTMLResponse)
@router.get("/ui", response_class=HTMLResponse)
async def index(request: Request) -> HTMLResponse:
    """The live operations page, or the sign-in page without a valid session cookie."""
    if not _signed_in(request):
        return _signin_page()
    return _page(_template("index.html"))


_SIGNIN_MESSAGES = {
    "LOGIN_CODE_EXPIRED": "This sign-in link has expired (links last 2 minutes). Run `overseer open` for a new one.",
    "LOGIN_CODE_USED": "This sign-in link was already used. Run `overseer open` for a new one.",
}


@router.get("/auth/login", response_class=HTMLResponse)
async def login(request: Request, code: Annotated[str, Query(max_length=8192)] = "") -> HTMLResponse:
    """Redeem a one-time sign-in code: set the session cookie and open ``/``.

    The answer is a tiny page that moves on to ``/`` by itself (``<meta http-equiv=refresh>``) rather
    than a 303: a navigation that starts on our own origin, so the SameSite=Strict cookie is sent
    even when the link was clicked on another site (a chat app in a browser tab), where the browser
    would withhold it for the rest of a redirect chain begun cross-site.
    """
    if not code:
        return _signin_page("This sign-in link has no code.", 400)
    try:
        claims = redeem_login_code(request.app.state.jwt_key, code, used_codes(request.app))
    except LoginCodeError as exc:
        return _signin_page(_SIGNIN_MESSAGES.get(exc.code, "This sign-in link is not valid. "
                                                           "Run `overseer open` for a new one."), 401)
    token = create_session_token(request.app.state.jwt_key, claims)
    response = _page(_template("signed_in.html"))
    response.set_cookie(COOKIE_NAME, token, max_age=int(SESSION_TTL.total_seconds()), path="/", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


@router.post("/auth/logout", status_code=204, response_class=Response)
async def logout(request: Request) -> Response:
    """Forget the session cookie (the token itself stays valid until it expires)."""
    response = Response(status_code=204)
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response


def install(app: FastAPI) -> None:
    """Serve the page: this router, ``/static``, and the CSRF middleware (outside every other one
    added before it, so a refused request never reaches the idempotency store)."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(CsrfMiddleware)
