"""The live page in a real browser (issue 6): Debian's Chromium driven by Playwright against a real
uvicorn server (``create_app`` + the runtime), real Codex and Claude Code agents on the scripted model.

Needs ``chromium`` on PATH (``scripts/install-browser.sh``) and ``playwright`` (dev dependency); it
never downloads a browser. Screenshots go to ``artifacts/screenshots/`` (gitignored), the measured
approval-to-page latency to the test output and ``artifacts/screenshots/metrics.json``.
SQLite only: the API underneath is covered on both databases elsewhere; this file checks the page.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from playwright.async_api import TimeoutError as PlaywrightTimeout
from playwright.async_api import expect

from overseer.app import create_app
from overseer.config import Settings
from overseer.testing import ScriptedModelServer
from overseer.web.auth import create_login_link
from tests.conftest import JWT_KEY, TokenFactory, bearer, clear_tables

pytestmark = [pytest.mark.browser, pytest.mark.agents]

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "artifacts" / "screenshots"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Test instrumentation (not page logic): record browser notifications instead of showing them, and
# say the page is unfocused, so the page sends them.
FAKE_NOTIFICATIONS = """
window.__notes = [];
window.Notification = class {
  static permission = 'granted';
  static requestPermission() { return Promise.resolve('granted'); }
  constructor(title, opts) { window.__notes.push({title, body: opts && opts.body, tag: opts && opts.tag}); }
  close() {}
};
document.hasFocus = () => false;
"""
XSS = "<img src=x onerror=\"window.__xss=1\"><script>window.__xss=2</script>"
"""Agent text is untrusted: this prompt becomes the thread's current task and a feed row."""
# Record, from inside the page, the moment an approval first shows in the action center.
WATCH_APPROVALS = """
window.__approvalSeen = {};
new MutationObserver(() => {
  for (const el of document.querySelectorAll('#actions-body [data-approval-id]')) {
    if (!window.__approvalSeen[el.dataset.approvalId]) window.__approvalSeen[el.dataset.approvalId] = Date.now();
  }
}).observe(document.body, {subtree: true, childList: true});
"""


@pytest.fixture
async def db_url(backend_urls: dict[str, str]) -> str:
    """SQLite only (overrides the both-backends fixture): one browser run is enough."""
    url = backend_urls["sqlite"]
    await clear_tables(url)
    return url


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not installed: run scripts/install-browser.sh (Debian's chromium package)",
                    pytrace=False)
    return path


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            yield b
        finally:
            await b.close()


