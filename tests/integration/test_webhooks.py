"""Outbound webhooks (issue 6 item 4): generic JSON and Slack format, retries with backoff, a final
failure recorded in the feed, and settings validated per workspace."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from overseer.events import log as event_log
from overseer.runtime.notifier import Notifier


class Receiver:
    """A webhook receiver on 127.0.0.1 that fails the first ``fail_first`` requests with 503."""

    def __init__(self, fail_first: int = 0, status: int = 503) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.attempts = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.attempts += 1
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                code = status if outer.attempts <= fail_first else 200
                if code == 200:
                    outer.bodies.append(body)
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail_first=2)
    yield r
    r.close()


@pytest.fixture
async def notifier(app: Any) -> Any:
    settings = app.state.settings.model_copy(update={"webhook_backoff_s": 0.05, "webhook_max_attempts": 4})
    n = Notifier(db=app.state.db, settings=settings)
    await n.start()
    yield n
    await n.stop()


async def _raise_approval(app: Any, ws_id: str) -> None:
    async with app.state.db.session() as s:
        await event_log.append(s, workspace_id=uuid.UUID(ws_id), event_type="approval.requested", entity_type="worker",
                               entity_id=uuid.uuid4(), payload={"approval_id": "a", "command": "make deploy",
                                                                "thread_id": "th-1"})


async def _until(check: Any, timeout_s: float = 10) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_generic_and_slack_delivered_after_retries(app: Any, client: httpx.AsyncClient, notifier: Any,
                                                        receiver: Receiver, workspace: dict[str, Any],
                                                        ws_headers: Any) -> None:
    hooks = {"webhooks": [{"url": receiver.url}, {"url": receiver.url, "format": "slack"}]}
    resp = await client.put(f"/api/v1/workspaces/{workspace['id']}/settings", headers=ws_headers(), json=hooks)
    assert resp.status_code == 200, resp.text
    await _raise_approval(app, workspace["id"])
    await _until(lambda: len(receiver.bodies) == 2)
    generic = next(b for b in receiver.bodies if "kind" in b)
    slack = next(b for b in receiver.bodies if "text" in b and "kind" not in b)
    assert generic["kind"] == "needs_approval" and generic["context"]["command"] == "make deploy"
    assert generic["link"].endswith("#thread-th-1") and generic["workspace"] == workspace["name"]
    assert "make deploy" in slack["text"]
    assert receiver.attempts == 4  # two 503s retried


async def test_final_failure_is_in_the_feed(app: Any, client: httpx.AsyncClient, notifier: Any,
                                            workspace: dict[str, Any], ws_headers: Any) -> None:
    r = Receiver(fail_first=100, status=500)
    try:
        await client.put(f"/api/v1/workspaces/{workspace['id']}/settings", headers=ws_headers(),
                         json={"webhooks": [{"url": r.url}]})
        await _raise_approval(app, workspace["id"])
        await _until(lambda: notifier.failed == 1)
        assert r.attempts == 4
        feed = (await client.get("/api/v1/ops/feed", headers=ws_headers())).json()["items"]
        assert feed[0]["event_type"] == "webhook.failed" and feed[0]["payload"]["error"] == "HTTP 500"
    finally:
        r.close()


async def test_client_error_is_not_retried(app: Any, client: httpx.AsyncClient, notifier: Any,
                                           workspace: dict[str, Any], ws_headers: Any) -> None:
    r = Receiver(fail_first=100, status=404)
    try:
        await client.put(f"/api/v1/workspaces/{workspace['id']}/settings", headers=ws_headers(),
                         json={"webhooks": [{"url": r.url, "kinds": ["needs_approval"]}]})
        await _raise_approval(app, workspace["id"])
        await _until(lambda: notifier.failed == 1)
        assert r.attempts == 1
    finally:
        r.close()


@pytest.mark.parametrize("bad", [{"webhooks": [{"url": "ftp://x"}]}, {"webhooks": [{"url": "http://x", "format": "teams"}]},
                                 {"webhooks": [{"url": "http://x", "kinds": ["completed"]}]}, {"approval_timeout_s": -1},
                                 {"colour": "red"}])
async def test_bad_settings_are_400_and_change_nothing(client: httpx.AsyncClient, workspace: dict[str, Any],
                                                       ws_headers: Any, bad: dict[str, Any]) -> None:
    resp = await client.put(f"/api/v1/workspaces/{workspace['id']}/settings", headers=ws_headers(), json=bad)
    assert resp.status_code == 400
    ws = (await client.get(f"/api/v1/workspaces/{workspace['id']}", headers=ws_headers())).json()
    assert ws["settings"] == {}
