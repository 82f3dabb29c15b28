"""The Supervisor chat without agents (issue 6 item 5), on both databases: history is persisted and paged,
owners and workspaces never see each other's messages, commands answer from the real read side, an invalid
dispatch runs nothing, and a valid one on a node without the runtime fails per action (RUNTIME_UNAVAILABLE).
The planner path is driven with a fake planner through the service."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from overseer.auth.tokens import Principal
from overseer.events import log as event_log
from overseer.events.models import Event
from overseer.ops.chat import ChatService
from overseer.ops.models import PendingApproval
from overseer.ops.planner import PlanContext, PlannerError, PlanNotJson
from overseer.workers.models import Worker
from tests.conftest import bearer

RW = ("supervisor:read", "supervisor:write")


async def say(client: httpx.AsyncClient, headers: dict[str, str], text: str) -> dict[str, Any]:
    resp = await client.post("/api/v1/chat/messages", headers=headers, json={"text": text})
    assert resp.status_code == 201, resp.text
    user, reply = resp.json()["messages"]
    assert user["role"] == "user" and user["text"] == text and reply["role"] == "assistant"
    assert reply["payload"]["in_reply_to"] == user["id"]
    return reply  # type: ignore[no-any-return]


async def history(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    resp = await client.get("/api/v1/chat/messages", headers=headers, params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def count(app: Any, model: Any, *where: Any) -> int:
    async with app.state.db.read_session() as s:
        return int((await s.execute(select(func.count()).select_from(model).where(*where))).scalar_one())


async def test_history_is_persisted_and_paged(client: httpx.AsyncClient, make_token: Any) -> None:
    h = bearer(make_token("admin", workspaces=["*"], sub="pager"))
    for _ in range(3):
        await say(client, h, "/help")
    full = await history(client, h)
    msgs = full["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant"] * 3 and full["has_more"] is False
    assert [m["id"] for m in msgs] == sorted(m["id"] for m in msgs) and full["last_id"] == msgs[-1]["id"]
    assert msgs[1]["payload"]["kind"] == "help" and "/dispatch" in msgs[1]["text"]
    assert set(msgs[0]) == {"id", "role", "text", "payload", "workspace_ids", "created_at"}
    page = await history(client, h, after=msgs[1]["id"], limit=2)
    assert [m["id"] for m in page["messages"]] == [msgs[2]["id"], msgs[3]["id"]] and page["has_more"] is True
    rest = await history(client, h, after=page["last_id"], limit=100)
    assert [m["id"] for m in rest["messages"]] == [m["id"] for m in msgs[4:]] and rest["has_more"] is False
    assert (await history(client, h, after=msgs[-1]["id"]))["messages"] == []
    last_two = await history(client, h, limit=2)
    assert [m["id"] for m in last_two["messages"]] == [msgs[4]["id"], msgs[5]["id"]] and last_two["has_more"]
    older = await history(client, h, before=msgs[4]["id"], limit=2)
    assert [m["id"] for m in older["messages"]] == [msgs[2]["id"], msgs[3]["id"]]


async def test_owner_and_workspace_isolation(app: Any, client: httpx.AsyncClient, make_token: Any,
                                             workspace_factory: Any) -> None:
    w1, w2 = await workspace_factory("iso-one"), await workspace_factory("iso-two")
    alice_w1 = bearer(make_token(*RW, workspaces=[w1["id"]], sub="alice"))
    reply = await say(client, alice_w1, "/status")
    assert "iso-one" in reply["text"] and "iso-two" not in reply["text"]
    assert reply["workspace_ids"] == [w1["id"]]
    help_reply = await say(client, alice_w1, "/help")
    assert help_reply["workspace_ids"] == []
    # the same owner with another workspace sees only what concerns no workspace of the other
    alice_w2 = bearer(make_token(*RW, workspaces=[w2["id"]], sub="alice"))
    seen = await history(client, alice_w2)
    assert [m["text"] for m in seen["messages"]] == ["/help", help_reply["text"]]
    assert all("iso-one" not in m["text"] for m in seen["messages"])
    # another subject sees nothing of alice's, even with every workspace
    for other in (bearer(make_token(*RW, workspaces=[w1["id"]], sub="bob")),
                  bearer(make_token("admin", workspaces=["*"], sub="root"))):
        assert (await history(client, other))["messages"] == []
    assert len((await history(client, alice_w1))["messages"]) == 4
    # the SSE stream carries chat.message events (no text) only into the workspace concerned
    async with app.state.db.read_session() as s:
        chat_events = list((await s.execute(select(Event).where(Event.event_type == "chat.message"))).scalars())
    assert len(chat_events) == 2 and {str(e.workspace_id) for e in chat_events} == {w1["id"]}  # /status + reply
    assert all(set(e.payload) == {"message_id", "role"} and e.entity_type == "chat" for e in chat_events)


async def test_status_feed_and_ack(app: Any, client: httpx.AsyncClient, workspace: dict[str, Any],
                                   ws_headers: Any) -> None:
    h = ws_headers(*RW)
    worker_id = str(uuid.uuid4())
    async with app.state.db.session() as s:
        await event_log.append(s, workspace_id=uuid.UUID(workspace["id"]), event_type="health.disconnected",
                               entity_type="worker", entity_id=worker_id,
                               payload={"worker_id": worker_id, "reason": "agent unreachable"})
    status = await say(client, h, f"/status {workspace['name']}")
    assert status["payload"]["kind"] == "status" and status["text"].startswith(f"{workspace['name']}: disconnected")
    assert status["payload"]["workspaces"][0]["unacked_signals"] == 1
    assert (await say(client, h, "/status nope"))["payload"]["code"] == "WORKSPACE_NOT_FOUND"
    feed = await say(client, h, "/feed")
    assert "health.disconnected" in feed["text"] and feed["workspace_ids"] == [workspace["id"]]
    assert (await say(client, h, "/feed needs_input"))["text"] == "Nothing waits for you."
    assert (await say(client, h, "/ack nothing-like-this"))["payload"]["code"] == "NOT_FOUND"
    ack = await say(client, h, "/ack disconn")  # a unique prefix
    assert ack["payload"]["kind"] == "ack" and ack["payload"]["signal"]["id"] == f"disconnected:{worker_id}"
    assert ack["payload"]["signal"]["acked_by"] == "tester"
    signals = (await client.get("/api/v1/ops/signals", headers=h)).json()
    assert signals == []  # acknowledged
    again = await say(client, h, f"/ack disconnected:{worker_id}")  # idempotent, by exact id
    assert again["payload"]["kind"] == "ack"


async def test_invalid_dispatch_is_refused_and_runs_nothing(app: Any, client: httpx.AsyncClient,
                                                           workspace: dict[str, Any], ws_headers: Any,
                                                           workspace_factory: Any) -> None:
    h = ws_headers(*RW)
    hidden = await workspace_factory("hidden-one")  # exists, but this token cannot see it
    for ref in ("no-such-ws", hidden["name"], hidden["id"]):
        reply = await say(client, h, f'/dispatch --ws {workspace["name"]},{ref} --prompt "hello"')
        assert reply["payload"]["kind"] == "dispatch_invalid", reply
        assert [(v["path"], v["code"]) for v in reply["payload"]["violations"]] == [
            ("$.actions[1].workspace_id", "WORKSPACE_NOT_FOUND")]
        assert reply["text"].startswith("Refused") and "nothing was run" in reply["text"]
        assert hidden["id"] not in str(reply["workspace_ids"])
    alone = await say(client, h, '/dispatch --ws no-such-ws --prompt "hello"')
    assert [v["code"] for v in alone["payload"]["violations"]] == ["WORKSPACE_NOT_FOUND"]
    bad = await say(client, h, '/dispatch --ws a --prompt "x" --kind gpt')
    assert bad["payload"] == {"kind": "error", "code": "BAD_COMMAND", "in_reply_to": bad["payload"]["in_reply_to"]}
    unknown = await say(client, h, "/frobnicate now")
    assert "Type /help" in unknown["text"] and unknown["payload"]["code"] == "BAD_COMMAND"
    assert await count(app, Worker) == 0
    assert await count(app, Event, Event.event_type == "dispatch.executed") == 0


async def test_valid_dispatch_without_runtime_fails_per_action(app: Any, client: httpx.AsyncClient,
                                                              workspace_factory: Any, make_token: Any) -> None:
    a, b = await workspace_factory("disp-a"), await workspace_factory("disp-b")
    h = bearer(make_token(*RW, workspaces=[a["id"], b["id"]]))
    reply = await say(client, h, f'/dispatch --ws disp-a,{b["id"]} --prompt "say hi" --kind claude_code')
    p = reply["payload"]
    assert p["kind"] == "dispatch" and [x["agent_kind"] for x in p["contract"]["actions"]] == ["claude_code"] * 2
    assert [(r["workspace_id"], r["status"], r["error"]["code"]) for r in p["results"]] == [
        (a["id"], "failed", "RUNTIME_UNAVAILABLE"), (b["id"], "failed", "RUNTIME_UNAVAILABLE")]
    assert sorted(reply["workspace_ids"]) == sorted([a["id"], b["id"]])
    assert "0 dispatched, 2 failed" in reply["text"]
    assert await count(app, Event, Event.event_type == "dispatch.executed") == 2  # the executor's audit
    # the user's message takes the workspaces of its reply: a token for disp-a alone sees neither
    only_a = bearer(make_token(*RW, workspaces=[a["id"]]))
    assert all("disp-b" not in m["text"] for m in (await history(client, only_a))["messages"])
    assert (await history(client, only_a))["messages"] == []


async def test_approve_and_deny_resolve_visible_pending_approvals(app: Any, client: httpx.AsyncClient,
                                                                  workspace_factory: Any, make_token: Any) -> None:
    mine, theirs = await workspace_factory("appr-mine"), await workspace_factory("appr-theirs")
    ids = []
    async with app.state.db.session() as s:
        for ws in (mine, theirs):
            worker = Worker(workspace_id=uuid.UUID(ws["id"]), kind="codex", name="w", status="RUNNING", config={})
            s.add(worker)
            await s.flush()
            approval = PendingApproval(id=uuid.uuid4(), workspace_id=worker.workspace_id, worker_id=worker.id,
                                       thread_id="t", turn_id="u", request_id="0", kind="command", command="ls")
            s.add(approval)
            ids.append(str(approval.id))
    h = bearer(make_token(*RW, workspaces=[mine["id"]]))
    assert (await say(client, h, f"/approve {ids[1]}"))["payload"]["code"] == "NOT_FOUND"  # another tenant's
    reply = await say(client, h, f"/approve {ids[0][:6]}")
    assert reply["payload"]["kind"] == "approval" and reply["payload"]["approval_id"] == ids[0]
    assert reply["payload"]["error"]["code"] == "RUNTIME_UNAVAILABLE" and reply["workspace_ids"] == [mine["id"]]
    deny = await say(client, h, f"/deny {ids[0]}")
    assert deny["payload"]["decision"] == "decline" and deny["payload"]["error"]["code"] == "RUNTIME_UNAVAILABLE"


async def test_free_text_without_runtime_and_input_limits(client: httpx.AsyncClient, ws_headers: Any) -> None:
    reply = await say(client, ws_headers(*RW), "please fix the tests everywhere")
    assert reply["payload"]["code"] == "PLANNER_UNAVAILABLE" and "/dispatch" in reply["text"]
    too_long = await client.post("/api/v1/chat/messages", headers=ws_headers(*RW), json={"text": "x" * 20_001})
    assert too_long.status_code == 400
    assert (await client.post("/api/v1/chat/messages", headers=ws_headers(*RW), json={"text": "  "})).status_code == 400
    assert (await client.post("/api/v1/chat/messages", headers=ws_headers(*RW),
                              json={"text": "/help", "extra": 1})).status_code == 400
    read_only = await client.post("/api/v1/chat/messages", headers=ws_headers("supervisor:read"),
                                  json={"text": "/help"})
    assert read_only.status_code == 403
    assert (await client.get("/api/v1/chat/messages", headers=ws_headers("jobs:read"))).status_code == 403
    assert (await client.get("/api/v1/chat/messages")).status_code == 401


# ------------------------------------------------------------------ the planner path, with a fake planner


@dataclass
class FakePlanner:
    answer: Any
    seen: list[tuple[str, PlanContext]]

    async def plan(self, text: str, context: PlanContext) -> dict[str, Any]:
        self.seen.append((text, context))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer  # type: ignore[no-any-return]

    async def stop(self) -> None:
        pass


@dataclass
class FakeRuntime:
    planner: FakePlanner

    def track(self, owner: str, message_id: int, results: list[dict[str, Any]]) -> None:
        pass


@pytest.mark.parametrize("case", ["valid", "invalid", "not_json", "failed"])
async def test_planner_path(app: Any, workspace_factory: Any, case: str) -> None:
    a, b = await workspace_factory("plan-a"), await workspace_factory("plan-b")
    await workspace_factory("plan-hidden")
    principal = Principal("planner-user", frozenset(RW), frozenset({uuid.UUID(a["id"]), uuid.UUID(b["id"])}))
    answers: dict[str, Any] = {
        "valid": {"version": "overseer.dispatch.v1", "actions": [
            {"type": "dispatch_turn", "action_id": "x", "workspace_id": a["id"], "prompt": "p"},
            {"type": "dispatch_turn", "action_id": "y", "workspace_id": b["id"], "prompt": "p"}]},
        "invalid": {"version": "overseer.dispatch.v1", "actions": []},
        "not_json": PlanNotJson("no JSON", "I think you should..."),
        "failed": PlannerError("The planner did not answer within 60 s"),
    }
    planner = FakePlanner(answers[case], [])
    service = ChatService(app.state.db, workers=None, runtime=FakeRuntime(planner))  # type: ignore[arg-type]
    user, reply = await service.post(principal, "do the thing")
    text, context = planner.seen[0]
    assert text == "do the thing" and context.owner == "planner-user"
    assert sorted(w["name"] for w in context.workspaces) == ["plan-a", "plan-b"]  # only the visible ones
    kind = reply["payload"]["kind"]
    if case == "valid":
        assert kind == "plan" and [r["error"]["code"] for r in reply["payload"]["results"]] == [
            "RUNTIME_UNAVAILABLE"] * 2
        assert sorted(user["workspace_ids"]) == sorted(reply["workspace_ids"]) == sorted([a["id"], b["id"]])
    elif case == "invalid":
        assert kind == "plan_invalid" and [v["code"] for v in reply["payload"]["violations"]] == ["EMPTY_ACTIONS"]
        assert await count(app, Event, Event.event_type == "dispatch.executed") == 0
    elif case == "not_json":
        assert kind == "plan_invalid" and reply["payload"]["violations"][0]["code"] == "INVALID_JSON"
        assert reply["payload"]["raw"] == "I think you should..."
    else:
        assert kind == "planner_error" and "60 s" in reply["text"]


async def test_status_counts_every_thread_when_the_snapshot_lists_only_the_most_urgent(
        app: Any, client: httpx.AsyncClient, workspace_factory: Any, admin_headers: dict[str, str]) -> None:
    """101 running threads elsewhere fill the snapshot's thread list (running ranks above idle); /status
    still counts the quiet workspace's own idle threads and every approval waiting."""
    busy, quiet = await workspace_factory(), await workspace_factory()
    async with app.state.db.session() as s:
        for i in range(101):
            worker = str(uuid.uuid4())
            for t in ("thread.started", "turn.started"):
                await event_log.append(s, workspace_id=uuid.UUID(busy["id"]), event_type=t, entity_type="worker",
                                       entity_id=worker,
                                       payload={"thread_id": f"busy-{i}", "turn_id": f"u{i}", "prompt": "go"})
        for i in range(2):
            await event_log.append(s, workspace_id=uuid.UUID(quiet["id"]), event_type="thread.started",
                                   entity_type="worker", entity_id=str(uuid.uuid4()), payload={"thread_id": f"q-{i}"})
    snap = (await client.get("/api/v1/ops/snapshot", headers=admin_headers)).json()
    listed = {w["name"]: len(w["threads"]) for w in snap["workspaces"]}
    assert listed[quiet["name"]] == 0  # the precondition: the quiet threads are cut from the list
    reply = await say(client, admin_headers, "/status")
    line = next(x for x in reply["text"].splitlines() if x.startswith(f"{quiet['name']}:"))
    assert line.endswith("threads: 2 idle"), line
    busy_line = next(x for x in reply["text"].splitlines() if x.startswith(f"{busy['name']}:"))
    assert "threads: 101 running" in busy_line
    by_name = {w["name"]: w for w in reply["payload"]["workspaces"]}
    assert by_name[quiet["name"]]["threads"] == 2 and by_name[busy["name"]]["threads_by_status"] == {"running": 101}


