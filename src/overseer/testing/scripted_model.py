"""A scripted model server on 127.0.0.1 that the REAL Codex and Claude Code binaries can talk to.

One stdlib HTTP server (``ThreadingHTTPServer`` in a background thread) speaks both:

* the **OpenAI Responses API** for Codex: ``POST .../responses`` (SSE: ``response.created``,
  ``response.output_item.added``, ``response.output_text.delta``, ``response.output_item.done``,
  ``response.completed`` with usage). Point Codex at :attr:`ScriptedModelServer.openai_base_url`
  (``http://127.0.0.1:PORT/v1``) through a custom ``model_providers`` entry with ``wire_api="responses"``.
* the **Anthropic Messages API** for Claude Code: ``HEAD /`` (200), ``POST /v1/messages[?beta=true]``
  streaming or not, ``POST /v1/messages/count_tokens``. Point Claude at
  :attr:`ScriptedModelServer.base_url` with ``ANTHROPIC_BASE_URL`` (no ``/v1``).

Scenario language
=================

The reply is chosen from ``[[...]]`` markers in the **last real user message** of the conversation
(text the agent injects itself, such as ``<environment_context>``, ``# AGENTS.md instructions`` or
``<system-reminder>`` blocks, is ignored). The markers form an ordered list of steps; the step to play
is the number of tool results that came back after that user message (0 for the first request of a
turn). When every step has been played, the reply is a final text ``Done: <summary of the last step>``
(for ``ask`` it includes the answer that came back). Text replies always end the turn.

``[[run: CMD]]``
    a shell tool call running ``CMD``. Codex: the shell tool offered in ``body.tools``
    (``exec_command`` ``{"cmd"}``, ``shell`` ``{"command": ["bash", "-lc", CMD]}`` or
    ``shell_command`` ``{"command"}``). Claude: ``Bash`` ``{"command", "description"}``.
``[[patch: PATH]]``
    create file PATH with content ``scripted patch\\n``. Codex: the ``apply_patch`` custom tool
    (``*** Add File: PATH``), or a shell ``printf`` when ``apply_patch`` is not offered. Claude: the
    ``Write`` tool, ``file_path`` made absolute under the working directory found in the request.
``[[ask: QUESTION | OPTION1 | OPTION2 ...]]``
    ask the user. Codex: the ``request_user_input`` tool (only offered in Plan collaboration mode,
    see AGENTS.md next to this file). Claude: the ``AskUserQuestion`` tool. Falls back to a text
    reply ``QUESTION`` when no such tool is offered.
``[[slow: SECONDS]]``
    a final text streamed in many deltas (about 10 per second, at least 5) spread over SECONDS.
``[[fail]]`` / ``[[fail: STATUS]]``
    HTTP 500 (or STATUS) with a JSON error body. Note that agents retry 5xx; use e.g. 400 for a
    failure that is not retried.
``[[hang]]``
    start the SSE stream (first event only), then send nothing until the client disconnects or the
    server stops.
``[[text: SOME TEXT]]``
    reply exactly SOME TEXT.
``[[json: {...}]]``
    reply with that JSON text verbatim (nested ``[[``/``]]`` inside the JSON are fine).
``[[mcp: TOOL {json args}]]``
    call the MCP tool TOOL (of any server) with those arguments. Codex 0.169 defers MCP tools: the
    server first calls ``tool_search`` (query TOOL) and then the tool found (``function_call`` with its
    ``namespace``, e.g. ``mcp__overseer``); a search that finds nothing (the MCP server is still starting)
    is retried after 0.5 s, up to 20 times. Claude: the ``mcp__<server>__TOOL`` tool; while it is not
    offered yet, ``WaitForMcpServers`` first (up to 5 times). Searches and waits do not count as steps.

With no marker the reply is ``scripted reply: <first 60 chars of the prompt>`` streamed in at least 3
deltas. A step that needs a tool the agent did not offer turns into a text reply saying so.

Every request served is logged (see :class:`RequestRecord`) in :attr:`ScriptedModelServer.requests`,
at ``GET /_scripted/requests`` (JSON list) and on the ``overseer.testing.scripted_model`` logger.
``POST /_scripted/reset`` clears the log.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import select
import signal
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

logger = logging.getLogger("overseer.testing.scripted_model")

PATCH_CONTENT = "scripted patch\n"
SHELL_TOOL_NAMES = ("exec_command", "shell_command", "shell")
CODEX_TOOL_RESULT_TYPES = {"function_call_output", "custom_tool_call_output"}
MCP_SEARCH_RETRIES = 20
MCP_WAIT_RETRIES = 5
MCP_SEARCH_PAUSE_S = 0.5


# --------------------------------------------------------------------------------------------------
# Scenario parsing


@dataclass(frozen=True, slots=True)
class Step:
    """One scenario step: ``kind`` is run|patch|ask|slow|fail|hang|text|json|default; ``arg`` its text."""

    kind: str
    arg: str = ""

    @property
    def label(self) -> str:
        return f"{self.kind}: {self.arg}" if self.arg else self.kind


_STEP_KINDS = {"run", "patch", "ask", "slow", "fail", "hang", "text", "json", "mcp"}
_TERMINAL_KINDS = {"slow", "fail", "hang", "text", "json"}


def parse_steps(text: str) -> list[Step]:
    """Parse the ``[[...]]`` markers of ``text`` into steps, in order. Unknown markers are ignored."""
    steps: list[Step] = []
    pos = 0
    while True:
        start = text.find("[[", pos)
        if start < 0:
            return steps
        head = re.match(r"\[\[\s*([a-zA-Z]+)\s*(:?)", text[start:])
        if not head or head.group(1).lower() not in _STEP_KINDS:
            pos = start + 2
            continue
        kind = head.group(1).lower()
        body_start = start + head.end()
        if kind == "json" and head.group(2):
            # raw_decode so that "]]" inside the JSON does not end the marker.
            ws = len(text[body_start:]) - len(text[body_start:].lstrip())
            try:
                _, consumed = json.JSONDecoder().raw_decode(text, body_start + ws)
                end = text.find("]]", consumed)
                if end >= 0:
                    steps.append(Step(kind, text[body_start + ws : consumed]))
                    pos = end + 2
                    continue
            except ValueError:
                pass
        end = text.find("]]", body_start)
        if end < 0:
            return steps
        steps.append(Step(kind, text[body_start:end].strip() if head.group(2) else ""))
        pos = end + 2


_INJECTED_BLOCK = re.compile(r"^\s*<([A-Za-z][\w-]*)(\s[^>]*)?>.*</\1>\s*$", re.S)
_SYSTEM_REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>", re.S)
_INTERRUPTED = re.compile(r"^\[Request interrupted by user[^\]]*\]$")


def _real_user_text(text: str) -> str:
    """``text`` minus what agents inject into user messages; '' when nothing real is left."""
    text = _SYSTEM_REMINDER.sub("", text).strip()
    if not text or _INJECTED_BLOCK.match(text) or _INTERRUPTED.match(text):
        return ""
    if text.startswith("# AGENTS.md instructions") or text.startswith("<INSTRUCTIONS>"):
        return ""
    return text


@dataclass(slots=True)
class Conversation:
    """What the server extracted from one request body (API-independent)."""

    prompt: str  # the last real user text ('' if none)
    tool_results: list[str]  # texts of the tool results after that message, in order
    tools: list[str]  # names of the tools offered
    cwd: str | None = None  # the agent's working directory, when the request reveals it
    found_tools: dict[str, str] = field(default_factory=dict)  # MCP tool name -> namespace (Codex tool_search)
    searches: int = 0  # tool_search calls (Codex) / WaitForMcpServers calls (Claude) since the prompt


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    parts.append(part["text"])
                elif "content" in part:
                    parts.append(_text_of(part["content"]))
        return "\n".join(parts)
    return "" if content is None else json.dumps(content)


def _user_texts(content: Any) -> list[str]:
    """Real user text parts of one user message's content (string or list of blocks)."""
    if isinstance(content, str):
        return [t for t in [_real_user_text(content)] if t]
    out = []
    for part in content or []:
        if isinstance(part, dict) and part.get("type") in ("text", "input_text"):
            t = _real_user_text(str(part.get("text", "")))
            if t:
                out.append(t)
    return out


