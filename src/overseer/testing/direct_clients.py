"""Minimal direct clients for the real agent binaries (no Overseer code in between).

Used by the end-to-end tests of the scripted model and by the benchmark that compares Overseer with
a bare client. Both are synchronous (a reader thread per pipe), spawn the agent in its own process
group, and :meth:`close` kills that whole group, so no process is left behind.

* :class:`CodexDirectClient`: ``codex app-server`` over stdio JSON-RPC (v2: initialize, initialized,
  thread/start, turn/start, read until ``turn/completed``), configured with ``-c`` overrides only and a
  private ``CODEX_HOME``.
* :class:`ClaudeDirectClient`: ``claude -p --input-format stream-json --output-format stream-json
  --verbose --permission-prompt-tool stdio`` with a private ``HOME``; one user message per turn, read
  until ``result``.

Approvals are answered from the ``approval`` argument of ``run_turn``; questions (Codex
``item/tool/requestUserInput``, Claude ``AskUserQuestion``) from ``answers``.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Answerer = Callable[[dict[str, Any]], str]
"""Given one question ``{"id"?, "question", "options": [{"label", ...}], ...}``, return the answer text."""


def first_option(question: dict[str, Any]) -> str:
    """Default :data:`Answerer`: the first option's label (or ``"yes"`` without options)."""
    options = question.get("options") or []
    return str(options[0].get("label")) if options else "yes"


@dataclass(slots=True)
class TurnResult:
    """The outcome of one turn.

    ``status``: Codex ``turn.status`` (completed|interrupted|failed) or Claude ``result.subtype``
    (success|error_during_execution|...). ``text``: the final agent message. ``messages``: every
    message read during the turn (raw JSON objects). ``approvals``: the approval/question requests
    answered, as ``{"method"|"tool_name", "params"|"input", "answer"}``. ``elapsed_s``: wall seconds from
    sending the turn to its end.
    """

    status: str
    text: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    approvals: list[dict[str, Any]] = field(default_factory=list)
    error: Any = None
    elapsed_s: float = 0.0


class DirectClientError(RuntimeError):
    """The agent process died, timed out or answered with an error."""


class _Proc:
    """A child in its own process group with JSON-lines stdout and a bounded stderr buffer."""

    def __init__(self, argv: Sequence[str], *, cwd: str, env: dict[str, str]) -> None:
        self.argv = list(argv)
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True,
        )
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._stderr: list[bytes] = []
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True, name=f"direct-out:{self.pid}"),
            threading.Thread(target=self._read_stderr, daemon=True, name=f"direct-err:{self.pid}"),
        ]
        for t in self._threads:
            t.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def stderr(self) -> str:
        return b"".join(self._stderr).decode(errors="replace")[-8000:]

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            raw = raw.strip()
            if not raw:
                continue
            try:
                obj = json.loads(raw)
            except ValueError:
                obj = {"_unparsed": raw[:500].decode(errors="replace")}
            if isinstance(obj, dict):
                self.lines.put(obj)
        self.lines.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self._stderr.append(raw)
            if len(self._stderr) > 400:
                del self._stderr[:200]

    def send(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(obj) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise DirectClientError(f"{self.argv[0]} is gone: {exc}; stderr: {self.stderr}") from exc

    def next(self, deadline: float) -> dict[str, Any]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DirectClientError(f"timed out waiting for {self.argv[0]}; stderr: {self.stderr}")
        try:
            obj = self.lines.get(timeout=remaining)
        except queue.Empty:
            raise DirectClientError(f"timed out waiting for {self.argv[0]}; stderr: {self.stderr}") from None
        if obj is None:
            self.lines.put(None)
            raise DirectClientError(
                f"{self.argv[0]} exited (rc={self.proc.poll()}); stderr: {self.stderr}"
            )
        return obj

    def kill(self, grace_s: float = 2.0) -> int | None:
        """Close stdin, then SIGTERM and SIGKILL the process group. Returns the exit code."""
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=min(grace_s, 0.5))
        except subprocess.TimeoutExpired:
            pass
        for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)  # the group also holds the agent's own children
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(timeout=wait)
                if sig == signal.SIGTERM:
                    try:  # children that outlived their parent
                        os.killpg(self.proc.pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
                break
            except subprocess.TimeoutExpired:
                continue
        for t in self._threads:
            t.join(timeout=2)
        return self.proc.returncode


def _clean_env(drop_prefixes: Sequence[str]) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(tuple(drop_prefixes))}


# --------------------------------------------------------------------------------------------------
# Codex


def codex_config_overrides(openai_base_url: str, model: str = "gpt-5.5") -> list[str]:
    """The ``-c key=value`` overrides pointing Codex at a Responses endpoint (``.../v1``) offline."""
    return [
        f'model="{model}"',
        'model_provider="scripted"',
        'model_providers.scripted.name="scripted"',
        f'model_providers.scripted.base_url="{openai_base_url}"',
        'model_providers.scripted.env_key="FAKE_API_KEY"',
        'model_providers.scripted.wire_api="responses"',
        "model_providers.scripted.request_max_retries=0",
        "model_providers.scripted.stream_max_retries=0",
        "analytics.enabled=false",
        "features.plugins=false",
        "features.remote_plugin=false",
        "features.apps=false",
        "features.in_app_updates=false",
    ]


