"""The Supervisor chat on real agents (issue 6 item 5): real ``codex`` workers and the real Codex planner
against the scripted model, driven through ``/api/v1/chat/messages``. No agent process (workers or the
planner) survives the app."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from overseer.workers.models import Worker
from tests.e2e.conftest import Live

pytestmark = pytest.mark.agents
VERSION = "overseer.dispatch.v1"


@pytest.fixture
def pid_guard() -> Iterator[list[int]]:
    """Pids to check after everything else is torn down (request it BEFORE ``live``)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        pytest.fail(f"agent pid {pid} survived shutdown")


async def second_workspace(live: Live, tmp_path: Path, name: str = "second") -> dict[str, Any]:
    root = tmp_path / name
    root.mkdir()
    await asyncio.to_thread(subprocess.run, ["git", "init", "-q"], cwd=root, check=True)
    resp = await live.client.post("/api/v1/workspaces", json={"name": name, "root_path": str(root)})
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def say(live: Live, text: str) -> dict[str, Any]:
    resp = await live.client.post("/api/v1/chat/messages", json={"text": text}, timeout=120)
    assert resp.status_code == 201, resp.text
    user, reply = resp.json()["messages"]
    assert user["text"] == text and reply["role"] == "assistant"
    return reply  # type: ignore[no-any-return]


async def news(live: Live, after: int, check: Callable[[list[dict[str, Any]]], bool],
               timeout_s: float = 60.0) -> list[dict[str, Any]]:
    """Wait until the system messages after message ``after`` satisfy ``check``; returns them."""
    async def poll() -> Any:
        msgs = (await live.client.get("/api/v1/chat/messages", params={"after": after})).json()["messages"]
        system = [m for m in msgs if m["role"] == "system"]
        return system if check(system) else None
    return await live.wait(poll, timeout_s)  # type: ignore[no-any-return]


def completions(reply_id: int) -> Callable[[list[dict[str, Any]]], bool]:
    def check(msgs: list[dict[str, Any]]) -> bool:
        return len([m for m in msgs if m["payload"].get("kind") == "turn.completed"
                    and m["payload"].get("in_reply_to") == reply_id]) >= 2
    return check


def assert_dispatched_to(reply: dict[str, Any], *workspaces: dict[str, Any]) -> list[dict[str, Any]]:
    results = reply["payload"]["results"]
    assert [r["status"] for r in results] == ["dispatched"] * len(workspaces), reply["text"]
    assert sorted(r["workspace_id"] for r in results) == sorted(w["id"] for w in workspaces)
    assert all(r["worker_id"] and r["thread_id"] and r["turn_id"] for r in results)
    return results  # type: ignore[no-any-return]


def assert_completions_match(msgs: list[dict[str, Any]], results: list[dict[str, Any]]) -> None:
    done = {m["payload"]["turn_id"]: m for m in msgs if m["payload"].get("kind") == "turn.completed"}
    for r in results:
        m = done[r["turn_id"]]
        assert m["payload"]["status"] == "completed" and m["payload"]["thread_id"] == r["thread_id"]
        assert m["payload"]["worker_id"] == r["worker_id"] and m["workspace_ids"] == [r["workspace_id"]]
        assert m["payload"]["final_message"] and "turn completed" in m["text"]


async def test_dispatch_command_reaches_two_workspaces_and_completions_flow_back(
        pid_guard: list[int], live: Live, tmp_path: Path) -> None:
    other = await second_workspace(live, tmp_path)
    reply = await say(live, f'/dispatch --ws {live.ws["name"]},{other["name"]} --prompt "hello"')
    assert reply["payload"]["kind"] == "dispatch"
    results = assert_dispatched_to(reply, live.ws, other)
    workers = (await live.client.get("/api/v1/workers")).json()["workers"]
    assert {w["kind"] for w in workers} == {"codex"}  # the default kind
    msgs = await news(live, reply["id"], completions(reply["id"]))
    assert_completions_match(msgs, results)


async def test_free_text_goes_through_the_codex_planner(pid_guard: list[int], live: Live, tmp_path: Path) -> None:
    other = await second_workspace(live, tmp_path)
    contract = {"version": VERSION, "actions": [
        {"type": "dispatch_turn", "action_id": "one", "workspace_id": live.ws["id"], "prompt": "plan hello one"},
        {"type": "dispatch_turn", "action_id": "two", "workspace_id": other["id"], "prompt": "plan hello two"}]}
    reply = await say(live, f"say hello in both workspaces [[json: {json.dumps(contract)}]]")
    assert reply["payload"]["kind"] == "plan", reply["text"]
    assert reply["payload"]["contract"] == contract
    results = assert_dispatched_to(reply, live.ws, other)
    chat = live.app.state.runtime.components["chat"]
    assert chat.planner.pid is not None
    pid_guard.append(chat.planner.pid)
    msgs = await news(live, reply["id"], completions(reply["id"]))
    assert_completions_match(msgs, results)
    # a second plan reuses the same planner process (one per node), in a new thread
    again = await say(live, f"once more [[json: {json.dumps(contract)}]]")
    assert again["payload"]["kind"] == "plan" and chat.planner.pid == pid_guard[0]


async def test_invalid_plan_shows_violations_and_runs_nothing(pid_guard: list[int], live: Live) -> None:
    reply = await say(live, 'do nothing [[json: {"version": "overseer.dispatch.v1", "actions": []}]]')
    assert reply["payload"]["kind"] == "plan_invalid", reply["text"]
    assert [v["code"] for v in reply["payload"]["violations"]] == ["EMPTY_ACTIONS"]
    assert "nothing was run" in reply["text"]
    pid_guard.append(live.app.state.runtime.components["chat"].planner.pid)
    prose = await say(live, "[[text: I would rather not]]")
    assert prose["payload"]["kind"] == "plan_invalid" and prose["payload"]["raw"] == "I would rather not"
    async with live.app.state.db.read_session() as s:
        assert (await s.execute(select(func.count()).select_from(Worker))).scalar_one() == 0


async def test_approval_of_chat_dispatched_work_is_answered_from_the_chat(pid_guard: list[int], live: Live) -> None:
    reply = await say(live, f'/dispatch --ws {live.ws["name"]} --prompt "[[run: echo hi > out.txt]]"')
    (result,) = assert_dispatched_to(reply, live.ws)

    def asked(msgs: list[dict[str, Any]]) -> bool:
        return any(m["payload"].get("kind") == "approval.requested" for m in msgs)

    msgs = await news(live, reply["id"], asked)
    request = next(m for m in msgs if m["payload"]["kind"] == "approval.requested")
    approval_id = request["payload"]["approval_id"]
    assert "echo hi > out.txt" in request["text"] and f"/approve {approval_id[:8]}" in request["text"]
    assert request["payload"]["turn_id"] == result["turn_id"] and request["workspace_ids"] == [live.ws["id"]]
    answer = await say(live, f"/approve {approval_id[:8]}")
    assert answer["payload"]["kind"] == "approval" and answer["payload"]["status"] == "accepted", answer["text"]

    def finished(msgs: list[dict[str, Any]]) -> bool:
        return any(m["payload"].get("kind") == "turn.completed" for m in msgs)

    done = await news(live, reply["id"], finished)
    assert next(m for m in done if m["payload"]["kind"] == "turn.completed")["payload"]["status"] == "completed"
    assert (live.root / "out.txt").read_text().strip() == "hi"
