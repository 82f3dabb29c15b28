"""Live operations on real agents (issue 4): signals, approvals, questions, stalls, disconnects,
restart by policy with the thread resumed."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Live

pytestmark = pytest.mark.agents
KINDS = ["codex", "claude_code"]


async def snapshot(live: Live) -> dict[str, Any]:
    return (await live.client.get("/api/v1/ops/snapshot")).json()  # type: ignore[no-any-return]


async def signal_of(live: Live, kind: str, timeout_s: float = 15.0) -> dict[str, Any]:
    async def check() -> Any:
        sigs = (await live.client.get("/api/v1/ops/signals")).json()
        return next((s for s in sigs if s["kind"] == kind and s["is_open"]), None)
    return await live.wait(check, timeout_s)  # type: ignore[no-any-return]


def saved_thread_files(live: Live, worker_id: str, thread_id: str) -> list[Path]:
    """The agent's own saved conversation of ``thread_id``: Claude Code's
    ``.claude/projects/<cwd>/<id>.jsonl``, Codex's ``sessions/.../rollout-...-<id>.jsonl``, both under
    the worker's private home ``<data_dir>/agents/<worker id>``."""
    home = Path(live.app.state.settings.data_dir) / "agents" / worker_id
    return [p for p in home.rglob(f"*{thread_id}*.jsonl") if p.is_file()]


async def wait_thread_saved(live: Live, worker_id: str, thread_id: str) -> list[Path]:
    """Wait until the agent has saved the thread with an assistant reply in it. Claude Code writes its
    transcript up to ~0.1 s after it reports the turn's result, so a kill right after IDLE can lose it
    (that case: test_killed_agent_whose_thread_was_never_saved_goes_on_in_a_new_thread)."""
    async def check() -> Any:
        files = saved_thread_files(live, worker_id, thread_id)
        return files if any('"assistant"' in p.read_text(errors="replace") for p in files) else None
    return await live.wait(check, 10)  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", KINDS)
async def test_approval_is_a_signal_and_needs_input_until_answered(live: Live, kind: str) -> None:
    w = await live.start_worker(kind)
    await live.client.post(f"/api/v1/workers/{w['id']}/turns", json={"prompt": "ship it [[run: echo ok > s.txt]]"})
    approval = await live.pending_approval()
    sig = await signal_of(live, "needs_approval")
    assert sig["context"]["approval_id"] == approval["id"] and "s.txt" in sig["context"]["command"]
    snap = await snapshot(live)
    (th,) = snap["workspaces"][0]["threads"]
    assert th["status"] == "waiting_input" and th["blockers"][0]["kind"] == "approval"
    assert th["current_task"].startswith("ship it")
    feed = (await live.client.get("/api/v1/ops/feed?needs_input=true")).json()["items"]
    assert [i["payload"]["approval_id"] for i in feed] == [approval["id"]]
    await live.client.post(f"/api/v1/ops/approvals/{approval['id']}", json={"decision": "accept"})
    await live.wait_status(w["id"], "IDLE")
    assert (await live.client.get("/api/v1/ops/feed?needs_input=true")).json()["items"] == []
    done = await signal_of(live, "completed")
    assert done["thread_id"] == th["thread_id"]
    snap = await snapshot(live)
    assert snap["workspaces"][0]["threads"][0]["status"] == "completed"
    assert snap["workspaces"][0]["blockers"] == []


@pytest.mark.parametrize("kind", KINDS)
async def test_question_answered_reaches_the_agent(live: Live, kind: str) -> None:
    w = await live.start_worker(kind)
    await live.client.post(f"/api/v1/workers/{w['id']}/turns",
                           json={"prompt": "choose [[ask: Which colour? | red | blue]]"})

    async def question() -> Any:
        rows = (await live.client.get("/api/v1/ops/questions")).json()
        return rows[0] if rows else None
    q = await live.wait(question)
    sig = await signal_of(live, "needs_input")
    assert sig["context"]["question_id"] == q["id"]
    qid = q["questions"][0]["id"]
    resp = await live.client.post(f"/api/v1/ops/questions/{q['id']}/answer", json={"answers": {qid: "blue"}})
    assert resp.status_code == 200, resp.text
    await live.wait_status(w["id"], "IDLE")
    snap = await snapshot(live)
    assert "blue" in (snap["workspaces"][0]["threads"][0]["last_message"] or "")


@pytest.mark.parametrize("live", [{"stall_after_s": 1.0, "health_tick_s": 0.2, "stale_after_s": 1.5}],
                         indirect=True)
