"""``GET /api/v1/ops/snapshot`` on a real database (SQLite file; PostgreSQL when configured): the first-screen
shape (per-workspace counts, the most urgent threads, capped lists with totals), that everything cut stays one
request away, the tenant filter on every count, and that ids and times render exactly as the ORM path does."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from overseer.events import log as event_log
from overseer.events.models import Event
from overseer.ops import read
from overseer.ops.models import OpenQuestion, PendingApproval
from overseer.ops.projections import OpsThread
from overseer.workers.models import Worker
from tests.conftest import bearer

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def _thread(app: Any, ws_id: str, thread_id: str, steps: list[tuple[str, dict[str, Any]]], *,
                  at: datetime, worker: uuid.UUID | None = None) -> None:
    """One thread driven through the real pipeline: events appended, the reducer writes the projections."""
    worker = worker or uuid.uuid4()
    async with app.state.db.session() as s:
        for i, (event_type, payload) in enumerate(steps):
            await event_log.append(s, workspace_id=uuid.UUID(ws_id), event_type=event_type, entity_type="worker",
                                   entity_id=worker, payload={"thread_id": thread_id, **payload},
                                   at=at + timedelta(milliseconds=i))


RUNNING = [("turn.started", {"turn_id": "t1", "prompt": "build it"})]
WAITING = [*RUNNING, ("approval.requested", {"approval_id": "a-1", "command": "make", "turn_id": "t1"})]
FAILED = [*RUNNING, ("turn.completed", {"turn_id": "t1", "status": "failed", "error": "boom"})]
DONE = [*RUNNING, ("turn.completed", {"turn_id": "t1", "status": "completed", "final_message": "ok " * 400})]


async def _snapshot(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    resp = await client.get("/api/v1/ops/snapshot", headers=headers)
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    return resp.json()  # type: ignore[no-any-return]


class TestWorkspaces:
    async def test_counts_every_thread_and_lists_the_urgent_ones_first(self, app: Any, client: httpx.AsyncClient,
                                                                     workspace: dict[str, Any],
                                                                     ws_headers: Any) -> None:
        ws = workspace["id"]
        # the quiet threads are the most recent: urgency, not recency, decides the order
        await _thread(app, ws, "th-run", RUNNING, at=T0)
        await _thread(app, ws, "th-wait", WAITING, at=T0 + timedelta(seconds=1))
        await _thread(app, ws, "th-fail", FAILED, at=T0 + timedelta(seconds=2))
        await _thread(app, ws, "th-idle", [("thread.started", {})], at=T0 + timedelta(seconds=3))
        await _thread(app, ws, "th-done", DONE, at=T0 + timedelta(seconds=4, microseconds=250))
        h = ws_headers("supervisor:read")
        (w,) = (await _snapshot(client, h))["workspaces"]
        assert w["threads_total"] == 5
        assert w["threads_by_status"] == {"waiting_input": 1, "failed": 1, "running": 1, "idle": 1, "completed": 1}
        assert [t["thread_id"] for t in w["threads"]] == ["th-wait", "th-fail", "th-run", "th-idle", "th-done"]
        assert w["unacked_signals"] == 3  # needs_approval, failed, completed
        done = next(t for t in w["threads"] if t["thread_id"] == "th-done")
        assert done["last_activity_at"] == (T0 + timedelta(seconds=4, microseconds=1250)).isoformat()
        assert len(done["last_message"]) == read.SNAPSHOT_TEXT_CHARS and done["last_message"].endswith("…")
        # the same rows as the thread list (ids and times rendered alike), the long message clipped
        full = {t["thread_id"]: t for t in (await client.get("/api/v1/ops/threads", headers=h)).json()["items"]}
        for t in w["threads"]:
            whole = full[t["thread_id"]]
            assert t == {**whole, "last_message": read._clip(whole["last_message"], read.SNAPSHOT_TEXT_CHARS)}

    async def test_lists_at_most_the_fleets_most_urgent_threads_the_rest_one_request_away(
            self, app: Any, client: httpx.AsyncClient, workspace_factory: Any, make_token: Any) -> None:
        quiet, busy = await workspace_factory("quiet"), await workspace_factory("busy")
        n = read.SNAPSHOT_THREADS
        async with app.state.db.session() as s:  # n finished threads, newer than the busy ones
            for i in range(n):
                for j, (event_type, payload) in enumerate([*RUNNING, ("turn.completed", {"turn_id": "t1"})]):
                    await event_log.append(s, workspace_id=uuid.UUID(quiet["id"]), event_type=event_type,
                                           entity_type="worker", entity_id=uuid.uuid4(),
                                           payload={"thread_id": f"q-{i:03d}", **payload},
                                           at=T0 + timedelta(minutes=10, seconds=i, milliseconds=j))
        for i in range(3):
            await _thread(app, busy["id"], f"b-{i}", RUNNING, at=T0 + timedelta(seconds=i))
        h = bearer(make_token("supervisor:read", workspaces=[quiet["id"], busy["id"]]))
        snap = await _snapshot(client, h)
        by_name = {w["name"]: w for w in snap["workspaces"]}
        assert [t["thread_id"] for t in by_name["busy"]["threads"]] == ["b-2", "b-1", "b-0"]
        listed_quiet = [t["thread_id"] for t in by_name["quiet"]["threads"]]
        assert listed_quiet == [f"q-{i:03d}" for i in range(n - 1, 2, -1)]  # the n - 3 most recent ones
        assert by_name["quiet"]["threads_total"] == n and by_name["quiet"]["threads_by_status"] == {"completed": n}
        page = (await client.get(f"/api/v1/ops/threads?workspace_id={quiet['id']}&limit=500", headers=h)).json()
        assert page["total"] == n and {t["thread_id"] for t in page["items"]} >= set(listed_quiet)


class TestCappedLists:
    async def test_requests_and_workers_are_capped_with_totals_and_full_rows_elsewhere(
            self, app: Any, client: httpx.AsyncClient, workspace: dict[str, Any], ws_headers: Any) -> None:
        ws_id = uuid.UUID(workspace["id"])
        n_req, n_workers = read.SNAPSHOT_REQUESTS + 2, read.SNAPSHOT_WORKERS + 3
        long_diff = "+" + "x" * (read.SNAPSHOT_DIFF_CHARS + 10)
        async with app.state.db.session() as s:
            workers = [Worker(workspace_id=ws_id, kind="codex", name=f"w{i}", config={},
                              status="TERMINATED" if i < 3 else "IDLE", created_at=T0 + timedelta(seconds=i))
                       for i in range(n_workers)]
            s.add_all(workers)
            await s.flush()
            s.add_all(PendingApproval(workspace_id=ws_id, worker_id=workers[-1].id, request_id=str(i), kind="command",
                                      command=f"echo {i}", diff=long_diff if i == 0 else None,
                                      created_at=T0 + timedelta(seconds=i)) for i in range(n_req))
            s.add(OpenQuestion(workspace_id=ws_id, worker_id=workers[-1].id, request_id="q",
                               questions=[{"id": "c", "question": "Which?"}], created_at=T0))
        snap = await _snapshot(client, ws_headers("supervisor:read"))
        counts = snap["counts"]
        assert (counts["pending_approvals"], counts["open_questions"], counts["needs_input"]) == (n_req, 1, n_req + 1)
        assert (counts["workers"], counts["workers_ended"]) == (n_workers, 3)
        approvals = snap["pending_approvals"]
        assert [a["command"] for a in approvals] == [f"echo {i}" for i in range(read.SNAPSHOT_REQUESTS)]  # oldest
        first = approvals[0]
        assert first["diff_truncated"] and len(first["diff"]) == read.SNAPSHOT_DIFF_CHARS
        assert not approvals[1]["diff_truncated"] and approvals[1]["diff"] is None
        full = (await client.get("/api/v1/ops/approvals", headers=ws_headers("supervisor:read"))).json()
        assert len(full) == n_req and next(a for a in full if a["id"] == first["id"])["diff"] == long_diff
        assert [q["questions"][0]["id"] for q in snap["open_questions"]] == ["c"]
        listed = snap["workers"]
        assert len(listed) == read.SNAPSHOT_WORKERS and all(w["status"] == "IDLE" for w in listed)  # live first
        assert [w["name"] for w in listed] == [f"w{i}" for i in range(3, 3 + read.SNAPSHOT_WORKERS)]
        every = (await client.get("/api/v1/workers", headers=ws_headers("supervisor:read"))).json()["workers"]
        assert len(every) == n_workers

    async def test_open_requests_never_push_a_failure_out_of_the_signals(
            self, app: Any, client: httpx.AsyncClient, workspace: dict[str, Any], ws_headers: Any) -> None:
        ws_id = uuid.UUID(workspace["id"])
        n = read.SNAPSHOT_SIGNALS + 5
        async with app.state.db.session() as s:
            for i in range(n):
                await event_log.append(s, workspace_id=ws_id, event_type="approval.requested", entity_type="worker",
                                       entity_id=uuid.uuid4(), payload={"thread_id": f"th-{i}", "approval_id": f"a{i}",
                                                                        "command": "make", "turn_id": "t"})
        await _thread(app, workspace["id"], "th-x", FAILED, at=T0)  # older and less severe than the requests
        snap = await _snapshot(client, ws_headers("supervisor:read"))
        kinds = [s["kind"] for s in snap["signals"]]
        assert len(kinds) == read.SNAPSHOT_SIGNALS and kinds[0] == "failed" and set(kinds[1:]) == {"needs_approval"}
        assert snap["counts"]["unacked_signals"] == n + 1 == snap["workspaces"][0]["unacked_signals"]
        every = (await client.get("/api/v1/ops/signals", headers=ws_headers("supervisor:read"))).json()
        assert len(every) == n + 1


class TestTenancy:
    async def test_counts_lists_and_last_event_id_stay_in_the_callers_workspaces(
            self, app: Any, client: httpx.AsyncClient, workspace_factory: Any, make_token: Any,
            admin_headers: dict[str, str]) -> None:
        mine, theirs = await workspace_factory("mine"), await workspace_factory("theirs")
        await _thread(app, mine["id"], "m-1", FAILED, at=T0)
        async with app.state.db.session() as s:
            worker = Worker(workspace_id=uuid.UUID(theirs["id"]), kind="codex", config={}, status="IDLE")
            s.add(worker)
            await s.flush()
            s.add(PendingApproval(workspace_id=worker.workspace_id, worker_id=worker.id, request_id="1",
                                  kind="command", command="rm -rf /"))
        for i in range(3):  # their events come after mine: my cursor must not reveal them
            await _thread(app, theirs["id"], f"t-{i}", WAITING, at=T0 + timedelta(seconds=i))
        async with app.state.db.read_session() as s:
            my_last = (await s.execute(select(Event.id).where(Event.workspace_id == uuid.UUID(mine["id"]))
                                       .order_by(Event.id.desc()).limit(1))).scalar_one()
            last = (await s.execute(select(Event.id).order_by(Event.id.desc()).limit(1))).scalar_one()
        h = bearer(make_token("supervisor:read", workspaces=[mine["id"]]))
        snap = await _snapshot(client, h)
        assert [w["id"] for w in snap["workspaces"]] == [mine["id"]]
        (w,) = snap["workspaces"]
        assert (w["threads_total"], w["threads_by_status"], w["unacked_signals"]) == (1, {"failed": 1}, 1)
        assert [t["thread_id"] for t in w["threads"]] == ["m-1"]
        assert {s["workspace_id"] for s in snap["signals"]} == {mine["id"]}
        assert snap["pending_approvals"] == [] and snap["workers"] == [] and snap["jobs"] == []
        assert snap["counts"] == {"unacked_signals": 1, "needs_input": 0, "pending_approvals": 0, "open_questions": 0,
                                  "workers": 0, "workers_ended": 0, "unacked_by_workspace": {mine["id"]: 1}}
        assert snap["last_event_id"] == my_last < last
        everything = await _snapshot(client, admin_headers)
        assert everything["last_event_id"] == last
        assert {w["name"]: w["threads_total"] for w in everything["workspaces"]} == {"mine": 1, "theirs": 3}
        assert everything["counts"]["pending_approvals"] == 1 and everything["counts"]["workers"] == 1


class TestRendering:
    async def test_ids_and_times_read_as_text_equal_the_orm_values(self, app: Any, workspace: dict[str, Any]) -> None:
        """The snapshot reads ids and times as text straight from the driver (``read._TextId`` /
        ``_TextTime``): byte for byte what ``str(uuid)`` and ``datetime.isoformat()`` give."""
        ws_id = uuid.UUID(workspace["id"])
        times = [T0, T0.replace(microsecond=1), T0.replace(microsecond=999_999), T0 + timedelta(days=400), None]
        async with app.state.db.session() as s:
            s.add_all(Worker(workspace_id=ws_id, kind="codex", config={}, last_event_at=t) for t in times)
        async with app.state.db.read_session() as s:
            rows = (await s.execute(select(Worker.id, Worker.workspace_id, Worker.last_event_at,
                                           read._text_id(Worker.id), read._text_id(Worker.workspace_id),
                                           read._text_time(Worker.last_event_at)))).all()
            threads = (await s.execute(select(OpsThread.thread_id))).all()
        assert len(rows) == len(times) and threads == []
        for wid, ws, at, wid_text, ws_text, at_text in rows:
            assert (wid_text, ws_text) == (str(wid), str(ws))
            assert at_text == (at.isoformat() if at else None)
        assert {r[5] for r in rows} == {t.isoformat() if t else None for t in times}


class TestStatusCommand:
    async def test_status_counts_what_the_snapshot_leaves_out_and_lists_all_of_one_workspace(
            self, app: Any, workspace_factory: Any, make_token: Any) -> None:
        """``overseer status`` against the real app served on a local port (as ``overseer serve`` would)."""
        import asyncio
        import subprocess
        import sys
        from pathlib import Path

        import uvicorn

        big = await workspace_factory("big")
        n = read.SNAPSHOT_THREADS + 2
        async with app.state.db.session() as s:
            for i in range(n):
                steps = [*RUNNING, *([("turn.completed", {"turn_id": "t1"})] if i else [])]
                for j, (event_type, payload) in enumerate(steps):
                    await event_log.append(s, workspace_id=uuid.UUID(big["id"]), event_type=event_type,
                                           entity_type="worker", entity_id=uuid.uuid4(),
                                           payload={"thread_id": f"t-{i:03d}", **payload},
                                           at=T0 + timedelta(seconds=i, milliseconds=j))
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning"))
        serving = asyncio.create_task(server.serve())
        try:
            while not server.started:
                await asyncio.sleep(0.01)
            url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
            token = make_token("supervisor:read", workspaces=[big["id"]])

            def status(*args: str) -> str:
                cli = str(Path(sys.executable).parent / "overseer")  # the installed command
                out = subprocess.run([cli, "status", *args, "--url", url, "--token", token], capture_output=True,
                                     text=True, timeout=60, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
                assert out.returncode == 0, out.stderr
                return out.stdout

            fleet = await asyncio.to_thread(status)
            assert "+2 more" in fleet and f"all {n}: 1 running, {n - 1} completed" in fleet
            assert "t-000" in fleet and "t-001 " not in fleet  # the running one and the newest others
            one = await asyncio.to_thread(status, "big")
            assert all(f"t-{i:03d}" in one for i in range(n)) and "more" not in one
            assert one.index("t-000") < one.index(f"t-{n - 1:03d}") < one.index("t-001")  # running, then newest
        finally:
            server.should_exit = True
            await serving