async def test_a_request_of_a_new_turn_is_news_of_its_own_dispatch_even_when_it_commits_first(
        app: Any, workspace: dict[str, Any], settings: Any) -> None:
    """Two chat dispatches on one thread: the second turn's approval commits before the second dispatch
    registered its turn. It waits for that registration and is told in reply to the SECOND dispatch,
    not to the first (whose turn had completed); an approval of an open chat turn still matches by
    thread before its turn registers."""
    from overseer.ops.chat import ChatRuntime

    db = app.state.db
    rt = ChatRuntime(db=db, settings=settings, planner=None)
    await rt.start()
    ws = uuid.UUID(workspace["id"])
    worker = str(uuid.uuid4())

    async def publish(event_type: str, turn_id: str, **payload: Any) -> None:
        async with db.session() as s:
            await event_log.append(s, workspace_id=ws, event_type=event_type, entity_type="worker", entity_id=worker,
                                   payload={"thread_id": "th-1", "turn_id": turn_id, **payload})

    try:
        rt.track("alice", 1001, [{"workspace_id": workspace["id"], "worker_id": worker, "thread_id": "th-1",
                                  "turn_id": "t1"}])
        await publish("turn.completed", "t1", status="completed", final_message="one")
        await publish("approval.requested", "t2", approval_id=str(uuid.uuid4()), command="make two")
        await rt.flush()
        rt.track("alice", 1002, [{"workspace_id": workspace["id"], "worker_id": worker, "thread_id": "th-1",
                                  "turn_id": "t2"}])
        await publish("approval.requested", "t3", approval_id=str(uuid.uuid4()), command="make three")
        await rt.flush()
        principal = Principal("alice", frozenset({"admin"}), None)
        from overseer.ops.chat import history

        news = [m for m in (await history(db, principal))["messages"] if m["role"] == "system"]
        told = [(m["payload"]["kind"], m["payload"].get("turn_id"), m["payload"]["in_reply_to"]) for m in news]
        # t3 is not a registered turn, but th-1's open chat turn (t2) is: matched by its thread.
        assert told == [("turn.completed", "t1", 1001), ("approval.requested", "t2", 1002),
                        ("approval.requested", "t3", 1002)]
    finally:
        await rt.stop()