def _tool_name(tool: dict[str, Any]) -> str | None:
    if isinstance(tool.get("name"), str):
        return tool["name"]
    fn = tool.get("function")
    if isinstance(fn, dict) and isinstance(fn.get("name"), str):
        return fn["name"]
    return None


_CWD_RE = re.compile(r"(?:Working directory|Primary working directory|<cwd>)\s*:?\s*([^\s<]+)")


def _find_cwd(*texts: str) -> str | None:
    for t in texts:
        m = _CWD_RE.search(t)
        if m:
            return m.group(1)
    return None


def parse_openai(body: dict[str, Any]) -> Conversation:
    """Extract the conversation from a Responses API request body."""
    items = body.get("input")
    if isinstance(items, str):
        items = [{"type": "message", "role": "user", "content": items}]
    items = [i for i in (items or []) if isinstance(i, dict)]
    last_user, prompt = -1, ""
    for idx in range(len(items) - 1, -1, -1):
        item = items[idx]
        if item.get("type", "message") == "message" and item.get("role") == "user":
            texts = _user_texts(item.get("content"))
            if texts:
                last_user, prompt = idx, "\n".join(texts)
                break
    results = [
        _text_of(i.get("output"))
        for i in items[last_user + 1 :]
        if i.get("type") in CODEX_TOOL_RESULT_TYPES
    ]
    found: dict[str, str] = {}
    searches = 0
    for i in items[last_user + 1 :]:
        if i.get("type") == "tool_search_output":
            searches += 1
            for ns in i.get("tools") or []:
                for t in (ns.get("tools") or []) if isinstance(ns, dict) else []:
                    if isinstance(t, dict) and isinstance(t.get("name"), str):
                        found[t["name"]] = str(ns.get("name") or "")
    tools = [n for n in (_tool_name(t) or (t.get("type") if t.get("type") == "tool_search" else None)
                         for t in body.get("tools") or [] if isinstance(t, dict)) if n]
    all_text = [_text_of(i.get("content")) for i in items if i.get("type", "message") == "message"]
    return Conversation(prompt, results, tools, _find_cwd(*all_text), found, searches)


