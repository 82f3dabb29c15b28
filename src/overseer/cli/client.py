"""A small HTTP client for the CLI: the same API a script would call, errors rendered plainly.

Server and token come from ``--url``/``--token`` or ``OVERSEER_URL``/``OVERSEER_TOKEN``; without a
token the CLI mints an admin token with the local data directory's key (a single-user machine).
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import httpx
import typer

from overseer.auth.tokens import create_token
from overseer.config import get_settings


class ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        err = body.get("error", {}) if isinstance(body, dict) else {}
        super().__init__(f"{status} {err.get('code', 'ERROR')}: {err.get('message', body)}")
        self.status = status
        self.body = body


def default_url() -> str:
    return os.environ.get("OVERSEER_URL") or get_settings().resolved_public_url


def default_token() -> str:
    token = os.environ.get("OVERSEER_TOKEN")
    if token:
        return token
    settings = get_settings()
    return create_token(settings.jwt_key(), subject="cli", scopes=["admin"], workspace_ids=["*"],
                        ttl=timedelta(minutes=10))


class Client:
    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 60.0) -> None:
        self.url = (url or default_url()).rstrip("/")
        self.http = httpx.Client(base_url=self.url, timeout=timeout,
                                 headers={"Authorization": f"Bearer {token or default_token()}"})

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = self.http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise typer.BadParameter(f"cannot reach Overseer at {self.url}: is `overseer serve` running?") from exc
        body = resp.json() if resp.content and resp.headers.get("content-type", "").startswith("application/json") \
            else {}
        if resp.status_code >= 400:
            raise ApiError(resp.status_code, body)
        return body

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.request("POST", path, **kw)
