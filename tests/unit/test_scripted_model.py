"""The scripted model server driven over HTTP with httpx (no agent binaries)."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from overseer.testing import ScriptedModelServer
from overseer.testing.scripted_model import Step, parse_steps

CODEX_TOOLS = [
    {"type": "function", "name": "exec_command", "parameters": {}},
    {"type": "custom", "name": "apply_patch"},
    {"type": "function", "name": "request_user_input", "parameters": {}},
]
CLAUDE_TOOLS = [{"name": "Bash", "input_schema": {}}, {"name": "Write", "input_schema": {}},
                {"name": "AskUserQuestion", "input_schema": {}}]


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer() as srv:
        yield srv


def sse(resp: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in resp.text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            events.append((lines["event"], json.loads(lines["data"])))
    return events


def codex_body(*items: dict[str, Any], tools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"model": "gpt-5.5", "stream": True, "tools": CODEX_TOOLS if tools is None else tools,
            "input": list(items)}


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def openai(server: ScriptedModelServer, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    resp = httpx.post(server.openai_base_url + "/responses", json=body, timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "text/event-stream"
    return sse(resp)


def anthropic(server: ScriptedModelServer, messages: list[dict[str, Any]], **extra: Any
              ) -> list[tuple[str, dict[str, Any]]]:
    body = {"model": "claude-sonnet-4-5", "stream": True, "tools": CLAUDE_TOOLS, "messages": messages,
            "system": [{"type": "text", "text": "Primary working directory: /tmp/ws\nmore"}], **extra}
    resp = httpx.post(server.base_url + "/v1/messages?beta=true", json=body, timeout=10)
    assert resp.status_code == 200, resp.text
    return sse(resp)


def final_item(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    assert events[0][0] == "response.created"
    assert events[-1][0] == "response.completed"
    assert events[-1][1]["response"]["usage"]["total_tokens"] > 0
    return next(d["item"] for e, d in events if e == "response.output_item.done")


def test_parse_steps() -> None:
    steps = parse_steps('x [[run: ls -l]] [[json: {"a": [[1]], "b": "]]"}]] [[nope]] [[fail]] [[ask: Q | A | B]]')
    assert steps == [Step("run", "ls -l"), Step("json", '{"a": [[1]], "b": "]]"}'), Step("fail"),
                     Step("ask", "Q | A | B")]


def test_openai_default_text_in_deltas(server: ScriptedModelServer) -> None:
    events = openai(server, codex_body(user("please say hello to the world")))
    deltas = [d["delta"] for e, d in events if e == "response.output_text.delta"]
    assert len(deltas) >= 3
    assert "".join(deltas) == "scripted reply: please say hello to the world"
    assert final_item(events)["content"][0]["text"] == "".join(deltas)


def test_openai_ignores_injected_context(server: ScriptedModelServer) -> None:
    events = openai(server, codex_body(
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "[[fail]]"}]},
        user("# AGENTS.md instructions for /x\n\n<INSTRUCTIONS>[[fail]]</INSTRUCTIONS>"),
        user("[[text: the real one]]"),
        user("<environment_context>\n  <cwd>/tmp/x</cwd>\n</environment_context>"),
    ))
    assert final_item(events)["content"][0]["text"] == "the real one"


def test_openai_run_then_final(server: ScriptedModelServer) -> None:
    prompt = user("[[run: echo hi > out.txt]] [[run: ls]]")
    call = final_item(openai(server, codex_body(prompt)))
    assert call["type"] == "function_call" and call["name"] == "exec_command"
    assert json.loads(call["arguments"]) == {"cmd": "echo hi > out.txt"}
    result = {"type": "function_call_output", "call_id": call["call_id"], "output": "ok"}
    second = final_item(openai(server, codex_body(prompt, call, result)))
    assert json.loads(second["arguments"]) == {"cmd": "ls"}
    final = final_item(openai(server, codex_body(prompt, call, result, second, {**result, "call_id": "2"})))
    assert final["content"][0]["text"] == "Done: ran ls"


@pytest.mark.parametrize(("tool", "args"), [
    ("shell", {"command": ["bash", "-lc", "pwd"]}),
    ("shell_command", {"command": "pwd"}),
])
def test_openai_shell_tool_variants(server: ScriptedModelServer, tool: str, args: dict[str, Any]) -> None:
    call = final_item(openai(server, codex_body(user("[[run: pwd]]"), tools=[{"type": "function", "name": tool}])))
    assert (call["name"], json.loads(call["arguments"])) == (tool, args)


def test_openai_patch_and_ask(server: ScriptedModelServer) -> None:
    patch = final_item(openai(server, codex_body(user("[[patch: a/b.txt]]"))))
    assert patch["type"] == "custom_tool_call" and patch["name"] == "apply_patch"
    assert patch["input"] == "*** Begin Patch\n*** Add File: a/b.txt\n+scripted patch\n*** End Patch\n"
    ask = final_item(openai(server, codex_body(user("[[ask: Color? | Red | Blue]]"))))
    args = json.loads(ask["arguments"])
    assert ask["name"] == "request_user_input"
    assert [o["label"] for o in args["questions"][0]["options"]] == ["Red", "Blue"]
    no_tool = final_item(openai(server, codex_body(user("[[ask: Color? | Red]]"), tools=[])))
    assert no_tool["type"] == "message"


def test_anthropic_text_run_and_final(server: ScriptedModelServer) -> None:
    events = anthropic(server, [{"role": "user", "content": [
        {"type": "text", "text": "<system-reminder>[[fail]]</system-reminder>"},
        {"type": "text", "text": "hello claude"}]}])
    names = [e for e, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    deltas = [d["delta"]["text"] for e, d in events if e == "content_block_delta"]
    assert len(deltas) >= 3 and "".join(deltas) == "scripted reply: hello claude"
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"

    prompt = {"role": "user", "content": "[[run: echo hi]]"}
    events = anthropic(server, [prompt])
    start = next(d["content_block"] for e, d in events if e == "content_block_start")
    raw = "".join(d["delta"]["partial_json"] for e, d in events if e == "content_block_delta")
    assert start["name"] == "Bash" and json.loads(raw)["command"] == "echo hi"
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    tool_use = {"role": "assistant", "content": [{**start, "input": json.loads(raw)}]}
    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": start["id"], "content": "hi"}]}
    events = anthropic(server, [prompt, tool_use, result])
    assert "".join(d["delta"]["text"] for e, d in events if e == "content_block_delta") == "Done: ran echo hi"


def test_anthropic_merged_user_messages_use_the_newest_text(server: ScriptedModelServer) -> None:
    # Claude merges consecutive user messages (here after an interrupt) into one message.
    events = anthropic(server, [{"role": "user", "content": [
        {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
        {"type": "text", "text": "[[hang]]\n"},
        {"type": "text", "text": "[Request interrupted by user]\n"},
        {"type": "text", "text": "[[text: after]]"}]}])
    assert "".join(d["delta"]["text"] for e, d in events if e == "content_block_delta") == "after"


def test_anthropic_write_ask_nonstream_and_misc(server: ScriptedModelServer) -> None:
    events = anthropic(server, [{"role": "user", "content": "[[patch: p.txt]]"}])
    raw = "".join(d["delta"]["partial_json"] for e, d in events if e == "content_block_delta")
    assert json.loads(raw) == {"file_path": "/tmp/ws/p.txt", "content": "scripted patch\n"}
    events = anthropic(server, [{"role": "user", "content": "[[ask: Color? | Red | Blue]]"}])
    assert next(d["content_block"]["name"] for e, d in events if e == "content_block_start") == "AskUserQuestion"

    body = {"model": "m", "messages": [{"role": "user", "content": "[[text: plain]]"}]}
    resp = httpx.post(server.base_url + "/v1/messages", json=body)
    assert resp.json()["content"] == [{"type": "text", "text": "plain"}]
    assert httpx.post(server.base_url + "/v1/messages/count_tokens", json=body).json()["input_tokens"] > 0
    assert httpx.head(server.base_url + "/").status_code == 200


def test_json_step_verbatim(server: ScriptedModelServer) -> None:
    plan = '{"tasks": [{"title": "a", "deps": [[0, 1]]}]}'
    item = final_item(openai(server, codex_body(user(f"plan this [[json: {plan}]]"))))
    assert item["content"][0]["text"] == plan


def test_slow_spreads_deltas(server: ScriptedModelServer) -> None:
    t0 = time.monotonic()
    with httpx.stream("POST", server.openai_base_url + "/responses", json=codex_body(user("[[slow: 0.6]]"))) as r:
        stamps = [time.monotonic() - t0 for line in r.iter_lines() if line.startswith("event: response.output_text.delta")]
    assert len(stamps) >= 5
    assert stamps[-1] - stamps[0] >= 0.4


def test_fail_returns_500_json(server: ScriptedModelServer) -> None:
    resp = httpx.post(server.openai_base_url + "/responses", json=codex_body(user("[[fail]]")))
    assert resp.status_code == 500 and resp.json()["error"]["message"] == "scripted failure"
    resp = httpx.post(server.base_url + "/v1/messages", json={"messages": [{"role": "user", "content": "[[fail: 429]]"}]})
    assert resp.status_code == 429 and resp.json()["type"] == "error"


def test_hang_does_not_block_stop() -> None:
    srv = ScriptedModelServer()
    srv.start()
    got: list[str] = []
    errors: list[BaseException] = []

    def consume() -> None:
        try:
            with httpx.stream("POST", srv.openai_base_url + "/responses",
                              json=codex_body(user("[[hang]]")), timeout=10) as r:
                got.extend(r.iter_lines())
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    deadline = time.monotonic() + 5
    while not srv.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert t.is_alive()  # the stream is open and silent
    t0 = time.monotonic()
    srv.stop()
    assert time.monotonic() - t0 < 2
    t.join(timeout=3)
    assert not t.is_alive()
    assert any("response.created" in line for line in got)
    assert srv.requests[0].step == "0: hang"


def test_hang_ends_when_client_disconnects() -> None:
    with ScriptedModelServer() as srv:
        body = {"stream": True, "messages": [{"role": "user", "content": "[[hang]]"}]}
        with httpx.stream("POST", srv.base_url + "/v1/messages", json=body, timeout=10) as r:
            assert next(r.iter_lines()).startswith("event: message_start")
        # the server is still responsive afterwards
        assert httpx.post(srv.base_url + "/v1/messages", json={"messages": [{"role": "user", "content": "x"}]}).status_code == 200


def test_requests_log(caplog: pytest.LogCaptureFixture) -> None:
    with ScriptedModelServer() as srv, caplog.at_level(logging.INFO, "overseer.testing.scripted_model"):
        openai(srv, codex_body(user("[[run: ls]]")))
        httpx.post(srv.base_url + "/v1/messages", json={"messages": [{"role": "user", "content": "yo"}]})
        recs = srv.requests
        assert [(r.method, r.path, r.api, r.step) for r in recs] == [
            ("POST", "/v1/responses", "openai", "0: run: ls"),
            ("POST", "/v1/messages", "anthropic", "default"),
        ]
        assert recs[0].prompt == "[[run: ls]]" and "exec_command" in recs[0].tools
        served = httpx.get(srv.base_url + "/_scripted/requests").json()
        assert [r["api"] for r in served] == ["openai", "anthropic"]
        assert "step=0: run: ls" in caplog.text
        httpx.post(srv.base_url + "/_scripted/reset")
        assert srv.requests == []


def test_server_errors_are_logged(server: ScriptedModelServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, "overseer.testing.scripted_model"):
        resp = httpx.post(server.openai_base_url + "/responses", json={"input": 5, "tools": "x"})
    assert resp.status_code == 500
    assert "error serving POST /v1/responses" in caplog.text


def test_main_serves_until_sigterm() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "overseer.testing.scripted_model", "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.split()[3]
        assert url.startswith("http://127.0.0.1:")
        assert httpx.head(url + "/").status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        proc.kill()
        proc.wait()
