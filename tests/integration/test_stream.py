"""``GET /api/v1/ops/stream`` against a real uvicorn server (httpx's ASGI transport buffers streams,
stack.md A3.1): live order, tenancy, filters, Last-Event-ID resume, keep-alives, slow consumers,
lifetime cap and clean shutdown. Runs on SQLite and, with OVERSEER_TEST_PG_URL, PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn

from overseer.app import create_app
from overseer.config import Settings
from overseer.events import log as event_log
from overseer.events import stream as stream_mod
from tests.conftest import TokenFactory, bearer

STREAM = "/api/v1/ops/stream"
WAIT = 5.0


@dataclass
class Frame:
    event: str = "message"
    data: str = ""
    id: str | None = None
    comment: str | None = None

    @property
    def json(self) -> Any:
        return json.loads(self.data)


class SSEReader:
    """Parses an ``text/event-stream`` body into frames (comments become frames with ``comment`` set)."""

    def __init__(self, resp: httpx.Response) -> None:
        self.resp = resp
        self._lines = resp.aiter_lines()

    async def _frame(self) -> Frame | None:
        cur = Frame()
        fields = False
        async for line in self._lines:
            if line == "":
                if fields:
                    return cur
                continue
            if line.startswith(":"):
                if not fields:
                    return Frame(event="comment", comment=line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            fields = True
            if name == "event":
                cur.event = value
            elif name == "data":
                cur.data = f"{cur.data}\n{value}" if cur.data else value
            elif name == "id":
                cur.id = value
        return cur if fields else None

    async def next(self, *, comments: bool = False, within: float = WAIT) -> Frame:
        """The next frame (skipping comments unless asked); fails on timeout or end of stream."""
        async def _read() -> Frame:
            while True:
                frame = await self._frame()
                if frame is None:
                    raise EOFError("stream ended")
                if frame.comment is None or comments:
                    return frame
        return await asyncio.wait_for(_read(), within)

    async def events(self, n: int) -> list[Frame]:
        return [await self.next() for _ in range(n)]

    async def rest(self, within: float = WAIT) -> list[Frame]:
        """Every frame until the server closes the stream."""
        out: list[Frame] = []
        with contextlib.suppress(EOFError):
            while True:
                out.append(await self.next(within=within))
        return out


@dataclass
class Live:
    app: Any
    server: uvicorn.Server
    task: asyncio.Task[None]
    base_url: str
    http: httpx.AsyncClient
    admin: dict[str, str]
    _streams: list[Any] = field(default_factory=list)

    async def workspace(self) -> str:
        name = f"ws-{uuid.uuid4().hex[:8]}"
        resp = await self.http.post("/api/v1/workspaces", headers=self.admin,
                                    json={"name": name, "root_path": f"/tmp/overseer-stream-test/{name}"})
        assert resp.status_code == 201, resp.text
        return str(resp.json()["id"])

    async def append(self, ws: str, event_type: str = "test.ping", n: int = 1) -> list[int]:
        """Append ``n`` events in one transaction (published together after commit); their ids."""
        async with self.app.state.db.session() as s:
            evs = [await event_log.append(s, workspace_id=uuid.UUID(ws), event_type=event_type,
                                          entity_type="test", entity_id="e", payload={"i": i}) for i in range(n)]
        return [e.id for e in evs]

    @contextlib.asynccontextmanager
    async def stream(self, headers: dict[str, str], params: dict[str, Any] | None = None,
                     ready: bool = True) -> AsyncIterator[SSEReader]:
        """Open the stream; with ``ready`` wait for the first ``ready`` frame (the subscription is live)."""
        async with self.http.stream("GET", STREAM, headers=headers, params=params) as resp:
            assert resp.status_code == 200, (await resp.aread()).decode()
            assert resp.headers["content-type"].startswith("text/event-stream")
            reader = SSEReader(resp)
            if ready:
                first = await reader.next()
                assert first.event == "ready", first
                reader.cursor = int(first.id or 0)  # type: ignore[attr-defined]
            yield reader


async def _start(settings: Settings, admin: dict[str, str]) -> Live:
    app = create_app(settings, migrate_on_start=False, start_runtime=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    http = httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(10.0))
    return Live(app, server, task, base, http, admin)


async def _stop(live: Live) -> None:
    await live.http.aclose()
    live.server.should_exit = True
    await asyncio.wait_for(live.task, 10)


Serve = Callable[..., Awaitable[Live]]


@pytest.fixture
async def serve(settings: Settings, admin_headers: dict[str, str]) -> AsyncIterator[Serve]:
    """``await serve(**setting_overrides)`` -> a running server; all are stopped at teardown."""
    started: list[Live] = []

    async def _serve(**overrides: Any) -> Live:
        live = await _start(settings.model_copy(update=overrides), admin_headers)
        started.append(live)
        return live

    yield _serve
    for live in started:
        if not live.task.done():
            await _stop(live)


def ids(frames: list[Frame]) -> list[int]:
    return [int(f.id) for f in frames if f.id is not None and f.event not in ("ready", "reconnect")]


async def test_live_events_arrive_in_order_with_ids(serve: Serve, make_token: TokenFactory) -> None:
    live = await serve()
    ws = await live.workspace()
    async with live.stream(bearer(make_token("supervisor:read", workspaces=[ws]))) as r:
        sent = await live.append(ws, n=3) + await live.append(ws, "test.other")
        frames = await r.events(4)
    assert ids(frames) == sent == sorted(sent)
    assert [f.event for f in frames] == ["test.ping"] * 3 + ["test.other"]
    body = frames[0].json
    assert body["id"] == sent[0] and body["workspace_id"] == ws and body["payload"] == {"i": 0}
    assert set(body) == {"id", "workspace_id", "event_type", "entity_type", "entity_id", "payload", "created_at"}


async def test_tenancy_and_workspace_filter(serve: Serve, make_token: TokenFactory) -> None:
    live = await serve()
    a, b = await live.workspace(), await live.workspace()
    token_a = bearer(make_token("supervisor:read", workspaces=[a]))
    # Another workspace is invisible: 404, never 403 (AGENTS.md "One tenant filter").
    resp = await live.http.get(STREAM, headers=token_a, params={"workspace_id": b})
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "NOT_FOUND"
    resp = await live.http.get(STREAM, headers=token_a, params={"workspace_id": f"{a},{b}"})
    assert resp.status_code == 404
    resp = await live.http.get(STREAM, headers=live.admin, params={"workspace_id": str(uuid.uuid4())})
    assert resp.status_code == 404
    resp = await live.http.get(STREAM, headers=token_a, params={"workspace_id": "nope"})
    assert resp.status_code == 400

    async with (live.stream(token_a) as ra, live.stream(live.admin, {"workspace_id": b}) as rb,
                live.stream(live.admin, {"workspace_id": [a, b]}) as rab):
        want_a: list[int] = []
        want_b: list[int] = []
        for _ in range(3):
            want_b += await live.append(b)
            want_a += await live.append(a)
        got_a = await ra.events(3)
        got_b = await rb.events(3)
        got_ab = await rab.events(6)
    assert ids(got_a) == want_a and {f.json["workspace_id"] for f in got_a} == {a}
    assert ids(got_b) == want_b and {f.json["workspace_id"] for f in got_b} == {b}
    assert ids(got_ab) == sorted(want_a + want_b)

    # The same holds for the replay from the log.
    async with live.stream(token_a, {"since": "start", "types": "test.*"}) as r:
        replay = await r.events(3)  # B's were interleaved: any leak would show up here
    assert ids(replay) == want_a and {f.json["workspace_id"] for f in replay} == {a}


async def test_types_filter_exact_and_prefix(serve: Serve, make_token: TokenFactory) -> None:
    live = await serve()
    ws = await live.workspace()
    h = bearer(make_token("supervisor:read", workspaces=[ws]))
    assert (await live.http.get(STREAM, headers=h, params={"types": "tu*rn"})).status_code == 400
    assert (await live.http.get(STREAM, headers=h, params={"types": "a b"})).status_code == 400
    kinds = ["turn.started", "item.delta", "worker.state_changed", "turnover", "turn_x", "turn.completed", "end"]
    async with live.stream(h, {"types": "turn.*,worker.state_changed", "workspace_id": ws}) as r, \
            live.stream(h, {"types": ["end", "item.*"]}) as r2:
        for k in kinds:
            await live.append(ws, k)
        await live.append(ws, "turn.end")  # the last one r will see
        got = await r.events(4)
        got2 = await r2.events(2)
    assert [f.event for f in got] == ["turn.started", "worker.state_changed", "turn.completed", "turn.end"]
    assert [f.event for f in got2] == ["item.delta", "end"]


async def test_resume_after_disconnect_has_no_gap_and_no_duplicate(serve: Serve, make_token: TokenFactory) -> None:
    live = await serve()
    ws, other = await live.workspace(), await live.workspace()
    h = bearer(make_token("supervisor:read", workspaces=[ws]))
    appended: list[int] = []
    done = asyncio.Event()

    async def writer() -> None:
        for i in range(40):
            appended.extend(await live.append(ws, n=1 + i % 3))
            await live.append(other)  # never seen by this token
            await asyncio.sleep(0.005)
        done.set()

    task = asyncio.create_task(writer())
    seen: list[int] = []
    async with live.stream(h) as r:
        start = r.cursor  # type: ignore[attr-defined]
        seen += ids(await r.events(10))
    # Disconnected while the writer keeps going; resume by header, then by query parameter.
    async with live.stream({**h, "Last-Event-ID": str(seen[-1])}) as r:
        assert r.cursor == seen[-1]  # type: ignore[attr-defined]
        seen += ids(await r.events(10))
    async with live.stream(h, {"last_event_id": seen[-1]}) as r:
        await asyncio.wait_for(done.wait(), 20)
        await task
        expected = [i for i in appended if i > start]
        seen += ids(await r.events(len(expected) - len(seen)))
    assert seen == expected


async def test_resume_replays_in_pages_and_since_start(serve: Serve, make_token: TokenFactory,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_mod, "PAGE_SIZE", 7)
    live = await serve()
    ws = await live.workspace()
    h = bearer(make_token("supervisor:read", workspaces=[ws]))
    appended = await live.append(ws, n=40)  # several replay pages, one of them exactly full
    async with live.stream({**h, "Last-Event-ID": str(appended[4])}) as r:
        assert ids(await r.events(35)) == appended[5:]
        more = await live.append(ws, n=2)
        assert ids(await r.events(2)) == more
    async with live.stream(h, {"since": "start", "types": "test.*"}) as r:
        assert ids(await r.events(42)) == appended + more
    # A cursor past the head (a rebuilt database) is clamped to the head, so new events still arrive.
    async with live.stream({**h, "Last-Event-ID": "999999999"}) as r:
        assert r.cursor == more[-1]  # type: ignore[attr-defined]
        nxt = await live.append(ws)
        assert ids(await r.events(1)) == nxt
    assert (await live.http.get(STREAM, headers={**h, "Last-Event-ID": "x"})).status_code == 400


async def test_keepalive_comments(serve: Serve, make_token: TokenFactory) -> None:
    live = await serve(stream_keepalive_s=0.2)
    ws = await live.workspace()
    async with live.stream(bearer(make_token("supervisor:read", workspaces=[ws]))) as r:
        pings = [await r.next(comments=True, within=2) for _ in range(2)]
    assert all(p.comment is not None and p.comment.startswith("ping") for p in pings)


async def test_slow_consumer_gets_reconnect_and_resumes_losslessly(serve: Serve, make_token: TokenFactory) -> None:
    live = await serve(stream_queue_max=5)
    ws = await live.workspace()
    h = bearer(make_token("supervisor:read", workspaces=[ws]))
    async with live.stream(h) as r:
        burst = await live.append(ws, n=50)  # published at once: the 6th overflows the queue
        frames = await r.rest()
    assert frames[-1].event == "reconnect"
    info = frames[-1].json
    assert info["reason"] == "slow_consumer"
    got = ids(frames)
    assert got == burst[: len(got)] and len(got) <= 5
    assert info["last_event_id"] == (got[-1] if got else r.cursor)  # type: ignore[attr-defined]
    async with live.stream({**h, "Last-Event-ID": str(info["last_event_id"])}) as r:
        got += ids(await r.events(50 - len(got)))
    assert got == burst


async def test_max_lifetime_reconnect(serve: Serve, make_token: TokenFactory) -> None:
    live = await serve(stream_max_lifetime_s=0.3)
    ws = await live.workspace()
    async with live.stream(bearer(make_token("supervisor:read", workspaces=[ws]))) as r:
        sent = await live.append(ws)
        frames = await r.rest()
    assert ids(frames) == sent
    assert frames[-1].event == "reconnect"
    assert frames[-1].json == {"reason": "max_lifetime", "last_event_id": sent[0]}


async def test_connected_count_and_hub_close_all(serve: Serve, make_token: TokenFactory) -> None:
    live = await serve()
    ws = await live.workspace()
    h = bearer(make_token("supervisor:read", workspaces=[ws]))
    async with live.stream(h), live.stream(h) as r2:
        assert live.app.state.streams.connected == 2
        live.app.state.streams.close_all()
        frames = await r2.rest()
        assert frames[-1].event == "reconnect" and frames[-1].json["reason"] == "shutdown"
    for _ in range(100):
        if live.app.state.streams.connected == 0:
            break
        await asyncio.sleep(0.02)
    assert live.app.state.streams.connected == 0


async def test_server_shutdown_with_connected_client_is_clean(serve: Serve, make_token: TokenFactory) -> None:
    live = await serve()
    ws = await live.workspace()
    async with live.stream(bearer(make_token("supervisor:read", workspaces=[ws]))) as r:
        sent = await live.append(ws)
        assert ids(await r.events(1)) == sent
        live.server.should_exit = True  # what uvicorn's SIGTERM/SIGINT handler does
        frames = await r.rest()
        await asyncio.wait_for(live.task, 5)  # lifespan shutdown ran, nothing hung
    assert frames[-1].event == "reconnect"
    assert frames[-1].json == {"reason": "shutdown", "last_event_id": sent[0]}


async def test_auth_errors_and_openapi(serve: Serve, make_token: TokenFactory) -> None:
    live = await serve()
    ws = await live.workspace()
    resp = await live.http.get(STREAM)
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "UNAUTHORIZED"
    resp = await live.http.get(STREAM, headers=bearer(make_token("jobs:read", workspaces=[ws])))
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "FORBIDDEN"
    # The web page's cookie works too.
    cookie = {"Cookie": f"overseer_token={make_token('supervisor:read', workspaces=[ws])}"}
    async with live.stream(cookie) as r:
        assert r.cursor >= 1  # type: ignore[attr-defined]
    doc = (await live.http.get("/openapi.json")).json()
    assert "text/event-stream" in doc["paths"][STREAM]["get"]["responses"]["200"]["content"]
