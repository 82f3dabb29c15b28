"""The Supervisor chat panel of the live page (issue 6 item 5) in a real browser: Debian's Chromium via
Playwright against a real uvicorn with the runtime, real Codex workers and the real Codex planner on the
scripted model. Reuses the server and browser fixtures of ``test_live_page``; screenshots
``chat-desktop.png`` / ``chat-phone.png`` go to ``artifacts/screenshots/``.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import TokenFactory, bearer
from tests.e2e import test_live_page as live_page
from tests.e2e.test_live_page import DESKTOP, PHONE, XSS, Served, _shot, _signed_in_page, _until, _workspace

# The server, browser and SQLite-only database fixtures of the live page tests, used here by name.
db_url, chromium, browser = live_page.db_url, live_page.chromium, live_page.browser
live_settings, served, api = live_page.live_settings, live_page.served, live_page.api

pytestmark = [pytest.mark.browser, pytest.mark.agents]
VERSION = "overseer.dispatch.v1"
# Test instrumentation: note whether the pending indicator (and a disabled Send) showed during a POST.
WATCH_PENDING = """
window.__pending = [];
new MutationObserver(() => {
  const el = document.getElementById('chat-pending');
  if (!el.hidden) window.__pending.push({text: el.textContent, sendDisabled: document.getElementById('chat-send').disabled});
}).observe(document.getElementById('chat-pending'), {attributes: true, childList: true, subtree: true});
"""
MAX_ID = "() => Math.max(0, ...[...document.querySelectorAll('#chat-list [data-message-id]')].map(e => +e.dataset.messageId))"
REPLY_AFTER = """(b) => {
  const el = [...document.querySelectorAll('#chat-list li[data-role=assistant]')].find(e => +e.dataset.messageId > b);
  return el ? +el.dataset.messageId : null;
}"""


async def _send(page: Any, text: str, *, pending_shot: str | None = None) -> int:
    """Type ``text`` into the chat, press Enter, wait for the assistant's reply; returns its message id."""
    before = await page.evaluate(MAX_ID)
    await page.fill("#chat-input", text)
    await page.press("#chat-input", "Enter")
    if pending_shot:  # a picture of the pending indicator, if the request is still running
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        with contextlib.suppress(PlaywrightTimeout):
            await page.wait_for_selector("#chat-pending:not([hidden])", timeout=2_000)
            await _shot(page, pending_shot)
    handle = await page.wait_for_function(REPLY_AFTER, arg=before, timeout=90_000)
    reply_id = await handle.json_value()
    await page.wait_for_selector("#chat-pending", state="hidden", timeout=10_000)
    return int(reply_id)


def _msg(reply_id: int) -> str:
    return f"#chat-list li[data-message-id='{reply_id}']"


async def _news(page: Any, after: int, kind: str, n: int, timeout_s: float = 60.0) -> list[int]:
    """Wait until ``n`` system messages of ``kind`` with an id above ``after`` are on the page.

    ``after`` is the last message id BEFORE the command was sent, not the reply's: news of fast work
    (an approval, a completion) can commit before the dispatch reply is written."""
    async def check() -> Any:
        ids = await page.eval_on_selector_all(
            f"#chat-list li[data-role='system'][data-kind='{kind}']", "els => els.map(e => +e.dataset.messageId)")
        ids = [i for i in ids if i > after]
        return ids if len(ids) >= n else None
    return await _until(check, timeout_s, f"{n} {kind} news after message {after}")  # type: ignore[no-any-return]


async def _statuses(page: Any, reply_id: int) -> list[str]:
    return list(await page.eval_on_selector_all(f"{_msg(reply_id)} tr[data-status]", "els => els.map(e => e.dataset.status)"))


