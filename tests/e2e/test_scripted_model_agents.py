"""The REAL Codex app-server and Claude Code CLI against the scripted model (minimal direct clients)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from overseer.testing import ScriptedModelServer
from overseer.testing.direct_clients import ClaudeDirectClient, CodexDirectClient

pytestmark = pytest.mark.agents


def _assert_group_gone(pgid: int | None) -> None:
    assert pgid is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)  # no process of the agent's group is left


def _dirs(tmp_path: Path) -> tuple[str, str]:
    cwd, home = tmp_path / "work", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    return str(cwd), str(home)


def test_codex_app_server(agent_bins: dict[str, str], scripted_model: ScriptedModelServer, tmp_path: Path
                          ) -> None:
    cwd, home = _dirs(tmp_path)
    client = CodexDirectClient(
        agent_bins["codex"], openai_base_url=scripted_model.openai_base_url, cwd=cwd, home=home,
        extra_config=["features.default_mode_request_user_input=true"],
    )
    try:
        client.start()
        thread_id = client.start_thread(approval_policy="untrusted", sandbox="workspace-write")

        text = client.run_turn(thread_id, "[[text: codex says hi]]", timeout=30)
        assert (text.status, text.text) == ("completed", "codex says hi")
        assert sum(m.get("method") == "item/agentMessage/delta" for m in text.messages) >= 3

        run = client.run_turn(thread_id, "[[run: echo hi > out.txt]]", approval="accept", timeout=30)
        assert run.status == "completed", run.error
        assert [a["method"] for a in run.approvals] == ["item/commandExecution/requestApproval"]
        assert (Path(cwd) / "out.txt").read_text().strip() == "hi"
        assert run.text == "Done: ran echo hi > out.txt"

        ask = client.run_turn(thread_id, "[[ask: Which color? | Red | Blue]]", timeout=30)
        assert [a["method"] for a in ask.approvals] == ["item/tool/requestUserInput"]
        assert '"Red"' in ask.text
    finally:
        pid = client.pid
        client.close()
    _assert_group_gone(pid)
    steps = [r.step for r in scripted_model.requests if r.api == "openai"]
    assert "0: run: echo hi > out.txt" in steps


def test_claude_code(agent_bins: dict[str, str], scripted_model: ScriptedModelServer, tmp_path: Path) -> None:
    cwd, home = _dirs(tmp_path)
    client = ClaudeDirectClient(agent_bins["claude"], base_url=scripted_model.base_url, cwd=cwd, home=home)
    try:
        client.start()
        text = client.run_turn("[[text: claude says hi]]", timeout=30)
        assert (text.status, text.text) == ("success", "claude says hi")

        run = client.run_turn("[[run: echo hi > out.txt]]", approval="allow", timeout=30)
        assert run.status == "success"
        assert [a["tool_name"] for a in run.approvals] == ["Bash"]
        assert (Path(cwd) / "out.txt").read_text().strip() == "hi"
        assert run.text == "Done: ran echo hi > out.txt"

        ask = client.run_turn("[[ask: Which color? | Red | Blue]]", timeout=30)
        assert [a["tool_name"] for a in ask.approvals] == ["AskUserQuestion"]
        assert '"Which color?"="Red"' in ask.text
    finally:
        pid = client.pid
        client.close()
    _assert_group_gone(pid)
    assert any(r.api == "anthropic" and r.step == "0: run: echo hi > out.txt" for r in scripted_model.requests)
