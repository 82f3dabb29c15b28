"""``CodexSession``: the :class:`~overseer.runtime.agent.AgentSession` for ``codex app-server``.

Protocol source: ``/work/shared/reference/agent-protocols.md`` (checked against codex-cli 0.169.0)
and the schema from ``codex app-server generate-json-schema --out DIR``. One JSON-RPC message per
line over stdio (see ``runtime.rpc``); the server omits ``"jsonrpc"`` and its server-request ids
start at 0, colliding with ours, which ``JsonRpcConnection`` handles by classifying on shape.

Lifecycle::

    session = CodexSession(config, sink)     # sink: async (AgentEvent) -> None, called in wire order
    await session.start()                     # --version check, spawn, initialize/initialized; agent.ready
    thread_id = await session.start_thread()  # or start_thread(resume_thread_id=...) after a restart
    turn_id = await session.start_turn(thread_id, "fix the tests")
    ...  # events: turn.started, item.*, message.delta, approval.requested, ..., turn.completed
    await session.stop()                      # agent.exited with expected=True

Spawn: ``<binary> app-server`` with ``CODEX_HOME=config.home`` (created), ``cwd=config.cwd`` and the
caller's environment plus ``config.extra_env``. With ``config.model_base_url`` the agent is pointed at
that Responses endpoint with ``-c`` overrides only (provider ``overseer_model``, key env var
``OVERSEER_MODEL_API_KEY=dummy``, no retries, analytics and plugin/app sync off, the
``request_user_input`` tool on); without it, Codex runs with whatever config ``config.home`` holds.

Access modes (``thread/start`` / ``thread/resume`` params), checked on the real binary:

==============  ==================  ======================  =====================================
access_mode     approvalPolicy      sandbox                 effect
==============  ==================  ======================  =====================================
full-access     never               danger-full-access      nothing is asked
default         untrusted           workspace-write         ``echo hi > out.txt`` is asked
                                                            (``on-request`` ran it unasked)
read-only       on-request          read-only               writes are asked / refused
==============  ==================  ======================  =====================================

Normalization (Codex notification -> ``AgentEvent.type``): ``thread/started`` -> ``thread.started``,
``turn/started`` -> ``turn.started``, ``turn/completed`` -> ``turn.completed`` (status, error message,
final agent message, duration), ``item/started|completed`` -> ``item.started|completed``,
``item/agentMessage/delta`` -> ``message.delta``, ``item/commandExecution/outputDelta`` ->
``command.output_delta``, ``turn/plan/updated`` -> ``plan.updated``, ``thread/tokenUsage/updated`` ->
``token_usage`` (``scope: "thread"``: cumulative for the thread; the last model request's counts are
under ``"last"``),
``thread/status/changed`` -> ``status``, ``error`` -> ``error``, ``serverRequest/resolved`` ->
``approval.resolved``. Server requests: ``item/commandExecution/requestApproval`` and
``item/fileChange/requestApproval`` -> ``approval.requested`` (the file diff comes from the earlier
``item/started`` fileChange); ``item/tool/requestUserInput`` -> ``question.requested``; any other
server request is answered ``-32601 "unsupported by overseer"`` at once. Payload fields are read
under camelCase and snake_case. ``request_id`` in events is ``str(<json-rpc id>)``.

Process exit: every pending request fails with ``RpcConnectionClosed``, unanswered server requests
are dropped, each running turn gets a synthetic ``turn.completed`` (``failed``, "agent process
exited (...)"; ``interrupted``, "agent stopped" after :meth:`CodexSession.stop`), then
``agent.exited`` (``expected`` only after ``stop``), always the last event.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Mapping
from typing import Any

from overseer.runtime.agent import (
    AgentBinaryError,
    AgentConfig,
    AgentError,
    AgentEvent,
    AgentKind,
    ApprovalDecision,
    EventSink,
    ThreadNotFound,
    require_supported_version,
)
from overseer.runtime.process import AgentProcess, ProcessExit
from overseer.runtime.rpc import METHOD_NOT_FOUND, JsonId, JsonRpcConnection, RpcError

logger = logging.getLogger(__name__)

BINARY_SETTING = "OVERSEER_CODEX_BIN"
DEFAULT_MODEL = "gpt-5.5"
PROVIDER_ID = "overseer_model"
API_KEY_ENV = "OVERSEER_MODEL_API_KEY"
CLIENT_NAME = "overseer"
CLIENT_VERSION = "0.1.0"
VERSION_TIMEOUT_S = 15.0
OUTPUT_LIMIT_CHARS = 16_000  # item.completed "output" is truncated to this many characters (the tail)

ACCESS_MODES: dict[str, tuple[str, str]] = {
    "full-access": ("never", "danger-full-access"),
    "default": ("untrusted", "workspace-write"),
    "read-only": ("on-request", "read-only"),
}
"""access_mode -> (approvalPolicy, sandbox) for thread/start and thread/resume."""

DECISIONS: dict[str, str] = {
    "accept": "accept",
    "accept_for_session": "acceptForSession",
    "decline": "decline",
    "cancel": "cancel",
}

ITEM_TYPES: dict[str, str] = {
    "commandExecution": "command",
    "fileChange": "file_change",
    "agentMessage": "message",
    "userMessage": "user_message",
    "reasoning": "reasoning",
    "mcpToolCall": "tool",
    "dynamicToolCall": "tool",
    "webSearch": "tool",
    "imageView": "tool",
    "imageGeneration": "tool",
    "collabAgentToolCall": "tool",
}

APPROVAL_METHODS = {
    "item/commandExecution/requestApproval": "command",
    "item/fileChange/requestApproval": "file_change",
}
QUESTION_METHOD = "item/tool/requestUserInput"

NOISE = frozenset({
    "configWarning", "remoteControl/status/changed", "account/rateLimits/updated", "warning",
    "deprecationNotice", "mcpServer/startupStatus/updated", "skills/changed", "thread/settings/updated",
})


def codex_overrides(model_base_url: str, model: str | None) -> list[str]:
    """The ``-c key=value`` overrides that point Codex at ``model_base_url`` (Responses API) offline.

    ``model_base_url`` may end with ``/v1`` or not; Codex needs it with ``/v1``. Returns the values
    only (the caller puts a ``-c`` before each).
    """
    base = model_base_url.rstrip("/")
    if not base.endswith("/v1"):
        base += "/v1"
    prefix = f"model_providers.{PROVIDER_ID}"
    return [
        f"model={_toml_str(model or DEFAULT_MODEL)}",
        f"model_provider={_toml_str(PROVIDER_ID)}",
        f"{prefix}.name={_toml_str('Overseer model endpoint')}",
        f"{prefix}.base_url={_toml_str(base)}",
        f"{prefix}.env_key={_toml_str(API_KEY_ENV)}",
        f"{prefix}.wire_api={_toml_str('responses')}",
        f"{prefix}.request_max_retries=0",
        f"{prefix}.stream_max_retries=0",
        "analytics.enabled=false",
        "features.plugins=false",
        "features.remote_plugin=false",
        "features.apps=false",
        "features.in_app_updates=false",
        "features.default_mode_request_user_input=true",
    ]


class CodexSession:
    """A live ``codex app-server`` process (one per session; it may host several threads).

    All public methods raise :class:`AgentError` (or its subclasses ``RpcError``, ``RpcTimeout``,
    ``RpcConnectionClosed`` from ``runtime.rpc``, and ``AgentBinaryError`` from :meth:`start`).
    """

    kind: AgentKind = "codex"

    def __init__(self, config: AgentConfig, sink: EventSink) -> None:
        self.config = config
        self.version: str | None = None
        self._sink = sink
        self._proc: AgentProcess | None = None
        self._rpc: JsonRpcConnection | None = None
        self._stopping = False
        self._stop_lock = asyncio.Lock()
        # server requests awaiting our answer: str(id) -> (original id, method)
        self._pending: dict[str, tuple[JsonId, str]] = {}
        self._file_diffs: dict[str, str] = {}  # fileChange item id -> diff text
        self._final_text: dict[str, str] = {}  # turn id -> last agentMessage text
        self._prompts: dict[str, str] = {}  # thread id -> prompt of the turn being started
        self._active_turns: dict[str, str | None] = {}  # turn id -> thread id, until turn/completed
        self._completed_turns: dict[str, None] = {}  # ordered set, bounded (start_turn vs turn/completed race)
        self._announced: set[str] = set()  # thread ids whose thread.started was emitted
        self._resuming: set[str] = set()
        self.ignored_notifications: dict[str, int] = {}

    # ------------------------------------------------------------------ state

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.alive

    @property
    def rpc(self) -> JsonRpcConnection:
        """The JSON-RPC connection (for stats and tests). Raises AgentError before :meth:`start`."""
        if self._rpc is None:
            raise AgentError("codex session not started")
        return self._rpc

    @property
    def pending_request_ids(self) -> list[str]:
        """Server requests (approvals, questions) not answered or resolved yet."""
        return list(self._pending)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Check the binary, spawn ``codex app-server``, handshake; emits ``agent.ready``.

        Raises:
            AgentBinaryError: the binary is missing or ``--version`` fails (setting OVERSEER_CODEX_BIN).
            AgentError: the process died or did not answer ``initialize`` in time.
        """
        if self._proc is not None:
            raise AgentError("codex session already started")
        cfg = self.config
        self.version = await check_version(cfg.binary)
        await asyncio.to_thread(os.makedirs, cfg.home, exist_ok=True)
        argv = [cfg.binary, "app-server"]
        if cfg.model_base_url:
            for kv in codex_overrides(cfg.model_base_url, cfg.model):
                argv += ["-c", kv]
        if cfg.mcp_server:
            from overseer.jobs.mcp_server import codex_mcp_overrides

            for kv in codex_mcp_overrides(cfg.mcp_server):
                argv += ["-c", kv]
        rpc = JsonRpcConnection(
            on_notification=self._on_notification,
            on_request=self._on_request,
            on_malformed=self._on_malformed,
            on_closed=self._on_closed,
            name="codex",
            default_timeout_s=cfg.request_timeout_s,
        )
        proc = AgentProcess(
            argv,
            env=self._child_env(),
            cwd=cfg.cwd,
            on_line=rpc.feed_line,
            on_malformed=rpc.feed_oversized,
            line_limit_bytes=cfg.line_limit_bytes,
            binary_setting=BINARY_SETTING,
            name="codex",
        )
        await proc.start()
        rpc.attach(proc)
        self._proc, self._rpc = proc, rpc
        try:
            await rpc.request("initialize", {
                "clientInfo": {"name": CLIENT_NAME, "title": "Overseer", "version": CLIENT_VERSION},
                "capabilities": None,
            })
            await rpc.notify("initialized")
        except AgentError as exc:
            await self.stop(grace_s=1.0)
            raise AgentError(f"codex app-server handshake failed: {exc}") from exc
        await self._emit("agent.ready", payload={"pid": proc.pid, "version": self.version})

    async def stop(self, *, grace_s: float = 5.0) -> None:
        """Close stdin, SIGTERM then SIGKILL the process group after ``grace_s`` seconds; returns
        after ``agent.exited`` (``expected=True``) was emitted. Idempotent. Called from inside the
        event sink it returns once the process is gone, and ``agent.exited`` follows that callback."""
        async with self._stop_lock:
            self._stopping = True
            if self._proc is None:
                return
            await self._proc.terminate(grace_s=grace_s)
            if self._rpc is not None:
                await self._rpc.wait_closed()

    # ------------------------------------------------------------------ threads and turns

    async def start_thread(self, *, resume_thread_id: str | None = None) -> str:
        """``thread/start``, or ``thread/resume`` (``excludeTurns: true``) to continue a thread whose
        rollout is in CODEX_HOME (works after a process restart). Returns the thread id. Raises
        ThreadNotFound when Codex has no rollout for ``resume_thread_id``, AgentError otherwise."""
        approval, sandbox = ACCESS_MODES[self.config.access_mode]
        params: dict[str, Any] = {"cwd": self.config.cwd, "approvalPolicy": approval, "sandbox": sandbox}
        if self.config.model:
            params["model"] = self.config.model
        if resume_thread_id:
            self._resuming.add(resume_thread_id)
            try:
                result = await self.rpc.request("thread/resume", {
                    "threadId": resume_thread_id, "excludeTurns": True, **params})
            except RpcError as exc:
                self._resuming.discard(resume_thread_id)
                if "no rollout found" in str(exc):
                    raise ThreadNotFound(str(exc), thread_id=resume_thread_id) from exc
                raise
        else:
            result = await self.rpc.request("thread/start", params)
        thread = _get(result, "thread") or {}
        thread_id = _get(thread, "id")
        if not isinstance(thread_id, str):
            raise AgentError(f"codex returned no thread id: {str(result)[:300]}")
        await self._announce(thread_id, resumed=bool(resume_thread_id))
        return thread_id

    async def start_turn(
        self, thread_id: str, prompt: str, *, model: str | None = None, effort: str | None = None,
        output_schema: dict[str, Any] | None = None,
    ) -> str:
        """``turn/start``; returns the turn id from the response (the turn then runs on its own).

        ``output_schema`` (a JSON Schema) constrains the final message (``outputSchema``, app-server v2).
        """
        params: dict[str, Any] = {"threadId": thread_id, "input": _text_input(prompt)}
        if model:
            params["model"] = model
        if effort:
            params["effort"] = effort
        if output_schema is not None:
            params["outputSchema"] = output_schema
        self._prompts[thread_id] = prompt
        result = await self.rpc.request("turn/start", params)
        turn_id = _get(_get(result, "turn") or {}, "id")
        if not isinstance(turn_id, str):
            raise AgentError(f"codex returned no turn id: {str(result)[:300]}")
        if turn_id not in self._completed_turns:
            self._active_turns[turn_id] = thread_id
        return turn_id

    async def steer_turn(self, thread_id: str, turn_id: str, prompt: str) -> None:
        """``turn/steer`` with ``expectedTurnId`` (fails with RpcError if that turn is not active)."""
        await self.rpc.request("turn/steer", {
            "threadId": thread_id, "expectedTurnId": turn_id, "input": _text_input(prompt)})

    async def interrupt_turn(self, thread_id: str, turn_id: str) -> None:
        """``turn/interrupt``; ``turn.completed`` with status ``interrupted`` follows."""
        await self.rpc.request("turn/interrupt", {"threadId": thread_id, "turnId": turn_id})

    # ------------------------------------------------------------------ answers

    async def answer_approval(self, request_id: str, decision: ApprovalDecision) -> None:
        """Answer a pending ``approval.requested`` with ``{"decision": accept|acceptForSession|
        decline|cancel}``. Raises AgentError for an unknown/settled request or a bad decision."""
        if decision not in DECISIONS:
            raise AgentError(f"unknown approval decision {decision!r}")
        raw_id, _ = self._take_pending(request_id, APPROVAL_METHODS)
        await self.rpc.respond(raw_id, {"decision": DECISIONS[decision]})

    async def answer_question(self, request_id: str, answers: dict[str, Any]) -> None:
        """Answer a pending ``question.requested``: ``answers`` maps question id to the answer text
        (or a list of texts); sent as ``{"answers": {qid: {"answers": [text, ...]}}}``."""
        raw_id, _ = self._take_pending(request_id, {QUESTION_METHOD: "question"})
        shaped = {
            str(qid): {"answers": [str(a) for a in value] if isinstance(value, list | tuple) else [str(value)]}
            for qid, value in answers.items()
        }
        await self.rpc.respond(raw_id, {"answers": shaped})

    def _take_pending(self, request_id: str, methods: Mapping[str, str]) -> tuple[JsonId, str]:
        entry = self._pending.get(str(request_id))
        if entry is None:
            raise AgentError(f"no pending codex request {request_id!r} (already answered, resolved or gone)")
        if entry[1] not in methods:
            raise AgentError(f"codex request {request_id!r} is a {entry[1]}, not one of {sorted(methods)}")
        del self._pending[str(request_id)]
        return entry

    # ------------------------------------------------------------------ incoming

    async def _on_request(self, raw_id: JsonId, method: str, params: dict[str, Any]) -> None:
        request_id = str(raw_id)
        thread_id, turn_id = _ids(params)
        if method in APPROVAL_METHODS:
            kind = APPROVAL_METHODS[method]
            item_id = _get(params, "itemId")
            command = _get(params, "command")
            if isinstance(command, list):
                command = " ".join(str(c) for c in command)
            self._pending[request_id] = (raw_id, method)
            await self._emit("approval.requested", thread_id, turn_id, {
                "request_id": request_id,
                "approval_kind": kind,
                "command": command if kind == "command" else None,
                "cwd": _get(params, "cwd"),
                "diff": self._file_diffs.get(item_id) if kind == "file_change" and item_id else None,
                "reason": _get(params, "reason"),
                "tool_name": None,
                "input": None,
                "item_id": item_id,
            })
        elif method == QUESTION_METHOD:
            self._pending[request_id] = (raw_id, method)
            questions = []
            for q in _get(params, "questions") or []:
                if not isinstance(q, dict):
                    continue
                options = [
                    {"label": o.get("label"), "description": o.get("description")}
                    for o in (q.get("options") or []) if isinstance(o, dict)
                ]
                questions.append({"id": q.get("id"), "header": q.get("header"), "question": q.get("question"),
                                  "options": options})
            await self._emit("question.requested", thread_id, turn_id,
                             {"request_id": request_id, "questions": questions})
        else:
            logger.warning("codex: unsupported server request %s (id %s); answering -32601", method, raw_id)
            await self.rpc.respond_error(raw_id, METHOD_NOT_FOUND, "unsupported by overseer")

    async def _on_notification(self, method: str, params: dict[str, Any]) -> None:
        handler = _NOTIFICATIONS.get(method)
        if handler is not None:
            await handler(self, params)
            return
        self.ignored_notifications[method] = self.ignored_notifications.get(method, 0) + 1
        if method not in NOISE:
            logger.debug("codex: ignored notification %s", method)
        else:
            logger.debug("codex: %s %.300s", method, params)

    async def _on_malformed(self, line_prefix: str, reason: str) -> None:
        await self._emit("protocol.malformed", payload={"line_prefix": line_prefix, "reason": reason})

    async def _on_closed(self, exit_: ProcessExit) -> None:
        dropped = len(self._pending)
        self._pending.clear()
        if dropped:
            logger.info("codex: process exited with %d unanswered server requests (dropped)", dropped)
        if not self._stopping:
            tail = self._proc.stderr_tail(10) if self._proc else ""
            logger.warning("codex app-server (pid %s) exited unexpectedly: %s%s", self.pid, exit_.describe(),
                           f"; stderr tail:\n{tail}" if tail else "")
        for turn_id, thread_id in list(self._active_turns.items()):
            await self._emit("turn.completed", thread_id, turn_id, {
                "status": "interrupted" if self._stopping else "failed",
                "error": "agent stopped" if self._stopping else f"agent process exited ({exit_.describe()})",
                "final_message": self._final_text.pop(turn_id, None),
                "duration_ms": None,
            })
        self._active_turns.clear()
        await self._emit("agent.exited", payload={
            "returncode": exit_.returncode, "signal": exit_.signal, "expected": self._stopping})

    # ---- notification handlers

    async def _n_thread_started(self, params: dict[str, Any]) -> None:
        thread_id = _get(_get(params, "thread") or {}, "id") or _get(params, "threadId")
        if isinstance(thread_id, str):
            await self._announce(thread_id, resumed=thread_id in self._resuming)

    async def _n_turn_started(self, params: dict[str, Any]) -> None:
        thread_id, turn_id = _ids(params)
        turn = _get(params, "turn") or {}
        turn_id = _get(turn, "id") or turn_id
        prompt = self._prompts.pop(thread_id, None) if thread_id else None
        if isinstance(turn_id, str) and turn_id not in self._completed_turns:
            self._active_turns[turn_id] = thread_id
        await self._emit("turn.started", thread_id, turn_id, {"prompt": prompt})

    async def _n_turn_completed(self, params: dict[str, Any]) -> None:
        thread_id, turn_id = _ids(params)
        turn = _get(params, "turn") or {}
        turn_id = _get(turn, "id") or turn_id
        final = None
        for item in _get(turn, "items") or []:
            if isinstance(item, dict) and item.get("type") == "agentMessage" and item.get("text"):
                final = item["text"]
        gathered = self._final_text.pop(turn_id, None) if turn_id else None
        if isinstance(turn_id, str):
            self._active_turns.pop(turn_id, None)
            self._completed_turns[turn_id] = None
            if len(self._completed_turns) > 256:
                del self._completed_turns[next(iter(self._completed_turns))]
        error = _get(turn, "error")
        if isinstance(error, dict):
            error = error.get("message") or str(error)
        await self._emit("turn.completed", thread_id, turn_id, {
            "status": _get(turn, "status") or "completed",
            "error": error,
            "final_message": final or gathered,
            "duration_ms": _get(turn, "durationMs"),
        })

    async def _n_item(self, params: dict[str, Any], *, completed: bool) -> None:
        thread_id, turn_id = _ids(params)
        item = _get(params, "item") or {}
        codex_type = str(item.get("type") or "")
        item_id = item.get("id")
        kind = ITEM_TYPES.get(codex_type, "other")
        payload: dict[str, Any] = {"item_id": item_id, "item_type": kind, "codex_type": codex_type}
        if kind == "command":
            payload["command"] = _get(item, "command")
        elif kind == "file_change":
            changes = [_file_change(c) for c in _get(item, "changes") or [] if isinstance(c, dict)]
            payload["changes"] = changes
            if item_id:
                self._file_diffs[item_id] = "\n".join(str(c["diff"]) for c in changes if c.get("diff"))
        if completed:
            payload["status"] = _get(item, "status") or "completed"
            if kind == "command":
                payload["exit_code"] = _get(item, "exitCode")
                output = _get(item, "aggregatedOutput")
                payload["output"] = output[-OUTPUT_LIMIT_CHARS:] if isinstance(output, str) else output
            elif kind == "message":
                payload["text"] = item.get("text")
                if turn_id and item.get("text"):
                    self._final_text[turn_id] = item["text"]
            elif kind == "file_change" and item_id:
                self._file_diffs.pop(item_id, None)
        await self._emit("item.completed" if completed else "item.started", thread_id, turn_id, payload)

    async def _n_item_started(self, params: dict[str, Any]) -> None:
        await self._n_item(params, completed=False)

    async def _n_item_completed(self, params: dict[str, Any]) -> None:
        await self._n_item(params, completed=True)

    async def _n_message_delta(self, params: dict[str, Any]) -> None:
        # the bulk of a stream (a third of the lines): _get inlined
        thread_id, turn_id = _ids(params)
        await self._emit("message.delta", thread_id, turn_id,
                         {"item_id": params.get("itemId") or params.get("item_id"), "delta": params.get("delta") or ""})

    async def _n_output_delta(self, params: dict[str, Any]) -> None:
        thread_id, turn_id = _ids(params)
        await self._emit("command.output_delta", thread_id, turn_id,
                         {"item_id": _get(params, "itemId"), "delta": _get(params, "delta") or ""})

    async def _n_plan(self, params: dict[str, Any]) -> None:
        thread_id, turn_id = _ids(params)
        steps = [{"step": s.get("step"), "status": s.get("status")}
                 for s in _get(params, "plan") or [] if isinstance(s, dict)]
        await self._emit("plan.updated", thread_id, turn_id,
                         {"steps": steps, "explanation": _get(params, "explanation")})

    async def _n_tokens(self, params: dict[str, Any]) -> None:
        thread_id, turn_id = _ids(params)
        usage = _get(params, "tokenUsage") or {}
        total, last = _get(usage, "total") or {}, _get(usage, "last") or {}
        await self._emit("token_usage", thread_id, turn_id, {
            **_token_counts(total),
            "scope": "thread",
            "last": _token_counts(last),
            "model_context_window": _get(usage, "modelContextWindow"),
        })

    async def _n_status(self, params: dict[str, Any]) -> None:
        thread_id, turn_id = _ids(params)
        status = _get(params, "status")
        if isinstance(status, dict):
            payload = {"status": status.get("type"), "flags": _get(status, "activeFlags") or []}
        else:
            payload = {"status": status, "flags": []}
        await self._emit("status", thread_id, turn_id, payload)

    async def _n_error(self, params: dict[str, Any]) -> None:
        thread_id, turn_id = _ids(params)
        error = _get(params, "error")
        message = error.get("message") if isinstance(error, dict) else error
        details = _get(error, "additionalDetails") if isinstance(error, dict) else None
        await self._emit("error", thread_id, turn_id, {
            "message": str(message or "unknown error"),
            "will_retry": bool(_get(params, "willRetry")),
            "details": details,
        })

    async def _n_resolved(self, params: dict[str, Any]) -> None:
        thread_id, _ = _ids(params)
        raw = _get(params, "requestId")
        request_id = str(raw)
        self._pending.pop(request_id, None)
        await self._emit("approval.resolved", thread_id, None, {"request_id": request_id})

    # ------------------------------------------------------------------ helpers

    async def _announce(self, thread_id: str, *, resumed: bool) -> None:
        if thread_id in self._announced:
            return
        self._announced.add(thread_id)
        self._resuming.discard(thread_id)
        await self._emit("thread.started", thread_id, None, {"resumed": resumed})

    async def _emit(self, type_: str, thread_id: str | None = None, turn_id: str | None = None,
                    payload: dict[str, Any] | None = None) -> None:
        try:
            pending = self._sink(AgentEvent(type_, thread_id, turn_id, payload or {}))  # positional: cheaper
            if pending is not None:
                await pending
        except Exception:
            logger.exception("codex: event sink failed for %s", type_)

    def _child_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "CODEX_HOME"}
        env["CODEX_HOME"] = self.config.home
        if self.config.model_base_url:
            env[API_KEY_ENV] = "dummy"
        env.update(self.config.extra_env)
        return env