async def test_chat_panel_commands_plans_news_and_approvals(
        served: Served, api: httpx.AsyncClient, browser: Any, tmp_path: Path, make_token: TokenFactory) -> None:
    alpha = await _workspace(api, tmp_path / "alpha", "alpha")
    beta = await _workspace(api, tmp_path / "beta", "beta")
    async with httpx.AsyncClient(base_url=served.url, headers=bearer(make_token("admin", sub="alice")),
                                 timeout=60) as alice:
        for _ in range(55):  # 110 old messages: the page loads the last 100, the rest via "Load older"
            assert (await alice.post("/api/v1/chat/messages", json={"text": "/help"})).status_code == 201

        ctx, page, errors = await _signed_in_page(browser, served, scopes=["admin"], workspaces=["*"], sub="alice")
        await page.wait_for_selector("#chat-list [data-message-id]")
        assert await page.locator("#chat-list [data-message-id]").count() == 100
        assert await page.is_visible("#chat-older")
        await page.evaluate("window.__stay = 1")  # gone if the page reloads
        await page.evaluate(WATCH_PENDING)
        # A second tab of the same session, to see messages arrive from elsewhere.
        tab2 = await ctx.new_page()
        errors2: list[str] = []
        tab2.on("pageerror", lambda exc: errors2.append(str(exc)))
        await tab2.goto(f"{served.url}/")
        await tab2.wait_for_selector("#stream-state[data-state='live']", timeout=10_000)
        await tab2.wait_for_selector("#chat-list [data-message-id]")

        # Shift+Enter is a new line, not a send.
        await page.fill("#chat-input", "/status")
        await page.press("#chat-input", "Shift+Enter")
        assert await page.input_value("#chat-input") == "/status\n"
        assert await page.is_hidden("#chat-pending")

        # /help renders as a help block.
        help_id = await _send(page, "/help")
        assert await page.get_attribute(_msg(help_id), "data-kind") == "help"
        assert "/dispatch --ws" in await page.inner_text(f"{_msg(help_id)} pre.msg-pre")
        assert await page.input_value("#chat-input") == ""

        # /dispatch to both workspaces: a result table with two dispatched actions and thread links.
        sent = await page.evaluate(MAX_ID)
        reply = await _send(page, '/dispatch --ws alpha,beta --prompt "hello from chat"')
        assert await page.get_attribute(_msg(reply), "data-kind") == "dispatch"
        assert await _statuses(page, reply) == ["dispatched", "dispatched"], await page.inner_text(_msg(reply))
        names = await page.eval_on_selector_all(f"{_msg(reply)} tr[data-status] td:nth-child(2)", "els => els.map(e => e.textContent)")
        assert sorted(names) == ["alpha", "beta"]
        links = await page.eval_on_selector_all(f"{_msg(reply)} a.tlink", "els => els.map(e => e.getAttribute('href'))")
        assert len(links) == 2 and all(h.startswith("#thread-") for h in links)
        # The completions arrive as news without a reload, in this tab and in the other one.
        done = await _news(page, sent, "turn.completed", 2)
        for mid in done:
            assert await page.locator(f"{_msg(mid)} blockquote.msg-quote").count() == 1
            assert "turn completed" in await page.inner_text(_msg(mid))
        for mid in (reply, *done):
            await tab2.wait_for_selector(_msg(mid), timeout=10_000)
        assert await page.evaluate("window.__stay") == 1

        # A thread link in the table goes to its thread.
        await page.click(f"{_msg(reply)} a.tlink >> nth=0")
        await page.wait_for_selector(f"{links[0]}.flash", timeout=3_000)

        # Work that needs an approval: Approve right in the chat (the action center's API).
        sent = await page.evaluate(MAX_ID)
        run = await _send(page, '/dispatch --ws alpha --prompt "[[run: echo hi > chat.txt]]"')
        assert await _statuses(page, run) == ["dispatched"]
        (asked,) = await _news(page, sent, "approval.requested", 1)
        await page.click(f"{_msg(asked)} button[data-decision='accept']")

        async def written() -> bool:
            return (Path(alpha["root_path"]) / "chat.txt").exists()

        await _until(written, 20, "chat.txt in the workspace")
        await page.wait_for_selector(f"{_msg(asked)} button[data-decision]", state="detached", timeout=10_000)
        assert "No longer pending" in await page.inner_text(_msg(asked))
        await _news(page, sent, "turn.completed", 1)

        # Free text goes to the planner; a valid contract for both workspaces dispatches to both.
        contract = {"version": VERSION, "actions": [
            {"type": "dispatch_turn", "action_id": "one", "workspace_id": alpha["id"], "prompt": "plan hello one"},
            {"type": "dispatch_turn", "action_id": "two", "workspace_id": beta["id"], "prompt": "plan hello two"}]}
        sent = await page.evaluate(MAX_ID)
        plan = await _send(page, f"say hello in both workspaces [[json: {json.dumps(contract)}]]",
                           pending_shot="chat-pending-desktop")
        assert await page.get_attribute(_msg(plan), "data-kind") == "plan", await page.inner_text(_msg(plan))
        assert await _statuses(page, plan) == ["dispatched", "dispatched"]
        pending = await page.evaluate("window.__pending")
        assert any("planner" in p["text"] and p["sendDisabled"] for p in pending), pending
        await _news(page, sent, "turn.completed", 2)

        # An invalid plan is refused, with its violations.
        bad = await _send(page, 'do nothing [[json: {"version": "overseer.dispatch.v1", "actions": []}]]')
        assert await page.get_attribute(_msg(bad), "data-kind") == "plan_invalid"
        assert "nothing was run" in await page.inner_text(f"{_msg(bad)} .msg-refused")
        assert "EMPTY_ACTIONS" in await page.inner_text(f"{_msg(bad)} .violations li")
        assert await page.locator(f"{_msg(bad)} tr[data-status]").count() == 0

        # Text is escaped: a user message with markup shows as text; the command error is shown.
        err = await _send(page, f"/status {XSS}")
        assert await page.get_attribute(_msg(err), "data-kind") == "error"
        assert XSS in await page.inner_text("#chat-list li[data-role='user'] >> nth=-1")
        assert await page.evaluate("window.__xss") is None and await page.locator("img[src='x']").count() == 0

        await page.evaluate("document.getElementById('chat').scrollIntoView()")
        await _shot(page, "chat-desktop")
        await page.set_viewport_size(PHONE)
        await page.evaluate("document.getElementById('chat').scrollIntoView()")
        await _shot(page, "chat-phone")
        await page.set_viewport_size(DESKTOP)

        # "Load older" (in the other tab) reaches the first message; ids stay unique and in order.
        first = (await alice.get("/api/v1/chat/messages", params={"limit": 500})).json()["messages"][0]["id"]
        await tab2.click("#chat-older")
        await tab2.wait_for_selector(_msg(first), timeout=5_000)
        assert await tab2.is_hidden("#chat-older")
        for p in (page, tab2):
            ids = await p.eval_on_selector_all("#chat-list [data-message-id]", "els => els.map(e => +e.dataset.messageId)")
            assert ids == sorted(set(ids))
        assert not errors and not errors2, (errors, errors2)
        await ctx.close()
