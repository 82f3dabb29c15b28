"""``Idempotency-Key`` for every state-changing request (manager-ai-mvp-spec.md §1.1 B; issue 3 item 8).

A pure ASGI middleware. For POST/PUT/PATCH/DELETE carrying the header, keyed by (token subject, key):

- first time: a placeholder row is inserted (so a concurrent repeat sees it), the request runs, and
  its JSON response is stored (status < 500; a 5xx deletes the placeholder so the client may retry);
- a repeat with the same method, path and body replays the stored response without acting again
  (header ``Idempotent-Replayed: true``);
- the same key with a different request is 422 ``IDEMPOTENCY_KEY_REUSED``;
- a repeat while the first is still running is 409 ``IDEMPOTENCY_IN_PROGRESS``.
Keys live in the database, so they survive a restart. Requests without a valid token pass through
untouched (the route answers 401).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from overseer.auth.deps import COOKIE_NAME
from overseer.auth.tokens import decode_token
from overseer.db.idempotency import IdempotencyKey
from overseer.errors import OverseerError

HEADER = b"idempotency-key"
METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_KEY_LEN = 255


def _error(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> tuple[int, bytes]:
    return status, json.dumps({"error": {"code": code, "message": message, "details": details or {}}}).encode()


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in METHODS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        key_raw = headers.get(HEADER)
        subject = self._subject(scope, headers) if key_raw else None
        if not key_raw or subject is None:
            await self.app(scope, receive, send)
            return
        key = key_raw.decode("latin-1").strip()
        if not key or len(key) > MAX_KEY_LEN:
            await _send(send, *_error(400, "VALIDATION_ERROR", f"Idempotency-Key must be 1..{MAX_KEY_LEN} characters"))
            return
        body = await _read_body(receive)
        digest = hashlib.sha256(b"\n".join([scope["method"].encode(), scope["path"].encode(),
                                            scope.get("query_string", b""), body])).hexdigest()
        db = scope["app"].state.db
        try:
            async with db.session() as session:
                session.add(IdempotencyKey(subject=subject, key=key, method=scope["method"], path=scope["path"],
                                           request_hash=digest))
                await session.flush()
        except IntegrityError:
            async with db.read_session() as session:
                row = (await session.execute(select(IdempotencyKey).where(
                    IdempotencyKey.subject == subject, IdempotencyKey.key == key))).scalar_one_or_none()
            if row is None:  # deleted after a 5xx in between: treat as new next time
                await _send(send, *_error(409, "IDEMPOTENCY_IN_PROGRESS", "Retry this request"))
            elif row.request_hash != digest:
                await _send(send, *_error(422, "IDEMPOTENCY_KEY_REUSED",
                                          "This Idempotency-Key was used with a different request",
                                          {"key": key, "method": row.method, "path": row.path}))
            elif row.status_code is None:
                await _send(send, *_error(409, "IDEMPOTENCY_IN_PROGRESS",
                                          "A request with this Idempotency-Key is still running", {"key": key}))
            else:
                await _send(send, row.status_code, json.dumps(row.response_body).encode(), replayed=True)
            return

        captured: dict[str, Any] = {"status": 500, "body": b"", "json": True}

        async def replay_receive() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        async def capture_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                ctype = dict(message.get("headers", [])).get(b"content-type", b"")
                captured["json"] = ctype.startswith(b"application/json")
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, replay_receive, capture_send)
        finally:
            await self._store(db, subject, key, captured)

    @staticmethod
    def _subject(scope: Scope, headers: dict[bytes, bytes]) -> str | None:
        auth = headers.get(b"authorization", b"").decode("latin-1")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        if token is None:
            for part in headers.get(b"cookie", b"").decode("latin-1").split(";"):
                name, _, value = part.strip().partition("=")
                if name == COOKIE_NAME:
                    token = value
        if not token:
            return None
        try:
            return decode_token(scope["app"].state.jwt_key, token).subject
        except OverseerError:
            return None

    @staticmethod
    async def _store(db: Any, subject: str, key: str, captured: dict[str, Any]) -> None:
        status = int(captured["status"])
        async with db.session() as session:
            row = (await session.execute(select(IdempotencyKey).where(
                IdempotencyKey.subject == subject, IdempotencyKey.key == key))).scalar_one_or_none()
            if row is None:
                return
            if status >= 500 or not captured["json"]:
                await session.execute(delete(IdempotencyKey).where(IdempotencyKey.subject == subject,
                                                                   IdempotencyKey.key == key))
                return
            try:
                row.response_body = json.loads(captured["body"] or b"null")
            except ValueError:
                row.response_body = None
            row.status_code = status


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _send(send: Send, status: int, body: bytes, *, replayed: bool = False) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if replayed:
        headers.append((b"idempotent-replayed", b"true"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
