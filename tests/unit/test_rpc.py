"""JsonRpcConnection against a fake peer: a small Python script run as a real subprocess.

The peer reads our requests (one JSON object per line) and misbehaves according to ``method``, the
way ``codex app-server`` does (no "jsonrpc" field, server-request ids colliding with ours) and worse
(garbage, huge lines, unknown and late responses, sudden exit).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from overseer.runtime.process import AgentProcess, ProcessExit
from overseer.runtime.rpc import (
    JsonRpcConnection,
    RpcConnectionClosed,
    RpcError,
    RpcTimeout,
)

PEER = r'''
import json, sys, time

def send(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()

def raw(text):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()

for line in sys.stdin:
    msg = json.loads(line)
    if "method" not in msg:          # our reply to a server request: report it back
        send({"method": "peer/gotReply", "params": {"reply": msg}})
        continue
    rid, method, params = msg.get("id"), msg["method"], msg.get("params") or {}
    if method == "echo":
        send({"id": rid, "result": params})                      # no "jsonrpc" field
    elif method == "collide":
        send({"id": rid, "method": "peer/ask", "params": {"q": "same id as yours"}})
        send({"id": rid, "result": {"answer": "real response"}})
    elif method == "garbage":
        for text in ["not json", "[1, 2]", "42", '"str"', '{"foo": 1}', '{"id": 5}',
                     '{"method": 7}', "{broken", "", '{"id": true, "method": "peer/x"}', '{"id": 9, "method": []}']:
            raw(text)
        send({"id": rid, "result": "after garbage"})
    elif method == "big":
        raw('{"method": "peer/huge", "params": {"blob": "' + "x" * (10 * 1024 * 1024) + '"}}')
        send({"method": "peer/afterHuge"})
        send({"id": rid, "result": "after big"})
    elif method == "unknown":
        send({"id": 987654, "result": "nobody asked"})
        send({"id": "abc", "error": {"code": 1, "message": "nobody asked either"}})
        send({"id": rid, "result": "ok"})
    elif method == "slow":
        time.sleep(params["delay"])
        send({"id": rid, "result": "late"})
    elif method == "fail":
        send({"id": rid, "error": {"code": -32000, "message": "boom", "data": {"x": 1}}})
    elif method == "notify":
        for i in range(params["n"]):
            send({"method": "peer/tick", "params": {"i": i}, "emittedAtMs": 1})
        send({"id": rid, "result": params["n"]})
    elif method == "exit":
        sys.stderr.write("fatal: peer giving up\n")
        sys.stderr.flush()
        sys.exit(3)
    elif method == "hang":
        pass
'''


@dataclass
class Peer:
    conn: JsonRpcConnection
    proc: AgentProcess
    notifications: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    requests: list[tuple[Any, str, dict[str, Any]]] = field(default_factory=list)
    malformed: list[tuple[str, str]] = field(default_factory=list)
    closed: list[ProcessExit] = field(default_factory=list)

    async def wait_for_notification(self, method: str, within_s: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            for m, params in self.notifications:
                if m == method:
                    return params
            await asyncio.sleep(0.01)
        raise AssertionError(f"no {method} notification; got {self.notifications}")


async def start_peer(*, line_limit: int = 1024 * 1024, answer_requests: bool = True) -> Peer:
    peer: Peer | None = None

    async def on_notification(method: str, params: dict[str, Any]) -> None:
        assert peer is not None
        peer.notifications.append((method, params))

    async def on_request(rid: Any, method: str, params: dict[str, Any]) -> None:
        assert peer is not None
        peer.requests.append((rid, method, params))
        await peer.conn.respond(rid, {"handled": method})

    async def on_malformed(prefix: str, reason: str) -> None:
        assert peer is not None
        peer.malformed.append((prefix, reason))

    async def on_closed(exit_: ProcessExit) -> None:
        assert peer is not None
        peer.closed.append(exit_)

    conn = JsonRpcConnection(
        on_notification=on_notification,
        on_request=on_request if answer_requests else None,
        on_malformed=on_malformed,
        on_closed=on_closed,
        name="peer",
        default_timeout_s=5.0,
        include_jsonrpc_field=False,
    )
    proc = AgentProcess(
        [sys.executable, "-u", "-c", PEER],
        env={"PATH": "/usr/bin:/bin"},
        cwd="/",
        on_line=conn.feed_line,
        on_malformed=conn.feed_oversized,
        line_limit_bytes=line_limit,
        name="peer",
    )
    await proc.start()
    conn.attach(proc)
    peer = Peer(conn=conn, proc=proc)
    return peer


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    p = await start_peer()
    try:
        yield p
    finally:
        await p.proc.terminate(grace_s=1.0)


async def test_response_without_jsonrpc_field(peer: Peer) -> None:
    assert await peer.conn.request("echo", {"a": 1}) == {"a": 1}
    assert peer.conn.stats.responses == 1
    assert peer.conn.pending_count == 0


async def test_error_response_raises_rpc_error(peer: Peer) -> None:
    with pytest.raises(RpcError) as info:
        await peer.conn.request("fail")
    assert info.value.code == -32000
    assert info.value.rpc_message == "boom"
    assert info.value.data == {"x": 1}


async def test_server_request_with_colliding_id_is_not_taken_as_response(peer: Peer) -> None:
    result = await peer.conn.request("collide")
    assert result == {"answer": "real response"}
    reply = await peer.wait_for_notification("peer/gotReply")
    assert len(peer.requests) == 1
    rid, method, params = peer.requests[0]
    assert method == "peer/ask" and params == {"q": "same id as yours"}
    assert reply["reply"] == {"id": rid, "result": {"handled": "peer/ask"}}
    assert peer.conn.stats.server_requests == 1
    assert peer.conn.stats.unknown_response == 0


async def test_server_request_without_handler_is_answered_with_an_error() -> None:
    p = await start_peer(answer_requests=False)
    try:
        assert await p.conn.request("collide") == {"answer": "real response"}
        reply = (await p.wait_for_notification("peer/gotReply"))["reply"]
        assert reply["error"]["code"] == -32601
    finally:
        await p.proc.terminate(grace_s=1.0)


async def test_garbage_lines_are_counted_and_skipped(peer: Peer) -> None:
    assert await peer.conn.request("garbage") == "after garbage"
    assert await peer.conn.request("echo", {"still": "alive"}) == {"still": "alive"}
    # 10 bad lines (the empty line is ignored, not counted)
    assert peer.conn.stats.malformed == 10
    assert peer.conn.stats.server_requests == 0
    await asyncio.sleep(0.05)
    assert [prefix for prefix, _ in peer.malformed][:2] == ["not json", "[1, 2]"]
    assert peer.notifications == []


async def test_ten_megabyte_line_is_skipped_and_next_line_handled(peer: Peer) -> None:
    assert await peer.conn.request("big", timeout_s=20) == "after big"
    await peer.wait_for_notification("peer/afterHuge")
    assert peer.conn.stats.malformed == 1
    assert [m for m, _ in peer.notifications] == ["peer/afterHuge"]
    prefix, reason = peer.malformed[0]
    assert prefix.startswith('{"method": "peer/huge"')
    assert "longer than the limit" in reason
    assert peer.proc.alive


async def test_ten_megabyte_line_under_the_limit_is_delivered() -> None:
    p = await start_peer(line_limit=64 * 1024 * 1024)
    try:
        assert await p.conn.request("big", timeout_s=20) == "after big"
        huge = await p.wait_for_notification("peer/huge")
        assert len(huge["blob"]) == 10 * 1024 * 1024
        assert p.conn.stats.malformed == 0
    finally:
        await p.proc.terminate(grace_s=1.0)


async def test_response_to_unknown_id_is_counted_and_ignored(peer: Peer) -> None:
    assert await peer.conn.request("unknown") == "ok"
    assert peer.conn.stats.unknown_response == 2
    assert peer.conn.stats.late_response == 0


async def test_late_response_after_timeout(peer: Peer) -> None:
    with pytest.raises(RpcTimeout):
        await peer.conn.request("slow", {"delay": 0.4}, timeout_s=0.1)
    assert peer.conn.pending_count == 0
    # the next request is answered after the late one; by then the late one was counted
    assert await peer.conn.request("echo", {"n": 2}) == {"n": 2}
    assert peer.conn.stats.late_response == 1
    assert peer.conn.stats.unknown_response == 0


async def test_process_exit_fails_pending_requests_at_once(peer: Peer) -> None:
    hanging = asyncio.create_task(peer.conn.request("hang", timeout_s=30))
    await asyncio.sleep(0.1)
    assert peer.conn.pending_count == 1
    started = time.monotonic()
    with pytest.raises(RpcConnectionClosed) as info:
        await peer.conn.request("exit", timeout_s=30)
    with pytest.raises(RpcConnectionClosed):
        await hanging
    assert time.monotonic() - started < 1.0
    text = str(info.value)
    assert "exit code 3" in text and "fatal: peer giving up" in text
    await peer.conn.wait_closed()
    assert peer.closed == [ProcessExit(returncode=3, signal=None)]
    with pytest.raises(RpcConnectionClosed):
        await peer.conn.request("echo")


async def test_kill_fails_pending_requests(peer: Peer) -> None:
    hanging = asyncio.create_task(peer.conn.request("hang", timeout_s=30))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    peer.proc.signal_group(9)
    with pytest.raises(RpcConnectionClosed, match="SIGKILL"):
        await hanging
    assert time.monotonic() - started < 1.0


async def test_notifications_delivered_in_order(peer: Peer) -> None:
    assert await peer.conn.request("notify", {"n": 500}) == 500
    await peer.wait_for_notification("peer/tick")
    for _ in range(100):
        if len(peer.notifications) == 500:
            break
        await asyncio.sleep(0.01)
    assert [p["i"] for _, p in peer.notifications] == list(range(500))
    assert peer.conn.stats.notifications == 500


async def test_slow_handler_does_not_block_responses() -> None:
    gate = asyncio.Event()
    seen: list[str] = []

    async def on_notification(method: str, params: dict[str, Any]) -> None:
        seen.append(method)
        await gate.wait()

    conn = JsonRpcConnection(on_notification=on_notification, name="peer", default_timeout_s=5.0)
    proc = AgentProcess([sys.executable, "-u", "-c", PEER], env={}, cwd="/", on_line=conn.feed_line)
    await proc.start()
    conn.attach(proc)
    try:
        assert await conn.request("notify", {"n": 3}) == 3
        assert await conn.request("echo", {"x": 1}) == {"x": 1}  # handler still blocked
        assert seen == ["peer/tick"]
        gate.set()
    finally:
        await proc.terminate(grace_s=1.0)


async def test_wait_closed_from_a_handler_does_not_deadlock() -> None:
    conn: JsonRpcConnection | None = None
    waited: list[str] = []

    async def on_notification(method: str, params: dict[str, Any]) -> None:
        assert conn is not None
        await conn.wait_closed()  # e.g. a sink calling session.stop() on an event
        waited.append(method)

    conn = JsonRpcConnection(on_notification=on_notification, name="peer", default_timeout_s=5.0)
    proc = AgentProcess([sys.executable, "-u", "-c", PEER], env={}, cwd="/", on_line=conn.feed_line)
    await proc.start()
    conn.attach(proc)
    try:
        assert await conn.request("notify", {"n": 2}) == 2
        for _ in range(100):
            if len(waited) == 2:
                break
            await asyncio.sleep(0.01)
        assert waited == ["peer/tick", "peer/tick"]
    finally:
        await proc.terminate(grace_s=1.0)
    await asyncio.wait_for(conn.wait_closed(), 2)
