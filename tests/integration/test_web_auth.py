"""Browser sign-in and the CSRF guard (issue 6 item 4), without a browser: one-time sign-in codes,
the session cookie's flags, the origin rule for cookie-authenticated writes, the sign-in page."""

from __future__ import annotations

import uuid
from datetime import timedelta
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from overseer.config import Settings
from overseer.web.auth import (
    LOGIN_AUDIENCE,
    UsedCodes,
    create_login_code,
    create_login_link,
    redeem_login_code,
)
from overseer.web.csrf import check
from tests.conftest import JWT_KEY, TokenFactory, bearer

COOKIE = "overseer_token"


def _set_cookie(resp: httpx.Response) -> tuple[str, dict[str, Any]]:
    """The overseer_token Set-Cookie of ``resp``: (value, attributes lower-cased)."""
    headers = [v for k, v in resp.headers.multi_items() if k.lower() == "set-cookie"]
    assert headers, f"no Set-Cookie in {resp.status_code} {resp.headers}"
    jar: SimpleCookie = SimpleCookie()
    jar.load(headers[0])
    morsel = jar[COOKIE]
    raw = headers[0].lower()
    return morsel.value, {"httponly": "httponly" in raw, "secure": "; secure" in raw, "samesite": morsel["samesite"].lower(),
                          "path": morsel["path"], "max-age": morsel["max-age"]}


async def _login(client: httpx.AsyncClient, settings: Settings, *, scopes: list[str] | None = None,
                 workspaces: list[str] | None = None, sub: str = "alice") -> httpx.Response:
    link = create_login_link(settings, JWT_KEY, subject=sub, scopes=scopes or ["admin"],
                             workspace_ids=workspaces or ["*"], base_url="http://test")
    parts = urlsplit(link)
    return await client.get(f"{parts.path}?{parts.query}")