_NOTIFICATIONS = {
    "thread/started": CodexSession._n_thread_started,
    "turn/started": CodexSession._n_turn_started,
    "turn/completed": CodexSession._n_turn_completed,
    "item/started": CodexSession._n_item_started,
    "item/completed": CodexSession._n_item_completed,
    "item/agentMessage/delta": CodexSession._n_message_delta,
    "item/commandExecution/outputDelta": CodexSession._n_output_delta,
    "turn/plan/updated": CodexSession._n_plan,
    "thread/tokenUsage/updated": CodexSession._n_tokens,
    "thread/status/changed": CodexSession._n_status,
    "error": CodexSession._n_error,
    "serverRequest/resolved": CodexSession._n_resolved,
}


async def check_version(binary: str) -> str:
    """Run ``<binary> --version`` once; returns the version (``"0.169.0"`` from ``codex-cli 0.169.0``).

    Raises:
        AgentBinaryError: missing, not executable, exits non-zero, or does not answer in 15 s.
    """
    def fail(why: str) -> AgentBinaryError:
        return AgentBinaryError(f"codex binary {binary!r} is not usable: {why}; set {BINARY_SETTING} "
                                "to a working codex (e.g. scripts/install-agents.sh)", setting=BINARY_SETTING)

    try:
        proc = await asyncio.create_subprocess_exec(
            binary, "--version", stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, start_new_session=True)
    except OSError as exc:
        raise fail(exc.strerror or str(exc)) from exc
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=VERSION_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise fail(f"`--version` did not finish in {VERSION_TIMEOUT_S:.0f}s") from None
    text = out.decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        detail = (err.decode("utf-8", "replace").strip() or text)[-300:]
        raise fail(f"`--version` exited with {proc.returncode}: {detail}")
    match = re.search(r"\d+\.\d+\.\d+\S*", text)
    if match:
        require_supported_version("codex", match.group(0), binary=binary, setting=BINARY_SETTING)
    return match.group(0) if match else text.splitlines()[0] if text else "unknown"