class CodexDirectClient:
    """``codex app-server`` driven directly. ``home`` becomes CODEX_HOME; ``cwd`` the thread cwd.

    ``extra_config``: more ``-c`` overrides (e.g. ``"features.default_mode_request_user_input=true"``).
    ``experimental_api``: declare ``capabilities.experimentalApi`` (needed for ``collaborationMode``).
    """

    def __init__(
        self,
        binary: str,
        *,
        openai_base_url: str,
        cwd: str,
        home: str,
        model: str = "gpt-5.5",
        extra_config: Sequence[str] = (),
        extra_env: dict[str, str] | None = None,
        experimental_api: bool = False,
    ) -> None:
        self.binary = binary
        self.cwd = cwd
        self.home = home
        self.model = model
        self.experimental_api = experimental_api
        self.argv = [binary, "app-server"]
        for kv in [*codex_config_overrides(openai_base_url, model), *extra_config]:
            self.argv += ["-c", kv]
        self.env = _clean_env(("CODEX_", "OPENAI_"))
        self.env.update({"CODEX_HOME": home, "FAKE_API_KEY": "dummy", **(extra_env or {})})
        self._proc: _Proc | None = None
        self._next_id = 1
        self._approval = "accept"
        self._answerer: Answerer = first_option
        self._answered: list[dict[str, Any]] = []
        self._backlog: list[dict[str, Any]] = []
        self.ready_s: float | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def stderr(self) -> str:
        return self._proc.stderr if self._proc else ""

    def start(self, timeout: float = 30.0) -> dict[str, Any]:
        """Spawn and handshake; returns the ``initialize`` result. Sets ``ready_s`` (spawn to ready)."""
        os.makedirs(self.home, exist_ok=True)
        self._proc = _Proc(self.argv, cwd=self.cwd, env=self.env)
        caps = {"experimentalApi": True} if self.experimental_api else None
        result = self.request("initialize", {
            "clientInfo": {"name": "overseer-direct", "title": None, "version": "0"},
            "capabilities": caps,
        }, timeout=timeout)
        self._proc.send({"method": "initialized"})
        self.ready_s = time.monotonic() - self._proc.started_at
        return result

    def request(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30.0) -> Any:
        """Send a JSON-RPC request and wait for its result (other messages go to the turn backlog)."""
        proc = self._require()
        rid = self._next_id
        self._next_id += 1
        proc.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}})
        deadline = time.monotonic() + timeout
        while True:
            msg = proc.next(deadline)
            if "method" not in msg and msg.get("id") == rid:
                if "error" in msg:
                    raise DirectClientError(f"{method} failed: {msg['error']}")
                return msg.get("result")
            self._dispatch(msg)
            self._backlog.append(msg)

    def start_thread(
        self, *, approval_policy: str = "untrusted", sandbox: str = "workspace-write", **params: Any
    ) -> str:
        """``thread/start`` in ``cwd``; returns the thread id."""
        result = self.request("thread/start", {
            "cwd": self.cwd, "approvalPolicy": approval_policy, "sandbox": sandbox, **params,
        })
        return str(result["thread"]["id"])

    def run_turn(
        self,
        thread_id: str,
        text: str,
        *,
        approval: str = "accept",
        answerer: Answerer = first_option,
        timeout: float = 60.0,
        **params: Any,
    ) -> TurnResult:
        """``turn/start`` then read until ``turn/completed``; ``approval`` answers every approval."""
        proc = self._require()
        self._approval, self._answerer, self._answered = approval, answerer, []
        t0 = time.monotonic()
        self._backlog = []
        self.request("turn/start", {
            "threadId": thread_id, "input": [{"type": "text", "text": text, "text_elements": []}], **params,
        })
        messages, deadline = list(self._backlog), t0 + timeout
        self._backlog = []
        done = next((m for m in messages if m.get("method") == "turn/completed"), None)
        while done is None:
            msg = proc.next(deadline)
            self._dispatch(msg)
            messages.append(msg)
            if msg.get("method") == "turn/completed" and msg.get("params", {}).get("threadId") == thread_id:
                done = msg
        turn = done["params"]["turn"]
        texts = [
            m["params"]["item"].get("text", "")
            for m in messages
            if m.get("method") == "item/completed" and m["params"]["item"].get("type") == "agentMessage"
        ]
        return TurnResult(
            status=turn.get("status", "?"), text=texts[-1] if texts else "", messages=messages,
            approvals=self._answered, error=turn.get("error"), elapsed_s=time.monotonic() - t0,
        )

    def _dispatch(self, msg: dict[str, Any]) -> None:
        """Answer server requests (they carry both ``method`` and ``id``)."""
        if "method" not in msg or "id" not in msg:
            return
        method, params = msg["method"], msg.get("params") or {}
        result: dict[str, Any] | None
        if method.endswith("/requestApproval"):
            result = {"decision": self._approval}
        elif method == "item/tool/requestUserInput":
            result = {"answers": {
                q["id"]: {"answers": [self._answerer(q)]} for q in params.get("questions", [])
            }}
        else:
            result = None
        proc = self._require()
        if result is None:
            proc.send({"jsonrpc": "2.0", "id": msg["id"],
                       "error": {"code": -32601, "message": f"direct client does not handle {method}"}})
        else:
            proc.send({"jsonrpc": "2.0", "id": msg["id"], "result": result})
        self._answered.append({"method": method, "params": params, "answer": result})

    def _require(self) -> _Proc:
        if self._proc is None:
            raise DirectClientError("not started")
        return self._proc

    def close(self) -> int | None:
        """Kill the app-server and its process group; returns its exit code. Idempotent."""
        proc, self._proc = self._proc, None
        return proc.kill() if proc else None

    def __enter__(self) -> CodexDirectClient:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------------