def _cookie(value: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={value}"}


# ------------------------------------------------------------------------------------ sign-in page

@pytest.mark.parametrize("path", ["/", "/ui"])
async def test_page_without_cookie_shows_sign_in(client: httpx.AsyncClient, path: str) -> None:
    resp = await client.get(path)
    assert resp.status_code == 200
    assert "overseer open" in resp.text and "app.js" not in resp.text
    assert "default-src 'self'" in resp.headers["content-security-policy"]


async def test_page_with_a_bad_cookie_shows_sign_in(client: httpx.AsyncClient, make_token: TokenFactory) -> None:
    expired = make_token("admin", ttl=timedelta(seconds=-5))
    for value in ("garbage", expired, make_token("admin", key="another-key-0123456789-0123456789-abcdef")):
        resp = await client.get("/", headers=_cookie(value))
        assert "overseer open" in resp.text and "app.js" not in resp.text


async def test_page_and_assets_with_a_valid_cookie(client: httpx.AsyncClient, make_token: TokenFactory) -> None:
    resp = await client.get("/", headers=_cookie(make_token("admin")))
    assert resp.status_code == 200 and "/static/app.js?v=" in resp.text and "/static/app.css?v=" in resp.text
    assert resp.headers["x-frame-options"] == "DENY" and resp.headers["referrer-policy"] == "same-origin"
    js = await client.get("/static/app.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"] and "EventSource" in js.text
    assert (await client.get("/static/app.css")).status_code == 200


# ------------------------------------------------------------------------------------ login codes

async def test_login_sets_the_session_cookie_then_opens_the_page(client: httpx.AsyncClient, settings: Settings) -> None:
    resp = await _login(client, settings)
    assert resp.status_code == 200
    assert 'http-equiv="refresh" content="0;url=/"' in resp.text
    value, attrs = _set_cookie(resp)
    assert attrs == {"httponly": True, "secure": False, "samesite": "strict", "path": "/", "max-age": "43200"}
    page = await client.get("/", headers=_cookie(value))
    assert "/static/app.js" in page.text
    snap = await client.get("/api/v1/ops/snapshot", headers=_cookie(value))
    assert snap.status_code == 200, snap.text


async def test_cookie_is_secure_over_https(app: Any, settings: Settings) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://test") as https:
        resp = await _login(https, settings)
    assert _set_cookie(resp)[1]["secure"] is True


async def test_login_code_works_once(client: httpx.AsyncClient, settings: Settings) -> None:
    link = create_login_link(settings, JWT_KEY, subject="alice", scopes=["admin"], workspace_ids=["*"])
    parts = urlsplit(link)
    assert link.startswith(settings.resolved_public_url + "/auth/login?code=")
    first = await client.get(f"{parts.path}?{parts.query}")
    assert first.status_code == 200 and "set-cookie" in first.headers
    again = await client.get(f"{parts.path}?{parts.query}")
    assert again.status_code == 401 and "already used" in again.text and "set-cookie" not in again.headers


async def test_expired_and_invalid_codes_are_refused(client: httpx.AsyncClient, make_token: TokenFactory) -> None:
    expired = create_login_code(JWT_KEY, subject="a", scopes=["admin"], workspace_ids=["*"], ttl=timedelta(seconds=-5))
    resp = await client.get("/auth/login", params={"code": expired})
    assert resp.status_code == 401 and "expired" in resp.text and "set-cookie" not in resp.headers
    forged = create_login_code("not-the-key-0123456789-0123456789-abcdef", subject="a", scopes=["admin"],
                               workspace_ids=["*"])
    no_purpose = make_token("admin", extra={"aud": LOGIN_AUDIENCE, "jti": "x"})
    api_token = make_token("admin")  # a session token is not a sign-in code
    for code in ("nonsense", forged, no_purpose, api_token):
        resp = await client.get("/auth/login", params={"code": code})
        assert resp.status_code == 401 and "not valid" in resp.text and "set-cookie" not in resp.headers
    assert (await client.get("/auth/login")).status_code == 400


async def test_a_login_code_is_not_an_api_token(client: httpx.AsyncClient) -> None:
    code = create_login_code(JWT_KEY, subject="a", scopes=["admin"], workspace_ids=["*"])
    resp = await client.get("/api/v1/ops/snapshot", headers=bearer(code))
    assert resp.status_code == 401


async def test_all_workspaces_needs_admin(client: httpx.AsyncClient) -> None:
    code = create_login_code(JWT_KEY, subject="a", scopes=["supervisor:read"], workspace_ids=["*"])
    resp = await client.get("/auth/login", params={"code": code})
    assert resp.status_code == 401 and "set-cookie" not in resp.headers


async def test_session_keeps_the_codes_scopes_and_workspaces(client: httpx.AsyncClient, settings: Settings,
                                                             workspace_factory: Any) -> None:
    a = await workspace_factory("alpha")
    await workspace_factory("beta")
    resp = await _login(client, settings, scopes=["supervisor:read"], workspaces=[a["id"]], sub="bob")
    value, _ = _set_cookie(resp)
    snap = (await client.get("/api/v1/ops/snapshot", headers=_cookie(value))).json()
    assert [w["name"] for w in snap["workspaces"]] == ["alpha"]
    write = await client.post("/api/v1/ops/signals/x/ack", headers={**_cookie(value), "Origin": "http://test"})
    assert write.status_code == 403 and write.json()["error"]["code"] == "FORBIDDEN"  # the scope, not CSRF


def test_used_codes_forget_expired_entries() -> None:
    used = UsedCodes()
    used.consume("a", exp=100.0, now=50.0)
    with pytest.raises(Exception, match="already used"):
        used.consume("a", exp=100.0, now=60.0)
    used.consume("b", exp=300.0, now=200.0)  # prunes "a" (expired at 100)
    assert len(used) == 1


def test_redeem_returns_the_session_claims() -> None:
    ws = str(uuid.uuid4())
    code = create_login_code(JWT_KEY, subject="carol", scopes=["supervisor:read", "supervisor:write"], workspace_ids=[ws])
    claims = redeem_login_code(JWT_KEY, code, UsedCodes())
    assert claims == {"sub": "carol", "scopes": ["supervisor:read", "supervisor:write"], "workspace_ids": [ws]}


async def test_logout_clears_the_cookie(client: httpx.AsyncClient, make_token: TokenFactory) -> None:
    resp = await client.post("/auth/logout", headers={**_cookie(make_token("admin")), "Origin": "http://test"})
    assert resp.status_code == 204
    raw = resp.headers["set-cookie"].lower()
    assert raw.startswith(f"{COOKIE}=") and "max-age=0" in raw and "path=/" in raw


# ------------------------------------------------------------------------------------ CSRF

ACK = "/api/v1/ops/signals/no-such-signal/ack"  # passes CSRF -> 404; refused -> 403 ORIGIN_MISMATCH


@pytest.mark.parametrize(("headers", "allowed"), [
    ({"Origin": "http://test"}, True),
    ({"Origin": "http://test:80"}, True),
    ({"Referer": "http://test/some/page?x=1"}, True),
    ({}, False),
    ({"Origin": "http://evil.example"}, False),
    ({"Origin": "https://test"}, False),
    ({"Origin": "http://test:8080"}, False),
    ({"Origin": "null"}, False),
    ({"Origin": "null", "Referer": "http://test/"}, False),
    ({"Referer": "http://evil.example/"}, False),
    ({"Origin": "http://evil.example", "Referer": "http://test/"}, False),
])
async def test_cookie_writes_must_come_from_our_origin(client: httpx.AsyncClient, make_token: TokenFactory,
                                                       headers: dict[str, str], allowed: bool) -> None:
    resp = await client.post(ACK, headers={**_cookie(make_token("admin")), **headers})
    if allowed:
        assert resp.status_code == 404, resp.text
    else:
        assert resp.status_code == 403, resp.text
        err = resp.json()["error"]
        assert err["code"] == "ORIGIN_MISMATCH" and err["details"]["expected"] == "http://test"


async def test_bearer_requests_and_reads_are_unaffected(client: httpx.AsyncClient, make_token: TokenFactory) -> None:
    token = make_token("admin")
    foreign = {"Origin": "http://evil.example"}
    resp = await client.post(ACK, headers={**bearer(token), **foreign})
    assert resp.status_code == 404  # a bearer request is never a browser's ambient credential
    both = await client.post(ACK, headers={**bearer(token), **_cookie(token), **foreign})
    assert both.status_code == 404
    read = await client.get("/api/v1/ops/signals", headers={**_cookie(token), **foreign})
    assert read.status_code == 200
    anonymous = await client.post(ACK, headers=foreign)
    assert anonymous.status_code == 401  # no cookie: nothing to forge; the route answers


async def test_refused_writes_never_reach_the_idempotency_store(client: httpx.AsyncClient,
                                                                make_token: TokenFactory) -> None:
    cookie = _cookie(make_token("admin"))
    first = await client.post(ACK, headers={**cookie, "Idempotency-Key": "k1", "Origin": "http://evil.example"})
    assert first.status_code == 403
    second = await client.post(ACK, headers={**cookie, "Idempotency-Key": "k1", "Origin": "http://test"})
    assert second.status_code == 404 and "idempotent-replayed" not in second.headers


def test_check_uses_the_scheme_of_the_request() -> None:
    scope = {"type": "http", "method": "DELETE", "scheme": "https",
             "headers": [(b"host", b"ops.example:443"), (b"cookie", b"overseer_token=x"),
                         (b"origin", b"https://ops.example")]}
    assert check(scope)[0] is True
    scope["scheme"] = "http"
    assert check(scope)[0] is False
    no_host = {"type": "http", "method": "POST", "scheme": "http",
               "headers": [(b"cookie", b"overseer_token=x"), (b"origin", b"http://x")]}
    assert check(no_host)[0] is False