def parse_anthropic(body: dict[str, Any]) -> Conversation:
    """Extract the conversation from a Messages API request body."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    last_user, prompt = -1, ""
    for idx in range(len(messages) - 1, -1, -1):
        msg = messages[idx]
        if msg.get("role") == "user":
            texts = _user_texts(msg.get("content"))
            if texts:
                # Claude merges consecutive user messages (e.g. "[[hang]]", "[Request interrupted by
                # user]", "next prompt") into one message with one text block each: the newest is last.
                last_user, prompt = idx, texts[-1]
                break
    results: list[str] = []
    waits: set[str] = set()
    for msg in messages[last_user + 1 :]:
        content = msg.get("content")
        if msg.get("role") == "assistant" and isinstance(content, list):
            waits |= {str(b.get("id")) for b in content if isinstance(b, dict) and b.get("type") == "tool_use"
                      and b.get("name") == "WaitForMcpServers"}
        if msg.get("role") == "user" and isinstance(content, list):
            results += [
                _text_of(b.get("content"))
                for b in content
                if isinstance(b, dict) and b.get("type") == "tool_result" and str(b.get("tool_use_id")) not in waits
            ]
    tools = [n for n in (_tool_name(t) for t in body.get("tools") or [] if isinstance(t, dict)) if n]
    system = _text_of(body.get("system"))
    msg_text = [_text_of(m.get("content")) for m in messages]
    return Conversation(prompt, results, tools, _find_cwd(system, *msg_text), searches=len(waits))


# --------------------------------------------------------------------------------------------------
# Reply planning (API-independent)


@dataclass(slots=True)
class Reply:
    """What to answer. ``kind``: text | tool | fail | hang. ``slow_s`` spreads text deltas over seconds."""

    kind: str
    step: str
    text: str = ""
    tool: str = ""  # abstract tool: shell | patch | ask
    command: str = ""
    path: str = ""
    question: str = ""
    options: list[str] = field(default_factory=list)
    status: int = 500
    slow_s: float = 0.0


def _summary(step: Step, result: str) -> str:
    if step.kind == "run":
        return f"Done: ran {step.arg}"
    if step.kind == "mcp":
        return f"Done: called {step.arg.split(' ')[0]}: {result.strip()[:300]}"
    if step.kind == "patch":
        return f"Done: patched {step.arg}"
    if step.kind == "ask":
        question = step.arg.split("|")[0].strip()
        return f"Done: asked {question!r}, answer: {result.strip()[:300]}"
    return "Done"


def plan_reply(conv: Conversation) -> Reply:
    """Choose the reply for a conversation according to the scenario language (module docstring)."""
    steps = parse_steps(conv.prompt)
    if not steps:
        excerpt = conv.prompt[:60]
        return Reply("text", "default", text=f"scripted reply: {excerpt}")
    index = len(conv.tool_results)
    if index >= len(steps):
        last = steps[-1]
        result = conv.tool_results[-1] if conv.tool_results else ""
        return Reply("text", f"final after {last.label}", text=_summary(last, result))
    step = steps[index]
    label = f"{index}: {step.label}"
    if step.kind == "text":
        return Reply("text", label, text=step.arg)
    if step.kind == "json":
        return Reply("text", label, text=step.arg)
    if step.kind == "slow":
        try:
            seconds = max(0.0, float(step.arg or "2"))
        except ValueError:
            seconds = 2.0
        return Reply("text", label, text="", slow_s=seconds)
    if step.kind == "fail":
        try:
            status = int(step.arg) if step.arg else 500
        except ValueError:
            status = 500
        return Reply("fail", label, status=status)
    if step.kind == "hang":
        return Reply("hang", label)
    if step.kind == "run":
        return Reply("tool", label, tool="shell", command=step.arg)
    if step.kind == "patch":
        return Reply("tool", label, tool="patch", path=step.arg)
    if step.kind == "mcp":
        name, _, raw = step.arg.partition(" ")
        return Reply("tool", label, tool="mcp", command=name.strip(), text=raw.strip() or "{}")
    if step.kind == "ask":
        parts = [p.strip() for p in step.arg.split("|")]
        options = [p for p in parts[1:] if p] or ["Yes", "No"]
        return Reply("tool", label, tool="ask", question=parts[0], options=options)
    return Reply("text", label, text=f"scripted reply: {conv.prompt[:60]}")  # pragma: no cover


def slow_chunks(seconds: float) -> list[str]:
    """The deltas of a slow reply: about 10 per second, at least 5."""
    n = max(5, int(seconds * 10))
    return [f"slow {i + 1}/{n} " if i + 1 < n else f"slow {n}/{n} done" for i in range(n)]


def split_deltas(text: str, minimum: int = 3) -> list[str]:
    """Split ``text`` into at least ``minimum`` deltas (fewer only if shorter); joined, they equal it."""
    if not text:
        return [""]
    words = re.findall(r"\S+\s*|\s+", text)
    if len(words) >= minimum:
        return words
    n = min(minimum, len(text))
    size = -(-len(text) // n)
    return [text[i : i + size] for i in range(0, len(text), size)]


# --------------------------------------------------------------------------------------------------
# The server


@dataclass(slots=True)
class RequestRecord:
    """One served request. ``api``: openai | anthropic | other; ``at``: unix seconds."""

    method: str
    path: str
    api: str
    step: str | None = None
    prompt: str = ""
    model: str | None = None
    stream: bool | None = None
    tools: list[str] = field(default_factory=list)
    tool_results: int = 0
    status: int = 200
    at: float = field(default_factory=time.time)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    owner: ScriptedModelServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.exception("scripted model: unhandled error serving %s", client_address)


class _ClientGone(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    # NB: never define a method named `responses` here (it would shadow BaseHTTPRequestHandler.responses).
    server: _Server
    timeout = 60  # seconds of socket inactivity before a stuck client connection is dropped
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    # ---- plumbing

    @property
    def owner(self) -> ScriptedModelServer:
        return self.server.owner

    def _read_json(self) -> dict[str, Any]:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            logger.warning("scripted model: request body is not JSON: %r", raw[:200])
            return {}
        return body if isinstance(body, dict) else {}

    def _send_json(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _start_sse(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True

    def _event(self, name: str, data: dict[str, Any]) -> None:
        try:
            self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise _ClientGone from exc

    def _sleep(self, seconds: float) -> None:
        if self.owner._stopping.wait(seconds):
            raise _ClientGone("server stopping")

    def _hang(self) -> None:
        """Send nothing until the client disconnects or the server stops."""
        conn = self.connection
        while not self.owner._stopping.is_set():
            readable, _, _ = select.select([conn], [], [], 0.1)
            if readable:
                try:
                    if not conn.recv(1, socket.MSG_PEEK):
                        return
                except OSError:
                    return

    def _record(self, rec: RequestRecord) -> None:
        self.owner._record(rec)

    # ---- HTTP verbs

    def do_HEAD(self) -> None:
        self._record(RequestRecord("HEAD", self.path, "anthropic"))
        self._send_json(200, {})

    def do_GET(self) -> None:
        try:
            path = urlsplit(self.path).path
            if path == "/_scripted/requests":
                self._send_json(200, [asdict(r) for r in self.owner.requests])
                return
            self._record(RequestRecord("GET", self.path, "other"))
            if path.endswith("/models"):
                self._send_json(200, {"object": "list", "data": [], "has_more": False})
            elif path in ("/", "/health", "/_scripted/health"):
                self._send_json(200, {"ok": True})
            else:
                self._send_json(404, {"error": {"message": f"no route for GET {path}"}})
        except Exception:
            logger.exception("scripted model: error serving GET %s", self.path)

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        try:
            if path == "/_scripted/reset":
                self.owner.clear_requests()
                self._send_json(200, {"ok": True})
            elif path.endswith("/responses"):
                self._openai(self._read_json())
            elif path.endswith("/messages/count_tokens"):
                body = self._read_json()
                self._record(RequestRecord("POST", self.path, "anthropic", step="count_tokens"))
                self._send_json(200, {"input_tokens": max(1, len(json.dumps(body)) // 4)})
            elif path.endswith("/messages"):
                self._anthropic(self._read_json())
            else:
                self._record(RequestRecord("POST", self.path, "other", status=404))
                self._send_json(404, {"error": {"message": f"no route for POST {path}"}})
        except _ClientGone:
            logger.debug("scripted model: client went away during %s", self.path)
        except Exception:
            logger.exception("scripted model: error serving POST %s", self.path)
            try:
                self._send_json(500, {"error": {"message": "scripted model server error"}})
            except Exception:
                pass

    # ---- OpenAI Responses API (Codex)

    def _openai(self, body: dict[str, Any]) -> None:
        conv = parse_openai(body)
        reply = plan_reply(conv)
        model = str(body.get("model") or "scripted")
        stream = bool(body.get("stream", False))
        rec = RequestRecord(
            "POST", self.path, "openai", reply.step, conv.prompt[:120], model, stream,
            conv.tools, len(conv.tool_results),
        )
        if reply.kind == "fail":
            rec.status = reply.status
            self._record(rec)
            self._send_json(reply.status, {"error": {
                "message": "scripted failure", "type": "server_error", "code": "scripted_fail",
            }})
            return
        item = self._openai_item(reply, conv, body)
        if item is None:  # the tool is not offered
            reply = Reply("text", reply.step + " (tool not offered)",
                          text=f"scripted: no tool offered for {reply.tool}: {reply.command or reply.path or reply.question}")
            item = self._openai_item(reply, conv, body)
            assert item is not None
        rec.step = reply.step
        self._record(rec)
        resp_id = f"resp_{uuid.uuid4().hex[:16]}"
        usage_in = max(1, len(json.dumps(body)) // 4)
        base = {"id": resp_id, "object": "response", "created_at": int(time.time()), "model": model}
        if not stream:
            out = dict(item)
            out.pop("_deltas", None)
            self._send_json(200, {**base, "status": "completed", "output": [out],
                                  "usage": _openai_usage(usage_in, 10)})
            return
        self._start_sse()
        seq = iter(range(1_000_000))
        self._event("response.created", {"type": "response.created", "sequence_number": next(seq),
                                         "response": {**base, "status": "in_progress", "output": []}})
        if reply.kind == "hang":
            self._hang()
            return
        deltas: list[str] = item.pop("_deltas", [])
        started = {**item, "status": "in_progress"}
        if item["type"] == "message":
            started["content"] = []
        elif item["type"] == "function_call":
            started["arguments"] = ""
        elif item["type"] == "custom_tool_call":
            started["input"] = ""
        self._event("response.output_item.added", {"type": "response.output_item.added",
                                                   "sequence_number": next(seq), "output_index": 0,
                                                   "item": started})
        if item["type"] == "message":
            part = {"type": "output_text", "text": "", "annotations": []}
            self._event("response.content_part.added", {
                "type": "response.content_part.added", "sequence_number": next(seq),
                "item_id": item["id"], "output_index": 0, "content_index": 0, "part": part})
            pause = reply.slow_s / max(1, len(deltas)) if reply.slow_s else 0.0
            for delta in deltas:
                if pause:
                    self._sleep(pause)
                self._event("response.output_text.delta", {
                    "type": "response.output_text.delta", "sequence_number": next(seq),
                    "item_id": item["id"], "output_index": 0, "content_index": 0, "delta": delta})
            text = item["content"][0]["text"]
            self._event("response.output_text.done", {
                "type": "response.output_text.done", "sequence_number": next(seq),
                "item_id": item["id"], "output_index": 0, "content_index": 0, "text": text})
            self._event("response.content_part.done", {
                "type": "response.content_part.done", "sequence_number": next(seq),
                "item_id": item["id"], "output_index": 0, "content_index": 0,
                "part": {**part, "text": text}})
        self._event("response.output_item.done", {"type": "response.output_item.done",
                                                  "sequence_number": next(seq), "output_index": 0,
                                                  "item": item})
        out_tokens = max(1, len(json.dumps(item)) // 4)
        self._event("response.completed", {"type": "response.completed", "sequence_number": next(seq),
                                           "response": {**base, "status": "completed", "output": [item],
                                                        "usage": _openai_usage(usage_in, out_tokens)}})

    def _openai_item(self, reply: Reply, conv: Conversation, body: dict[str, Any]) -> dict[str, Any] | None:
        call_id = f"call_{uuid.uuid4().hex[:12]}"
        if reply.kind in ("text", "hang"):
            chunks = slow_chunks(reply.slow_s) if reply.slow_s else split_deltas(reply.text)
            text = "".join(chunks)
            return {"type": "message", "id": f"msg_{uuid.uuid4().hex[:12]}", "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": text, "annotations": []}],
                    "_deltas": chunks}
        tools = {(_tool_name(t) or ""): t for t in body.get("tools") or [] if isinstance(t, dict)}

        def function_call(name: str, args: dict[str, Any]) -> dict[str, Any]:
            return {"type": "function_call", "id": f"fc_{uuid.uuid4().hex[:12]}", "call_id": call_id,
                    "name": name, "arguments": json.dumps(args), "status": "completed"}

        def shell_call(command: str) -> dict[str, Any] | None:
            for name in SHELL_TOOL_NAMES:
                if name in tools:
                    if name == "exec_command":
                        return function_call(name, {"cmd": command})
                    if name == "shell":
                        return function_call(name, {"command": ["bash", "-lc", command]})
                    return function_call(name, {"command": command})
            return None

        if reply.tool == "shell":
            return shell_call(reply.command)
        if reply.tool == "mcp":
            return self._openai_mcp(reply, conv, tools, call_id)
        if reply.tool == "patch":
            patch = f"*** Begin Patch\n*** Add File: {reply.path}\n+{PATCH_CONTENT}*** End Patch\n"
            tool = tools.get("apply_patch")
            if tool is not None and tool.get("type") == "custom":
                return {"type": "custom_tool_call", "id": f"ctc_{uuid.uuid4().hex[:12]}",
                        "call_id": call_id, "name": "apply_patch", "input": patch, "status": "completed"}
            if tool is not None:
                return function_call("apply_patch", {"input": patch})
            return shell_call(f"printf 'scripted patch\\n' > {_shell_quote(reply.path)}")
        if reply.tool == "ask":
            if "request_user_input" not in tools:
                return None
            question = {
                "id": "q1", "header": reply.question[:12] or "Question", "question": reply.question,
                "options": [{"label": o, "description": f"Choose {o}"} for o in reply.options],
            }
            return function_call("request_user_input", {"questions": [question]})
        return None

    def _openai_mcp(self, reply: Reply, conv: Conversation, tools: dict[str, Any], call_id: str
                    ) -> dict[str, Any] | None:
        """An MCP tool call: direct when offered, else through ``tool_search`` (Codex defers MCP tools)."""
        try:
            args = json.loads(reply.text)
        except ValueError:
            args = {}
        direct = next((n for n in tools if n == reply.command or n.endswith(f"__{reply.command}")), None)
        if direct is not None:
            return {"type": "function_call", "id": f"fc_{uuid.uuid4().hex[:12]}", "call_id": call_id, "name": direct,
                    "arguments": json.dumps(args), "status": "completed"}
        if reply.command in conv.found_tools:
            return {"type": "function_call", "id": f"fc_{uuid.uuid4().hex[:12]}", "call_id": call_id,
                    "name": reply.command, "namespace": conv.found_tools[reply.command],
                    "arguments": json.dumps(args), "status": "completed"}
        if "tool_search" not in conv.tools or conv.searches >= MCP_SEARCH_RETRIES:
            return None
        if conv.searches:
            self._sleep(MCP_SEARCH_PAUSE_S)  # the MCP server is still starting: give it a moment
        return {"type": "tool_search_call", "id": f"tsc_{uuid.uuid4().hex[:12]}", "call_id": call_id,
                "execution": "client", "status": "completed", "arguments": {"query": reply.command, "limit": 5}}

    # ---- Anthropic Messages API (Claude Code)

    def _anthropic(self, body: dict[str, Any]) -> None:
        conv = parse_anthropic(body)
        reply = plan_reply(conv)
        model = str(body.get("model") or "scripted")
        stream = bool(body.get("stream", False))
        rec = RequestRecord(
            "POST", self.path, "anthropic", reply.step, conv.prompt[:120], model, stream,
            conv.tools, len(conv.tool_results),
        )
        if reply.kind == "fail":
            rec.status = reply.status
            self._record(rec)
            self._send_json(reply.status, {"type": "error", "error": {
                "type": "api_error", "message": "scripted failure"}})
            return
        block = self._anthropic_block(reply, conv)
        if block is None:
            reply = Reply("text", reply.step + " (tool not offered)",
                          text=f"scripted: no tool offered for {reply.tool}: {reply.command or reply.path or reply.question}")
            block = self._anthropic_block(reply, conv)
            assert block is not None
        rec.step = reply.step
        self._record(rec)
        msg_id = f"msg_{uuid.uuid4().hex[:20]}"
        usage_in = max(1, len(json.dumps(body)) // 4)
        stop_reason = "tool_use" if block["type"] == "tool_use" else "end_turn"
        deltas: list[str] = block.pop("_deltas", [])
        out_tokens = max(1, len(json.dumps(block)) // 4)
        usage = {"input_tokens": usage_in, "output_tokens": out_tokens,
                 "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        message = {"id": msg_id, "type": "message", "role": "assistant", "model": model,
                   "content": [block], "stop_reason": stop_reason, "stop_sequence": None, "usage": usage}
        if not stream:
            self._send_json(200, message)
            return
        self._start_sse()
        self._event("message_start", {"type": "message_start", "message": {
            **message, "content": [], "stop_reason": None,
            "usage": {**usage, "output_tokens": 1}}})
        if reply.kind == "hang":
            self._hang()
            return
        if block["type"] == "text":
            self._event("content_block_start", {"type": "content_block_start", "index": 0,
                                                "content_block": {"type": "text", "text": ""}})
            pause = reply.slow_s / max(1, len(deltas)) if reply.slow_s else 0.0
            for delta in deltas:
                if pause:
                    self._sleep(pause)
                self._event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                    "delta": {"type": "text_delta", "text": delta}})
        else:
            self._event("content_block_start", {"type": "content_block_start", "index": 0,
                                                "content_block": {**block, "input": {}}})
            raw = json.dumps(block["input"])
            half = len(raw) // 2
            for piece in (raw[:half], raw[half:]):
                self._event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                    "delta": {"type": "input_json_delta",
                                                              "partial_json": piece}})
        self._event("content_block_stop", {"type": "content_block_stop", "index": 0})
        self._event("message_delta", {"type": "message_delta",
                                      "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                      "usage": {"output_tokens": out_tokens}})
        self._event("message_stop", {"type": "message_stop"})

    def _anthropic_block(self, reply: Reply, conv: Conversation) -> dict[str, Any] | None:
        if reply.kind in ("text", "hang"):
            chunks = slow_chunks(reply.slow_s) if reply.slow_s else split_deltas(reply.text)
            return {"type": "text", "text": "".join(chunks), "_deltas": chunks}
        tool_id = f"toolu_{uuid.uuid4().hex[:20]}"

        def tool_use(name: str, args: dict[str, Any]) -> dict[str, Any] | None:
            if name not in conv.tools:
                return None
            return {"type": "tool_use", "id": tool_id, "name": name, "input": args}

        if reply.tool == "shell":
            return tool_use("Bash", {"command": reply.command, "description": "scripted command"})
        if reply.tool == "mcp":
            try:
                args = json.loads(reply.text)
            except ValueError:
                args = {}
            name = next((n for n in conv.tools if n.startswith("mcp__") and n.endswith(f"__{reply.command}")), None)
            if name is not None:
                return tool_use(name, args)
            if conv.searches < MCP_WAIT_RETRIES:
                return tool_use("WaitForMcpServers", {})
            return None
        if reply.tool == "patch":
            path = reply.path
            if not path.startswith("/") and conv.cwd:
                path = conv.cwd.rstrip("/") + "/" + path
            return tool_use("Write", {"file_path": path, "content": PATCH_CONTENT})
        if reply.tool == "ask":
            question = {
                "question": reply.question if reply.question.endswith("?") else reply.question + "?",
                "header": (reply.question[:12] or "Question"),
                "options": [{"label": o, "description": f"Choose {o}"} for o in reply.options],
                "multiSelect": False,
            }
            return tool_use("AskUserQuestion", {"questions": [question]})
        return None


def _openai_usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens}


def _shell_quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


class ScriptedModelServer:
    """The scripted model on ``host`` (127.0.0.1) and ``port`` (0 = OS-chosen), served from a thread.

    Usable from sync code and from an asyncio program (``start``/``stop`` return in milliseconds and
    never need the event loop)::

        with ScriptedModelServer() as server:
            server.openai_base_url   # "http://127.0.0.1:PORT/v1"  -> Codex provider base_url
            server.base_url          # "http://127.0.0.1:PORT"     -> ANTHROPIC_BASE_URL
            server.requests          # list[RequestRecord] served so far
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._port = port
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._requests: list[RequestRecord] = []

    # ---- lifecycle

    def start(self) -> None:
        """Bind and serve in a daemon thread. Raises ``OSError`` when the port is taken."""
        if self._httpd is not None:
            return
        self._stopping.clear()
        httpd = _Server((self.host, self._port), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self._port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
            name=f"scripted-model:{self._port}", daemon=True,
        )
        self._thread.start()
        logger.info("scripted model server listening on %s", self.base_url)

    def stop(self) -> None:
        """Stop serving; streams in progress (hang, slow) end within ~0.1 s. Idempotent."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        logger.info("scripted model server on port %s stopped", self._port)

    def __enter__(self) -> ScriptedModelServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- addresses

    @property
    def port(self) -> int:
        """The bound TCP port (the requested one before :meth:`start`)."""
        return self._port

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` (for ``ANTHROPIC_BASE_URL``)."""
        return f"http://{self.host}:{self._port}"

    @property
    def openai_base_url(self) -> str:
        """``http://HOST:PORT/v1`` (for a Codex ``model_providers.*.base_url``)."""
        return self.base_url + "/v1"

    # ---- request log

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot copy of the requests served so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Forget the logged requests."""
        with self._lock:
            self._requests.clear()

    def _record(self, rec: RequestRecord) -> None:
        with self._lock:
            self._requests.append(rec)
        logger.info("scripted model: %s %s api=%s step=%s status=%s prompt=%r",
                    rec.method, rec.path, rec.api, rec.step, rec.status, rec.prompt[:60])


def main(argv: list[str] | None = None) -> int:
    """Serve the scripted model on ``--host``/``--port`` until SIGINT or SIGTERM; returns 0."""
    parser = argparse.ArgumentParser(prog="overseer model-server", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    done = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: done.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = ScriptedModelServer(args.host, args.port)
    try:
        server.start()
        print(f"scripted model server: {server.base_url} (Codex base_url {server.openai_base_url})", flush=True)
        while not done.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