# Claude Code


CLAUDE_OFFLINE_ENV = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_AUTOUPDATER": "1",
}


class ClaudeDirectClient:
    """``claude -p`` in stream-json mode driven directly. ``home`` becomes HOME; ``cwd`` the work dir."""

    def __init__(
        self,
        binary: str,
        *,
        base_url: str,
        cwd: str,
        home: str,
        model: str = "claude-sonnet-4-5",
        permission_mode: str = "default",
        extra_args: Sequence[str] = (),
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.binary = binary
        self.cwd = cwd
        self.home = home
        self.argv = [
            binary, "-p", "--input-format", "stream-json", "--output-format", "stream-json",
            "--verbose", "--model", model, "--permission-prompt-tool", "stdio",
            "--permission-mode", permission_mode, *extra_args,
        ]
        self.env = _clean_env(("ANTHROPIC_", "CLAUDE_"))
        self.env.update({
            "HOME": home, "ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_API_KEY": "dummy",
            "CLAUDE_CODE_MAX_RETRIES": "0",  # like Codex's *_max_retries=0: [[fail]] fails at once
            **CLAUDE_OFFLINE_ENV, **(extra_env or {}),
        })
        self._proc: _Proc | None = None
        self.session_id: str | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def stderr(self) -> str:
        return self._proc.stderr if self._proc else ""

    def start(self) -> None:
        """Spawn the CLI (it reads its first user message from stdin)."""
        os.makedirs(self.home, exist_ok=True)
        self._proc = _Proc(self.argv, cwd=self.cwd, env=self.env)

    def run_turn(
        self,
        text: str,
        *,
        approval: str = "allow",
        answerer: Answerer = first_option,
        timeout: float = 60.0,
    ) -> TurnResult:
        """Send one user message and read until ``result``. ``approval``: allow | deny."""
        proc = self._require()
        t0 = time.monotonic()
        proc.send({"type": "user", "message": {"role": "user", "content": text},
                   "parent_tool_use_id": None, "session_id": self.session_id or ""})
        deadline = t0 + timeout
        messages: list[dict[str, Any]] = []
        answered: list[dict[str, Any]] = []
        while True:
            msg = proc.next(deadline)
            messages.append(msg)
            if msg.get("session_id"):
                self.session_id = msg["session_id"]
            if msg.get("type") == "control_request":
                answered.append(self._answer_control(msg, approval, answerer))
            elif msg.get("type") == "result":
                return TurnResult(
                    status=str(msg.get("subtype")), text=str(msg.get("result") or ""), messages=messages,
                    approvals=answered, error=msg if msg.get("is_error") else None,
                    elapsed_s=time.monotonic() - t0,
                )

    def _answer_control(self, msg: dict[str, Any], approval: str, answerer: Answerer) -> dict[str, Any]:
        req = msg.get("request") or {}
        rid = msg.get("request_id")
        response: dict[str, Any]
        if req.get("subtype") != "can_use_tool":
            response = {"subtype": "error", "request_id": rid,
                        "error": f"direct client does not handle {req.get('subtype')}"}
        else:
            tool_input = dict(req.get("input") or {})
            if req.get("tool_name") == "AskUserQuestion":
                tool_input["answers"] = {
                    q.get("question", ""): answerer(q) for q in tool_input.get("questions", [])
                }
                decision = {"behavior": "allow", "updatedInput": tool_input}
            elif approval == "allow":
                decision = {"behavior": "allow", "updatedInput": tool_input}
            else:
                decision = {"behavior": "deny", "message": "direct client denied this tool call"}
            response = {"subtype": "success", "request_id": rid, "response": decision}
        self._require().send({"type": "control_response", "response": response})
        return {"tool_name": req.get("tool_name"), "input": req.get("input"), "answer": response}

    def _require(self) -> _Proc:
        if self._proc is None:
            raise DirectClientError("not started")
        return self._proc

    def close(self) -> int | None:
        """Kill the CLI and its process group; returns its exit code. Idempotent."""
        proc, self._proc = self._proc, None
        return proc.kill() if proc else None

    def __enter__(self) -> ClaudeDirectClient:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