class Served:
    """``overseer serve`` in the test's loop: uvicorn on 127.0.0.1 (port 0 = any), stoppable and restartable."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = 0
        self.app: Any = None
        self.server: uvicorn.Server | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> None:
        self.app = create_app(self.settings, migrate_on_start=False)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning",
                                                    timeout_graceful_shutdown=5))
        self.task = asyncio.create_task(self.server.serve())
        deadline = time.monotonic() + 30
        while not self.server.started:
            if self.task.done():
                await self.task
                raise AssertionError("uvicorn did not start")
            assert time.monotonic() < deadline, "uvicorn did not start in 30 s"
            await asyncio.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is None or self.task is None:
            return
        hub = getattr(self.app.state, "streams", None)
        if hub is not None:
            hub.close_all()  # no uvicorn signal handler here: end open streams ourselves (events/AGENTS.md)
        self.server.should_exit = True
        await asyncio.wait_for(self.task, 40)
        self.server = self.task = None


@pytest.fixture
async def live_settings(settings: Settings, scripted_model: ScriptedModelServer, agent_bins: dict[str, str]
                        ) -> Settings:
    return settings.model_copy(update={
        "model_base_url": scripted_model.base_url, "codex_bin": agent_bins["codex"],
        "claude_bin": agent_bins["claude"], "terminate_grace_s": 2.0})


@pytest.fixture
async def served(live_settings: Settings) -> AsyncIterator[Served]:
    srv = Served(live_settings)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def api(served: Served, admin_headers: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served.url, headers=admin_headers, timeout=60) as client:
        yield client


async def _workspace(api: httpx.AsyncClient, root: Path, name: str) -> dict[str, Any]:
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    resp = await api.post("/api/v1/workspaces", json={"name": name, "root_path": str(root)})
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def _worker(api: httpx.AsyncClient, ws: dict[str, Any], kind: str) -> dict[str, Any]:
    resp = await api.post("/api/v1/workers", json={"workspace_id": ws["id"], "kind": kind, "name": f"{kind}-{ws['name']}"})
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def _until(check: Callable[[], Awaitable[Any]], timeout_s: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not met within {timeout_s} s"
        await asyncio.sleep(0.05)


async def _signed_in_page(browser: Any, served: Served, *, scopes: list[str], workspaces: list[str],
                          sub: str, viewport: dict[str, int] = DESKTOP) -> tuple[Any, Any, list[str]]:
    ctx = await browser.new_context(viewport=viewport)
    await ctx.add_init_script(FAKE_NOTIFICATIONS)
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    link = create_login_link(served.settings, JWT_KEY, subject=sub, scopes=scopes, workspace_ids=workspaces,
                             base_url=served.url)
    await page.goto(link)
    await page.wait_for_url(f"{served.url}/")
    await page.wait_for_selector("#stream-state[data-state='live']", timeout=10_000)
    return ctx, page, errors


async def _shot(page: Any, name: str, *, full: bool = False) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full)


async def _feed_ids(page: Any) -> list[int]:
    ids = await page.eval_on_selector_all("#feed-list [data-event-id]", "els => els.map(e => +e.dataset.eventId)")
    return list(ids)


def _record(name: str, value: Any) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / "metrics.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = value
    path.write_text(json.dumps(data, indent=2))
    print(f"\n[live page] {name} = {value}")


async def test_sign_in_watch_approve_answer_filter_and_dispatch(
        served: Served, api: httpx.AsyncClient, browser: Any, tmp_path: Path,
        record_property: Callable[[str, Any], None]) -> None:
    alpha = await _workspace(api, tmp_path / "alpha", "alpha")
    beta = await _workspace(api, tmp_path / "beta", "beta")
    codex, claude = await asyncio.gather(_worker(api, alpha, "codex"), _worker(api, beta, "claude_code"))

    # Without a cookie: the sign-in page.
    anon = await browser.new_context(viewport=DESKTOP)
    anon_page = await anon.new_page()
    await anon_page.goto(f"{served.url}/")
    assert "overseer open" in await anon_page.inner_text("body")
    await _shot(anon_page, "signin-desktop")
    await anon.close()

    # The sign-in link sets the session cookie and opens the page.
    ctx, page, errors = await _signed_in_page(browser, served, scopes=["admin"], workspaces=["*"], sub="alice")
    (cookie,) = [c for c in await ctx.cookies() if c["name"] == "overseer_token"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/" and not cookie["secure"]
    await page.evaluate(WATCH_APPROVALS)
    for w in (codex, claude):
        await page.wait_for_selector(f"#workers-body [data-worker-id='{w['id']}']")
    assert await page.get_attribute(f"[data-worker-id='{codex['id']}']", "data-kind") == "codex"
    assert await page.get_attribute(f"[data-worker-id='{claude['id']}']", "data-kind") == "claude_code"

    # Mute beta (a quiet workspace so far): its question must reach the action center but raise no
    # toast or notification.
    await page.click("[data-act='toggle-quiet']")
    await page.click(f".quiet-list [data-act='mute'][data-ws='{beta['id']}']")
    assert beta["id"] in await page.evaluate("localStorage.getItem('overseer.muted.v1')")

    # Both agents at work: Codex asks to run a command, Claude asks a question.
    await api.post(f"/api/v1/workers/{codex['id']}/turns", json={"prompt": f"Write the page file {XSS} [[run: echo hi > page.txt]]"})
    await api.post(f"/api/v1/workers/{claude['id']}/turns",
                   json={"prompt": "[[ask: Which colour for the logo? | red | blue]]"})

    async def pending() -> Any:
        rows = (await api.get("/api/v1/ops/approvals")).json()
        return rows[0] if rows else None

    approval = await _until(pending, what="the Codex approval")
    item = f"#actions-body [data-approval-id='{approval['id']}']"
    await page.wait_for_selector(item, timeout=5_000)
    seen_ms = await page.evaluate(f"window.__approvalSeen['{approval['id']}']")
    latency_ms = seen_ms - datetime.fromisoformat(approval["created_at"]).timestamp() * 1000
    _record("approval_to_page_ms", round(latency_ms, 1))
    record_property("approval_to_page_ms", round(latency_ms, 1))
    assert "page.txt" in await page.inner_text(item)
    await page.wait_for_selector(f".toast[data-key='a:{approval['id']}']", timeout=5_000)

    async def open_question() -> Any:
        rows = (await api.get("/api/v1/ops/questions")).json()
        return rows[0] if rows else None

    question = await _until(open_question, what="the Claude question")
    await page.wait_for_selector(f"#actions-body [data-question-id='{question['id']}']", timeout=5_000)
    for ws in (alpha, beta):  # both workspaces show a thread that waits for a person
        await page.wait_for_selector(f"#ws-{ws['id']} .thread.st-waiting_input", timeout=5_000)
    assert await page.get_attribute("#count-input", "data-n") == "2"
    await _shot(page, "live-desktop")
    await _shot(page, "live-desktop-full", full=True)
    assert await page.evaluate("window.__xss") is None and await page.locator("img[src='x']").count() == 0
    assert XSS in await page.inner_text(f"#ws-{alpha['id']} .thread-task")  # shown as text, not markup
    notes = await page.evaluate("window.__notes")
    assert any(n["tag"] == f"a:{approval['id']}" for n in notes), notes
    assert not any(n["tag"] == f"q:{question['id']}" for n in notes), "beta is muted"
    assert await page.locator(f".toast[data-key='q:{question['id']}']").count() == 0

    # Another workspace's session sees none of alpha's rows, events or counts.
    ctx_b, page_b, errors_b = await _signed_in_page(browser, served, scopes=["supervisor:read", "supervisor:write"],
                                                    workspaces=[beta["id"]], sub="bob")
    await page_b.wait_for_selector(f"#actions-body [data-question-id='{question['id']}']", timeout=5_000)
    await page_b.wait_for_selector("#feed-list [data-event-id]")
    html_b = await page_b.content()
    for secret in (alpha["id"], alpha["root_path"], approval["id"], codex["id"], approval["thread_id"]):
        assert secret not in html_b
    assert set(await page_b.eval_on_selector_all("#feed-list [data-ws]", "els => els.map(e => e.dataset.ws)")) == {beta["id"]}
    assert await page_b.get_attribute("#count-input", "data-n") == "1"
    feed_b = await page_b.evaluate("fetch('/api/v1/ops/feed?limit=500').then(r => r.json())")
    assert {i["workspace_id"] for i in feed_b["items"]} == {beta["id"]}
    await _shot(page_b, "isolation-beta-desktop")
    await ctx_b.close()
    assert not errors_b

    # "Needs my input" shows exactly the waiting requests.
    await page.click("#feed-needs")
    waiting = {i["id"] for i in (await api.get("/api/v1/ops/feed", params={"needs_input": "true"})).json()["items"]}
    assert len(waiting) == 2

    async def filtered() -> Any:
        return set(await _feed_ids(page)) == waiting

    await _until(filtered, 5, "the needs-input filter")
    await _shot(page, "needs-input-desktop")
    await page.set_viewport_size(PHONE)
    await _shot(page, "live-phone")
    await page.click("#count-input")
    await _shot(page, "actions-phone")
    await page.set_viewport_size(DESKTOP)

    # A thread link scrolls to and highlights its thread.
    await page.click(f"[data-question-id='{question['id']}'] a.tlink")
    await page.wait_for_selector(f"#thread-{question['thread_id']}.flash", timeout=2_000)
    assert page.url.endswith(f"#thread-{question['thread_id']}")

    # Approve from the page: the agent runs the command and the item leaves the action center.
    await page.click(f"{item} button[data-decision='accept']")
    async def written() -> bool:
        return (Path(alpha["root_path"]) / "page.txt").exists()

    await _until(written, 20, "page.txt in the workspace")
    await page.wait_for_selector(item, state="detached", timeout=5_000)
    # Answer the question with an option button.
    await page.click(f"[data-question-id='{question['id']}'] button[data-label='red']")
    await page.wait_for_selector(f"[data-question-id='{question['id']}']", state="detached", timeout=10_000)

    async def nothing_waiting() -> Any:
        return await page.locator("#feed-list .fi-empty").count() == 1 and not await _feed_ids(page)

    await _until(nothing_waiting, 5, "an empty needs-input filter")
    await page.click("#feed-needs")

    # Dispatch one prompt to both workspaces from the form.
    for ws in (codex, claude):
        async def idle(w: dict[str, Any] = ws) -> Any:
            return (await api.get(f"/api/v1/workers/{w['id']}")).json()["status"] == "IDLE"
        await _until(idle, 30, "workers idle")
    # Finished turns and answered requests wait under "updates" until acknowledged (the page may not
    # have every one yet when the button is clicked: click until none is left, as a person would).
    async def all_acked() -> Any:
        if await page.get_attribute("#count-signals", "data-n") == "0":
            return True
        button = page.locator("[data-act='ack-updates']:not([disabled])")
        if await button.count():
            try:  # the section may re-render under the click on a busy machine: just try again
                await button.first.click(timeout=2000)
            except PlaywrightTimeout:
                pass
            await asyncio.sleep(0.3)
        return False

    await _until(all_acked, 30, "every signal acknowledged")
    assert (await api.get("/api/v1/ops/signals")).json() == []

    await page.check(f"[data-dispatch-ws='{alpha['id']}']")
    await page.check(f"[data-dispatch-ws='{beta['id']}']")
    await page.select_option("#dispatch-kind", "claude_code")
    await page.fill("#dispatch-prompt", "Summarise this repository [[text: dispatched from the page]]")
    await page.click("#dispatch-submit")
    await page.wait_for_selector("#dispatch-results tr[data-status]", timeout=30_000)
    statuses = await page.eval_on_selector_all("#dispatch-results tr[data-status]", "els => els.map(e => e.dataset.status)")
    assert statuses == ["dispatched", "dispatched"], await page.inner_text("#dispatch-results")
    await _shot(page, "dispatch-desktop")

    # A cross-origin write with the cookie is refused; the same request from our origin is not.
    evil = await ctx.request.post(f"{served.url}/api/v1/ops/signals/nope/ack", headers={"Origin": "http://evil.example"})
    assert evil.status == 403 and (await evil.json())["error"]["code"] == "ORIGIN_MISMATCH"
    ours = await ctx.request.post(f"{served.url}/api/v1/ops/signals/nope/ack", headers={"Origin": served.url})
    assert ours.status == 404

    ids = await _feed_ids(page)
    assert ids and len(ids) == len(set(ids))
    assert not errors, errors
    await ctx.close()


async def test_stream_survives_a_server_restart(served: Served, api: httpx.AsyncClient, browser: Any,
                                                tmp_path: Path, make_token: TokenFactory) -> None:
    first = await _workspace(api, tmp_path / "one", "one")
    ctx, page, errors = await _signed_in_page(browser, served, scopes=["admin"], workspaces=["*"], sub="alice")
    await page.wait_for_selector(f"#ws-{first['id']}, .quiet-list, .group-title")
    await page.evaluate("""() => {
      window.__states = [];
      const el = document.getElementById('stream-state');
      new MutationObserver(() => window.__states.push(el.dataset.state)).observe(el, {attributes: true});
    }""")
    port = served.port
    await served.stop()
    await page.wait_for_selector("#stream-state[data-state='reconnecting']", timeout=5_000)
    await _shot(page, "reconnecting-desktop")

    await served.start(port)  # a new server, same port, same database
    async with httpx.AsyncClient(base_url=served.url, headers=bearer(make_token("admin")), timeout=30) as after:
        second = await _workspace(after, tmp_path / "two", "two")
        await page.wait_for_selector("#stream-state[data-state='live']", timeout=15_000)

        async def has_second() -> Any:
            return await page.locator(f"#feed-list [data-ws='{second['id']}']").count() > 0

        await _until(has_second, 10, "the new workspace's event in the feed")
        states = await page.evaluate("window.__states")
        assert "reconnecting" in states and states[-1] == "live", states
        ids = await _feed_ids(page)
        assert len(ids) == len(set(ids)), "duplicate feed rows"
        api_ids = [i["id"] for i in (await after.get("/api/v1/ops/feed")).json()["items"]]
        assert ids == api_ids  # the page shows the server's feed, in order, once
    await _shot(page, "restarted-desktop")
    assert not errors, errors
    await ctx.close()


def _synthetic_snapshot(n_ws: int, n_threads: int, version: int) -> dict[str, Any]:
    """A snapshot the size of a big fleet (served to the page through a routed request)."""
    now = datetime.now(UTC).isoformat()
    workspaces, workers = [], []
    statuses = ["running", "idle", "completed", "waiting_input", "failed", "stalled"]
    per = n_threads // n_ws
    for i in range(n_ws):
        wid = f"00000000-0000-4000-8000-{i:012d}"
        active = i % 5 == 0  # a fifth of the fleet is busy, the rest is quiet
        threads = [{"thread_id": f"t-{i}-{j}", "workspace_id": wid, "worker_id": None, "agent_kind": "codex",
                    "status": statuses[j % len(statuses)] if active else "completed",
                    "current_task": f"task {j} of workspace {i}", "last_activity_at": now, "next_step": None,
                    "blockers": [], "active_turn_id": None, "last_message": "ok", "turn_count": 1, "job_id": None}
                   for j in range(per)]
        workspaces.append({"id": wid, "name": f"ws-{i:03d}-v{version}", "root_path": f"/srv/ws{i}", "health": "healthy",
                           "current_task": None, "last_activity_at": now, "next_step": None, "blockers": [],
                           "active_thread_id": None, "unacked_signals": 0, "threads": threads})
    return {"generated_at": now, "last_event_id": 1, "workspaces": workspaces, "signals": [], "pending_approvals": [],
            "open_questions": [], "workers": workers, "jobs": [],
            "counts": {"unacked_signals": 0, "needs_input": 0, "unacked_by_workspace": {}}}


async def test_page_stays_light_with_100_workspaces_and_1000_threads(served: Served, browser: Any) -> None:
    ctx, page, errors = await _signed_in_page(browser, served, scopes=["admin"], workspaces=["*"], sub="alice")
    version = {"n": 1}

    async def fake(route: Any) -> None:
        await route.fulfill(json=_synthetic_snapshot(100, 1000, version["n"]))

    await page.route("**/api/v1/ops/snapshot", fake)
    await page.reload()
    await page.wait_for_selector("text=ws-000-v1")
    rendered = await page.locator("#workspaces-body .thread").count()
    assert await page.locator("#workspaces-body section.ws").count() == 20  # busy ones; 80 quiet ones folded
    assert rendered <= 20 * 6
    version["n"] = 2
    await page.wait_for_timeout(600)  # let the start-up refreshes settle (the page spaces them 250 ms apart)
    ms = await page.evaluate("""async () => {
      const t0 = performance.now();
      document.dispatchEvent(new Event('visibilitychange'));  // the page re-reads the snapshot
      while (!document.body.textContent.includes('ws-000-v2')) await new Promise(r => setTimeout(r, 5));
      return performance.now() - t0;
    }""")
    _record("refresh_100ws_1000threads_ms (routed fetch + render)", round(ms, 1))
    await page.click("[data-act='toggle-quiet']")
    assert await page.locator(".quiet-list li").count() == 80
    await _shot(page, "fleet-desktop")
    assert not errors, errors
    await ctx.close()


async def test_a_workspace_with_more_threads_than_the_snapshot_lists_shows_them_all_when_expanded(
        served: Served, api: httpx.AsyncClient, browser: Any, tmp_path: Path) -> None:
    """The snapshot lists the fleet's most urgent threads and counts every one; expanding a workspace
    reads all of its threads from ``GET /ops/threads`` (real server, real data through the pipeline)."""
    import uuid

    from overseer.events import log as event_log
    from overseer.ops import read

    ws = await _workspace(api, tmp_path / "big", "big")
    n = read.SNAPSHOT_THREADS + 5
    async with served.app.state.db.session() as s:
        for i in range(n):
            steps = [("turn.started", {"turn_id": "t1", "prompt": f"task {i}"})]
            if i:  # th-000 keeps running; the others are done
                steps.append(("turn.completed", {"turn_id": "t1", "status": "completed"}))
            for event_type, payload in steps:
                await event_log.append(s, workspace_id=uuid.UUID(ws["id"]), event_type=event_type,
                                       entity_type="worker", entity_id=uuid.uuid4(),
                                       payload={"thread_id": f"th-{i:03d}", **payload})
    snap = (await api.get("/api/v1/ops/snapshot")).json()
    (w,) = snap["workspaces"]
    assert len(w["threads"]) == read.SNAPSHOT_THREADS and w["threads_total"] == n
    ctx, page, errors = await _signed_in_page(browser, served, scopes=["admin"], workspaces=["*"], sub="alice")
    card = f"#ws-{ws['id']}"
    await page.wait_for_selector(f"{card} .thread-counts")
    assert await page.inner_text(f"{card} .thread-counts") == f"{n} threads: 1 running · {n - 1} completed"
    assert await page.locator(f"{card} .thread").count() == 6
    assert await page.locator(f"{card} .thread").first.get_attribute("data-thread-id") == "th-000"
    await page.click(f"{card} [data-act='ws-threads']")
    await expect(page.locator(f"{card} .thread")).to_have_count(n, timeout=10_000)  # (the CSP forbids eval)
    assert await page.get_attribute(f"{card} [data-act='ws-threads']", "aria-expanded") == "true"
    await page.click(f"{card} [data-act='ws-threads']")  # and back to the first ones
    await expect(page.locator(f"{card} .thread")).to_have_count(6, timeout=10_000)
    assert not errors, errors
    await ctx.close()