async def test_hanging_stream_raises_stalled_then_stale(live: Live) -> None:
    w = await live.start_worker("codex")
    await live.client.post(f"/api/v1/workers/{w['id']}/turns", json={"prompt": "wait [[hang]]"})
    sig = await signal_of(live, "stalled", timeout_s=20)
    assert sig["context"]["silent_s"] >= 1.0
    async def stale() -> Any:
        return (await snapshot(live))["workspaces"][0]["health"] == "stale"
    await live.wait(stale, 10)
    ack = await live.client.post(f"/api/v1/ops/signals/{sig['id']}/ack")
    assert ack.json()["acked_at"]
    await live.client.post(f"/api/v1/workers/{w['id']}/interrupt")
    await live.wait_status(w["id"], "IDLE")


@pytest.mark.parametrize("kind", KINDS)
async def test_killed_agent_is_disconnected_then_restarted_with_its_thread(live: Live, kind: str) -> None:
    w = await live.start_worker(kind)
    turn = (await live.client.post(f"/api/v1/workers/{w['id']}/turns", json={"prompt": "first"})).json()
    await live.wait_status(w["id"], "IDLE")
    await wait_thread_saved(live, w["id"], turn["thread_id"])
    current = await live.worker(w["id"])
    t0 = time.monotonic()
    os.killpg(current["pid"], signal.SIGKILL)
    sig = await signal_of(live, "disconnected", timeout_s=5)
    print(f"\nSIGKILL -> disconnected signal: {time.monotonic() - t0:.3f} s ({kind})")
    assert sig["worker_id"] == w["id"]
    restarted = await live.wait_status(w["id"], "IDLE", timeout_s=30)
    assert restarted["pid"] and restarted["pid"] != current["pid"] and restarted["thread_id"] == turn["thread_id"]
    detail = await live.worker(w["id"])
    assert [t["to_state"] for t in detail["transitions"]][-3:] == ["FAILED", "RETRYING", "IDLE"]
    again = (await live.client.post(f"/api/v1/workers/{w['id']}/turns", json={"prompt": "second"})).json()
    assert again["thread_id"] == turn["thread_id"]
    await live.wait_status(w["id"], "IDLE")
    threads = (await snapshot(live))["workspaces"][0]["threads"]
    # one thread: the restart's throwaway process (Claude: a fresh session, replaced by --resume) is none
    assert [t["thread_id"] for t in threads if t["worker_id"] == w["id"]] == [turn["thread_id"]]


@pytest.mark.parametrize("kind", KINDS)
async def test_killed_agent_whose_thread_was_never_saved_goes_on_in_a_new_thread(live: Live, kind: str) -> None:
    """The agent died before saving its thread (here: the saved files are removed before the kill,
    which is what a kill inside Claude Code's write-behind window leaves). The restart cannot resume
    it: the worker comes back IDLE on a new thread, and a ``failed`` signal names both threads, instead
    of retrying a resume that can never work until the restart budget runs out."""
    w = await live.start_worker(kind)
    turn = (await live.client.post(f"/api/v1/workers/{w['id']}/turns", json={"prompt": "first"})).json()
    await live.wait_status(w["id"], "IDLE")
    lost_thread = turn["thread_id"]
    files = await wait_thread_saved(live, w["id"], lost_thread)
    current = await live.worker(w["id"])
    os.killpg(current["pid"], signal.SIGKILL)
    await signal_of(live, "disconnected", timeout_s=5)
    for path in files:
        path.unlink()

    async def lost_signal() -> Any:
        sigs = (await live.client.get("/api/v1/ops/signals")).json()
        return next((s for s in sigs if s["kind"] == "failed" and s["thread_id"] == lost_thread), None)
    sig = await live.wait(lost_signal, 30)
    restarted = await live.wait_status(w["id"], "IDLE", timeout_s=30)
    new_thread = restarted["thread_id"]
    assert new_thread and new_thread != lost_thread and restarted["pid"] != current["pid"]
    assert sig["is_open"] and sig["worker_id"] == w["id"] and sig["context"]["new_thread_id"] == new_thread
    assert new_thread[:8] in sig["title"] and sig["context"]["turn_interrupted"] is False
    assert await live.events(lost_thread) == ["thread.lost"]  # the lost thread's own event
    detail = await live.worker(w["id"])
    states = [t["to_state"] for t in detail["transitions"]]
    assert states[-3:] == ["FAILED", "RETRYING", "IDLE"] and "lost" in detail["transitions"][-1]["reason"]
    assert states.count("RETRYING") == 1  # one restart did it: no loop of resumes that cannot work
    again = (await live.client.post(f"/api/v1/workers/{w['id']}/turns", json={"prompt": "second"})).json()
    assert again["thread_id"] == new_thread
    await live.wait_status(w["id"], "IDLE")


@pytest.mark.parametrize("live", [{"worker_restart_max": 0}], indirect=True)
async def test_without_restart_policy_a_killed_worker_stays_failed(live: Live) -> None:
    w = await live.start_worker("codex")
    os.killpg(w["pid"], signal.SIGKILL)
    await live.wait_status(w["id"], "FAILED", timeout_s=5)
    await asyncio.sleep(1.0)
    assert (await live.worker(w["id"]))["status"] == "FAILED"