def _file_change(change: dict[str, Any]) -> dict[str, Any]:
    """``{path, kind: {type: "add"|...} | str, diff}`` -> ``{"path", "kind": "add"|..., "diff"}``."""
    kind = change.get("kind")
    return {"path": change.get("path"), "kind": kind.get("type") if isinstance(kind, dict) else kind,
            "diff": change.get("diff")}


def _text_input(prompt: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": prompt, "text_elements": []}]


_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_SNAKE: dict[str, str] = {}
"""camelCase field name -> its snake_case spelling (computed once per name: a regex per lookup was a
visible part of the ingest's bytecodes, ``benchmarks/ingest_bytecodes.py``)."""
_MISSING = object()


def _get(obj: Any, camel: str) -> Any:
    """``obj[camel]``, else ``obj[snake_case(camel)]``, else None (also None for non-dicts)."""
    if not isinstance(obj, dict):
        return None
    value = obj.get(camel, _MISSING)
    if value is not _MISSING:
        return value
    snake = _SNAKE.get(camel)
    if snake is None:
        snake = _SNAKE[camel] = _CAMEL.sub("_", camel).lower()
    return obj.get(snake)


def _ids(params: dict[str, Any]) -> tuple[str | None, str | None]:
    """``(threadId, turnId)`` of a notification's params (each None unless a non-empty string); ``_get``
    inlined: it runs for every notification."""
    thread_id = params.get("threadId") or params.get("thread_id")
    turn_id = params.get("turnId") or params.get("turn_id")
    return (thread_id if type(thread_id) is str else None, turn_id if type(turn_id) is str else None)


def _token_counts(b: Any) -> dict[str, int]:
    def n(key: str) -> int:
        v = _get(b, key)
        return int(v) if isinstance(v, int | float) else 0

    return {
        "input_tokens": n("inputTokens"),
        "output_tokens": n("outputTokens"),
        "total_tokens": n("totalTokens"),
        "cached_input_tokens": n("cachedInputTokens"),
        "reasoning_output_tokens": n("reasoningOutputTokens"),
    }


def _toml_str(value: str) -> str:
    """A TOML basic string (what ``-c key=value`` parses the value as)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


__all__ = ["ACCESS_MODES", "CodexSession", "RpcError", "check_version", "codex_overrides"]
