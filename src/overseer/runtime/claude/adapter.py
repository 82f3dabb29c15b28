"""``ClaudeSession``: the :class:`~overseer.runtime.agent.AgentSession` for Claude Code's headless mode.

Protocol source: ``/work/shared/reference/agent-protocols.md`` ("Claude Code headless stream-json"),
re-checked against the real ``claude`` 2.1.197 binary on this machine (facts marked *verified* below).
One JSON object per line on stdin/stdout; process handling is :class:`~overseer.runtime.process.AgentProcess`.

Command (run in ``config.cwd``)::

    claude -p --input-format stream-json --output-format stream-json --verbose
           --include-partial-messages --replay-user-messages --permission-prompt-tool stdio
           --permission-mode <mode> [--model M] (--session-id UUID | --resume UUID)
           [--disallowedTools Write Edit MultiEdit NotebookEdit]      # read-only only

Thread model: one process = one thread = one Claude session. The session id is only reported in
``system/init``, which the CLI prints after the *first user message* (*verified*: nothing arrives
before it), so the adapter makes the id itself (uuid4) and passes ``--session-id``; the thread id is
known as soon as the process is up. Resuming spawns a new process with ``--resume <id>``; the id stays
the same (*verified*) and the first model request carries the earlier history. An unknown id makes the
CLI print ``No conversation found with session ID`` and exit 1 (*verified*), which the handshake turns
into an :class:`AgentError`.

Lifecycle::

    session = ClaudeSession(config, sink)     # sink: async (AgentEvent) -> None, called in wire order
    await session.start()                     # --version check, spawn, initialize handshake: agent.ready
    thread_id = await session.start_thread()  # the fresh session; or start_thread(resume_thread_id=...)
    turn_id = await session.start_turn(thread_id, "fix the tests")
    await session.stop()                      # close stdin (after an interrupt when a turn runs): agent.exited

The handshake is the ``initialize`` control request; its response (~0.9 s after spawn) proves the CLI
is up. ``start_thread(resume_thread_id=X)`` replaces the process (the old one exits silently: no
``agent.exited``) and emits ``agent.ready`` again with the new pid. ``start_turn`` on a thread id that
is not the live session resumes it first.

Environment: the caller's environment, plus ``DISABLE_TELEMETRY``, ``DISABLE_ERROR_REPORTING``,
``DISABLE_AUTOUPDATER`` = 1 (unless set). With ``config.model_base_url`` (scripted model, demo): also
``HOME=config.home`` (created; isolates ``~/.claude`` and ``~/.claude.json``, where sessions live in
``.claude/projects/<cwd-slug>/<session>.jsonl``), ``ANTHROPIC_BASE_URL``, ``ANTHROPIC_API_KEY=dummy``,
``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`` and ``CLAUDE_CODE_MAX_RETRIES=0`` (the CLI retries a 5xx
up to 10 times with backoff up to ~20 s otherwise, *verified*); the user's own Anthropic credentials
(``ANTHROPIC_AUTH_TOKEN``, ``CLAUDE_CODE_OAUTH_TOKEN``) are removed. Without ``model_base_url`` the
user's real ``HOME`` is kept so their own Claude login works; ``config.home`` is then unused (sessions
live in the user's ``~/.claude``). ``config.extra_env`` is applied last and wins.

Access modes (``config.access_mode``):

=============  ===================  ===============================================================
access_mode    --permission-mode    effect
=============  ===================  ===============================================================
full-access    bypassPermissions    nothing is asked. As root the CLI refuses this unless
                                    ``IS_SANDBOX=1``, which the adapter sets when running as root.
default        default              every tool use Claude does not auto-allow (it auto-allows reads
                                    and read-only shell commands such as ``echo a``) arrives as
                                    ``can_use_tool`` and becomes ``approval.requested``.
read-only      default              the file-editing tools are removed (``--disallowedTools``) and
                                    every ``can_use_tool`` except AskUserQuestion is denied by the
                                    adapter at once ("read-only worker"), so nothing that writes runs.
                                    (``plan`` mode was checked: it still asks for ``echo > f``, so it
                                    is no stronger and it changes the model's behaviour.)
=============  ===================  ===============================================================

Normalization (CLI line -> ``AgentEvent``):

* ``start_turn`` -> ``turn.started`` (emitted when the user line is written; turn ids are adapter-made
  uuid4 hex). Activity with no turn open (a queued steer that runs after an error) opens one with
  ``prompt: None``.
* ``stream_event`` ``content_block_start/delta/stop`` of a text block -> ``item.started`` (message),
  ``message.delta``, ``item.completed`` (with ``text``); thinking blocks -> a ``reasoning`` item.
* ``assistant`` ``tool_use`` blocks -> ``item.started``: Bash -> ``command`` (``command``), Write/Edit/
  MultiEdit/NotebookEdit -> ``file_change`` (``changes: [{path, kind, diff}]``), others -> ``tool``.
  Assistant text that was not streamed (the CLI's synthetic API-error message) -> a message item.
* ``user`` ``tool_result`` blocks -> ``item.completed`` (status completed/failed, ``output`` cut to 4 KB).
* ``control_request`` ``can_use_tool`` -> ``approval.requested`` (``request_id`` = the CLI's request
  id), or ``question.requested`` for ``AskUserQuestion``; ``control_cancel_request`` ->
  ``approval.resolved``. Any other CLI control request gets an error ``control_response`` at once.
* ``system/api_retry`` -> ``error`` (``will_retry: true``); ``system/status`` -> ``status``.
* ``result`` -> ``token_usage`` (``scope: "turn"``) then ``turn.completed``: ``completed`` for success,
  ``interrupted`` after ``interrupt_turn`` / an approval answered ``cancel`` / ``stop``, ``failed`` when
  ``is_error`` (e.g. an API 500: ``subtype: success, is_error: true, api_error_status: 500``, *verified*)
  with the result text as ``error``.
* process exit -> ``turn.completed`` (failed, "agent process exited ...") for a running turn, then
  ``agent.exited`` (``expected`` only after :meth:`stop`). Unparseable lines -> ``protocol.malformed``.

Steering (*verified*): a user message written while a turn runs is queued by the CLI; it is either
folded into the running turn (written while a tool runs: one ``result``) or run right after it (a
second ``result``). ``--replay-user-messages`` echoes each consumed user message (``isReplay: true``)
before the ``result`` of the run that consumed it, so the adapter keeps the turn open across a
successful ``result`` while a written message has not been echoed yet.

Interrupt (*verified*): control request ``interrupt`` -> ``control_response`` success, then a user
message ``[Request interrupted by user]``, then ``result`` ``error_during_execution``; the next user
message works normally. AskUserQuestion (*verified*): arrives as ``can_use_tool`` with
``input.questions[{question, header, options[{label, description}], multiSelect}]``; the answer is
``allow`` with ``updatedInput = {...input, "answers": {<question text>: <answer>}}``. Question ids in
``question.requested`` are therefore the question texts.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from overseer import jsoncodec
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

logger = logging.getLogger(__name__)
_CURRENT: Any = object()
"""``_emit``'s default ``thread``: the live session's id."""

BINARY_SETTING = "OVERSEER_CLAUDE_BIN"
VERSION_TIMEOUT_S = 15.0
OUTPUT_LIMIT_BYTES = 4096  # item.completed "output" keeps this many bytes (the tail)
DIFF_LIMIT_CHARS = 16_000
DENY_MESSAGE = "denied by overseer"
READ_ONLY_DENY_MESSAGE = "denied by overseer: this worker is read-only"
QUESTION_TOOL = "AskUserQuestion"
FILE_TOOLS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit"})

PERMISSION_MODES: dict[str, str] = {
    "full-access": "bypassPermissions",
    "default": "default",
    "read-only": "default",
}
"""access_mode -> ``--permission-mode`` (see the module docstring for what each one does)."""

QUIET_ENV = {"DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1", "DISABLE_AUTOUPDATER": "1"}
SCRIPTED_ENV = {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "CLAUDE_CODE_MAX_RETRIES": "0"}
CREDENTIAL_ENV = ("ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")


def claude_env(config: AgentConfig, base: dict[str, str] | None = None) -> dict[str, str]:
    """The complete environment for the CLI (see the module docstring); creates ``config.home``
    when ``config.model_base_url`` is set."""
    env = dict(os.environ if base is None else base)
    for key, value in QUIET_ENV.items():
        env.setdefault(key, value)
    if config.model_base_url:
        os.makedirs(config.home, exist_ok=True)
        env["HOME"] = config.home
        env["ANTHROPIC_BASE_URL"] = config.model_base_url.rstrip("/")
        env["ANTHROPIC_API_KEY"] = "dummy"
        for key in CREDENTIAL_ENV:
            env.pop(key, None)
        for key, value in SCRIPTED_ENV.items():
            env.setdefault(key, value)
    if config.access_mode == "full-access" and hasattr(os, "geteuid") and os.geteuid() == 0:
        env["IS_SANDBOX"] = "1"  # the CLI wants exactly "1" (a machine may have IS_SANDBOX=yes)
    env.update(config.extra_env)
    return env


def claude_argv(config: AgentConfig, *, session_id: str | None = None, resume_id: str | None = None,
                model: str | None = None) -> list[str]:
    """The CLI argv for one process: a new session ``session_id`` or a resumed ``resume_id``."""
    argv = [
        config.binary, "-p",
        "--input-format", "stream-json", "--output-format", "stream-json", "--verbose",
        "--include-partial-messages", "--replay-user-messages",
        "--permission-prompt-tool", "stdio",
        "--permission-mode", PERMISSION_MODES.get(config.access_mode, "default"),
    ]
    if model:
        argv += ["--model", model]
    if config.access_mode == "read-only":
        argv += ["--disallowedTools", *sorted(FILE_TOOLS)]
    if config.mcp_server:
        from overseer.jobs.mcp_server import claude_mcp_config

        argv += ["--mcp-config", claude_mcp_config(config.mcp_server)]
    if resume_id:
        argv += ["--resume", resume_id]
    elif session_id:
        argv += ["--session-id", session_id]
    return argv


@dataclass(slots=True)
class _Pending:
    """A ``can_use_tool`` request waiting for Overseer's answer."""

    request_id: str
    turn_id: str | None
    tool_name: str
    input: dict[str, Any]
    suggestions: list[Any] | None
    question_ids: list[str] = field(default_factory=list)  # AskUserQuestion only

    @property
    def is_question(self) -> bool:
        return self.tool_name == QUESTION_TOOL


@dataclass(slots=True)
class _Block:
    """A streamed text/thinking content block being assembled."""

    item_id: str
    item_type: str  # message | reasoning
    parts: list[str] = field(default_factory=list)


class ClaudeSession:
    """A live ``claude -p`` stream-json process hosting one session (see the module docstring).

    All public methods raise :class:`AgentError`; :meth:`start` raises :class:`AgentBinaryError`
    (``setting="OVERSEER_CLAUDE_BIN"``) when the binary is missing or ``--version`` fails.
    """

    kind: AgentKind = "claude_code"

    def __init__(self, config: AgentConfig, sink: EventSink) -> None:
        self.config = config
        self.version: str | None = None
        self._sink = sink
        self._proc: AgentProcess | None = None
        self._gen = 0  # generation of self._proc; lines from older processes are ignored
        self._ready_gen: int | None = None  # generation whose exit is reported (handshake done)
        self._exit_task: asyncio.Task[None] | None = None
        self._session_id: str | None = None
        self._fresh = False  # the live process holds a new session no start_thread has claimed
        self._model = config.model
        self._lock = asyncio.Lock()  # serializes spawn / start_thread / start_turn
        self._stop_lock = asyncio.Lock()
        self._stopping = False
        self._ctl: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._pending: dict[str, _Pending] = {}
        self._items: dict[str, dict[str, Any]] = {}  # tool_use id -> item.started payload
        self._blocks: dict[int, _Block] = {}
        self._stream_msg_id: str | None = None
        # the running turn
        self._turn_id: str | None = None
        self._turn_started = 0.0
        self._unconsumed = 0  # user lines written in this turn and not echoed back yet
        self._interrupting = False
        self.ignored_lines: dict[str, int] = {}

    # ------------------------------------------------------------------ state

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.alive and not self._stopping

    @property
    def thread_id(self) -> str | None:
        """The Claude session id of the live process (None before :meth:`start`)."""
        return self._session_id

    @property
    def turn_id(self) -> str | None:
        """The running turn, or None."""
        return self._turn_id

    @property
    def pending_request_ids(self) -> list[str]:
        """``can_use_tool`` requests (approvals, questions) not answered yet."""
        return list(self._pending)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Check the binary (``--version``), spawn a process for a new session and complete the
        ``initialize`` handshake; emits ``agent.ready`` ``{pid, version}``.

        Raises:
            AgentBinaryError: the binary is missing, not executable, or ``--version`` fails.
            AgentError: the CLI did not answer ``initialize`` within ``config.request_timeout_s``
                or exited first (the message carries its stderr tail).
        """
        if self._proc is not None:
            raise AgentError("claude session already started")
        self.version = await self._check_version()
        async with self._lock:
            await self._spawn(session_id=str(uuid.uuid4()))

    async def start_thread(self, *, resume_thread_id: str | None = None) -> str:
        """Claim the fresh session, or respawn for a new one, or respawn with ``--resume``.

        Returns the session id and emits ``thread.started`` ``{"resumed": bool}``. Raises AgentError
        while a turn runs, after :meth:`stop`, or for a resume id that is not a UUID; ThreadNotFound
        when the CLI has no saved conversation for it ("No conversation found with session ID").
        """
        async with self._lock:
            return await self._start_thread(resume_thread_id)

    async def _start_thread(self, resume_thread_id: str | None) -> str:
        self._check_usable()
        if resume_thread_id is None:
            if self._fresh and self.alive:
                self._fresh = False
            else:
                self._require_idle("start a new thread")
                await self._respawn(session_id=str(uuid.uuid4()))
                self._fresh = False
            await self._emit("thread.started", {"resumed": False})
            assert self._session_id is not None
            return self._session_id
        try:
            resume_thread_id = str(uuid.UUID(resume_thread_id))
        except ValueError as exc:
            raise AgentError(f"not a Claude session id (UUID expected): {resume_thread_id!r}") from exc
        if resume_thread_id == self._session_id and self.alive and not self._fresh:
            return resume_thread_id  # already the live session
        self._require_idle("resume a thread")
        await self._respawn(resume_id=resume_thread_id)
        self._fresh = False
        await self._emit("thread.started", {"resumed": True})
        return resume_thread_id

    async def start_turn(
        self, thread_id: str, prompt: str, *, model: str | None = None, effort: str | None = None
    ) -> str:
        """Write ``prompt`` as a user message; returns the adapter-made turn id (uuid4 hex) at once.

        ``turn.started`` is emitted before the line is written. A ``thread_id`` other than the live
        session is resumed first. ``model`` switches the model (``set_model`` control request);
        ``effort`` is ignored (the CLI only takes ``--effort`` at spawn). Raises AgentError while
        another turn runs (turns are serial) or when the process is gone.
        """
        async with self._lock:
            self._check_usable()
            if self._turn_id is not None:
                raise AgentError(f"a turn is already running ({self._turn_id}); steer or interrupt it")
            if thread_id != self._session_id or self._fresh:
                if thread_id == self._session_id:
                    self._fresh = False
                    await self._emit("thread.started", {"resumed": False})
                else:
                    await self._start_thread(thread_id)
            if not self.alive:
                raise AgentError(self._gone("cannot start a turn"))
            if model and model != self._model:
                await self._control({"subtype": "set_model", "model": model})
                self._model = model
            turn_id = uuid.uuid4().hex
            await self._open_turn(turn_id, prompt)
            try:
                await self._write_user(prompt)
            except AgentError as exc:
                await self._complete_turn("failed", error=str(exc))
                raise
            return turn_id

    async def steer_turn(self, thread_id: str, turn_id: str, prompt: str) -> None:
        """Write another user message into the running turn (the CLI queues it; see the module
        docstring). Raises AgentError when ``turn_id`` is not the running turn."""
        self._require_turn(turn_id)
        await self._write_user(prompt)

    async def interrupt_turn(self, thread_id: str, turn_id: str) -> None:
        """Send the ``interrupt`` control request; ``turn.completed`` ``interrupted`` follows.
        Raises AgentError when ``turn_id`` is not the running turn or the CLI refuses."""
        self._require_turn(turn_id)
        self._interrupting = True
        await self._control({"subtype": "interrupt"})

    async def answer_approval(self, request_id: str, decision: ApprovalDecision) -> None:
        """Answer a pending ``can_use_tool`` (control_response).

        ``accept``: allow with ``updatedInput`` = the original input. ``accept_for_session``: the same
        plus ``updatedPermissions`` = the request's ``permission_suggestions`` with their destination
        set to ``session`` (so nothing is written to the workspace's settings files). ``decline``:
        deny with "denied by overseer" (the model sees an error tool result; the turn goes on).
        ``cancel``: deny with ``interrupt: true`` (the turn ends ``interrupted``). For a question,
        only decline/cancel are accepted. Raises AgentError for an unknown request id.
        """
        pending = self._pending.get(request_id)
        if pending is None:
            raise AgentError(f"no pending Claude request {request_id!r}")
        if decision in ("accept", "accept_for_session"):
            if pending.is_question:
                raise AgentError(f"{request_id} is a question; answer it with answer_question")
            response: dict[str, Any] = {"behavior": "allow", "updatedInput": pending.input}
            if decision == "accept_for_session" and pending.suggestions:
                response["updatedPermissions"] = [
                    {**s, "destination": "session"} if isinstance(s, dict) else s for s in pending.suggestions
                ]
        elif decision in ("decline", "cancel"):
            response = {"behavior": "deny", "message": DENY_MESSAGE}
            if decision == "cancel":
                response["interrupt"] = True
                self._interrupting = True
        else:
            raise AgentError(f"unknown approval decision {decision!r}")
        await self._respond(request_id, response)
        self._pending.pop(request_id, None)

    async def answer_question(self, request_id: str, answers: dict[str, Any]) -> None:
        """Answer a pending ``question.requested`` (AskUserQuestion).

        ``answers`` maps question id (= the question text; the question's index as a string and its
        header are accepted too) to the answer: a string, or a list of strings for multi-select
        (joined with ", "). Raises AgentError for an unknown request id or when no answer matches.
        """
        pending = self._pending.get(request_id)
        if pending is None or not pending.is_question:
            raise AgentError(f"no pending Claude question {request_id!r}")
        questions = pending.input.get("questions") or []
        mapped: dict[str, str] = {}
        for index, q in enumerate(questions):
            if not isinstance(q, dict):
                continue
            text = str(q.get("question") or "")
            for key in (text, str(index), q.get("header")):
                if key is not None and key in answers:
                    value = answers[key]
                    mapped[text] = ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
                    break
        if not mapped:
            raise AgentError(f"no answer matches the questions of {request_id}: {sorted(answers)}")
        await self._respond(request_id, {"behavior": "allow", "updatedInput": {**pending.input, "answers": mapped}})
        self._pending.pop(request_id, None)

    async def stop(self, *, grace_s: float = 5.0) -> None:
        """Stop: interrupt a running turn, close stdin, wait up to ``grace_s`` seconds for the exit,
        then SIGTERM/SIGKILL the process group. Emits ``agent.exited`` (expected) before returning.
        Idempotent."""
        async with self._stop_lock:
            if self._stopping:
                if self._exit_task is not None:
                    await asyncio.shield(self._exit_task)
                return
            self._stopping = True
            proc = self._proc
            if proc is None:
                return
            if proc.alive and self._turn_id is not None:
                self._interrupting = True
                with contextlib.suppress(AgentError, TimeoutError):
                    await self._control({"subtype": "interrupt"}, within_s=min(2.0, grace_s))
            await proc.close_stdin()
            try:
                await asyncio.wait_for(proc.wait_exit(), timeout=grace_s)
            except TimeoutError:
                logger.warning("claude pid=%s did not exit %.1fs after stdin closed; terminating", proc.pid, grace_s)
            await proc.terminate(grace_s=min(grace_s, 2.0))
            if self._exit_task is not None:
                await asyncio.shield(self._exit_task)

    # ------------------------------------------------------------------ spawn

    async def _check_version(self) -> str | None:
        env = claude_env(self.config)
        try:
            proc = await asyncio.create_subprocess_exec(
                self.config.binary, "--version", stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
            )
        except OSError as exc:
            raise AgentBinaryError(
                f"cannot run claude binary {self.config.binary!r}: {exc.strerror or exc}; "
                f"set {BINARY_SETTING} to the path of a working `claude`", setting=BINARY_SETTING,
            ) from exc
        try:
            out, err = await asyncio.wait_for(proc.communicate(), VERSION_TIMEOUT_S)
        except TimeoutError as exc:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise AgentBinaryError(
                f"`{self.config.binary} --version` did not answer in {VERSION_TIMEOUT_S:.0f}s; "
                f"set {BINARY_SETTING} to a working `claude`", setting=BINARY_SETTING,
            ) from exc
        if proc.returncode != 0:
            raise AgentBinaryError(
                f"`{self.config.binary} --version` failed (exit {proc.returncode}): "
                f"{err.decode(errors='replace').strip()[-500:]}; set {BINARY_SETTING} to a working `claude`",
                setting=BINARY_SETTING,
            )
        match = re.search(r"\d+\.\d+\.\d+\S*", out.decode(errors="replace"))
        if match:
            require_supported_version("claude_code", match.group(0), binary=self.config.binary,
                                      setting=BINARY_SETTING)
        return match.group(0) if match else (out.decode(errors="replace").strip() or None)

    async def _respawn(self, *, session_id: str | None = None, resume_id: str | None = None) -> None:
        old = self._proc
        self._ready_gen = None  # the old process's exit is ours, not news
        if old is not None:
            await old.terminate(grace_s=2.0)
        if self._exit_task is not None:
            with contextlib.suppress(Exception):
                await self._exit_task
        await self._spawn(session_id=session_id, resume_id=resume_id)

    async def _spawn(self, *, session_id: str | None = None, resume_id: str | None = None) -> None:
        self._gen += 1
        gen = self._gen
        self._reset_process_state()
        proc = AgentProcess(
            claude_argv(self.config, session_id=session_id, resume_id=resume_id, model=self._model),
            env=claude_env(self.config), cwd=self.config.cwd,
            on_line=functools.partial(self._on_line, gen),
            on_malformed=functools.partial(self._on_malformed, gen),
            line_limit_bytes=self.config.line_limit_bytes, binary_setting=BINARY_SETTING, name="claude",
        )
        self._proc = proc
        self._session_id = resume_id or session_id
        await proc.start()
        self._exit_task = asyncio.create_task(self._watch_exit(proc, gen), name=f"claude-exit-{proc.pid}")
        try:
            await self._control({"subtype": "initialize", "hooks": None})
        except AgentError as exc:
            await proc.terminate(grace_s=1.0)
            what = f"resume session {resume_id}" if resume_id else "start"
            if resume_id and "No conversation found" in str(exc):
                raise ThreadNotFound(f"claude could not {what}: {exc}", thread_id=resume_id) from exc
            raise AgentError(f"claude could not {what}: {exc}") from exc
        self._ready_gen = gen
        self._fresh = resume_id is None
        logger.info("claude pid=%s ready (session %s%s)", proc.pid, self._session_id, ", resumed" if resume_id else "")
        # A fresh session is no thread until start_thread claims it: its agent.ready names none (a
        # restart's throwaway process, replaced at once by a --resume, used to show up as an idle thread).
        await self._emit("agent.ready", {"pid": proc.pid, "version": self.version}, thread=None if self._fresh else _CURRENT)

    def _reset_process_state(self) -> None:
        for fut in self._ctl.values():
            if not fut.done():
                fut.set_exception(AgentError("claude process replaced"))
        self._ctl.clear()
        self._pending.clear()
        self._items.clear()
        self._blocks.clear()
        self._stream_msg_id = None

    async def _watch_exit(self, proc: AgentProcess, gen: int) -> None:
        exit_ = await proc.wait_exit()
        message = self._gone("exited", proc, exit_)
        for fut in list(self._ctl.values()):
            if not fut.done():
                fut.set_exception(AgentError(message))
        if gen != self._ready_gen:
            logger.debug("claude pid=%s (replaced or never ready) exited: %s", proc.pid, exit_.describe())
            return
        self._ready_gen = None
        logger.log(logging.INFO if self._stopping else logging.WARNING, "claude pid=%s exited: %s", proc.pid,
                   exit_.describe())
        if self._turn_id is not None:
            if self._stopping:
                await self._complete_turn("interrupted", error="agent stopped")
            else:
                await self._complete_turn("failed", error=f"agent process exited ({exit_.describe()})")
        self._pending.clear()
        await self._emit("agent.exited", {"returncode": exit_.returncode, "signal": exit_.signal,
                                          "expected": self._stopping})

    # ------------------------------------------------------------------ writing

    async def _write(self, obj: dict[str, Any]) -> None:
        proc = self._proc
        if proc is None:
            raise AgentError("claude session not started")
        await proc.write_line(json.dumps(obj, ensure_ascii=False))

    async def _write_user(self, text: str) -> None:
        await self._write({"type": "user", "message": {"role": "user", "content": text},
                           "parent_tool_use_id": None, "session_id": self._session_id or ""})
        self._unconsumed += 1

    async def _respond(self, request_id: str, response: dict[str, Any]) -> None:
        await self._write({"type": "control_response",
                           "response": {"subtype": "success", "request_id": request_id, "response": response}})

    async def _control(self, request: dict[str, Any], *, within_s: float | None = None) -> dict[str, Any]:
        """Send a control request and wait for its response; raises AgentError on an error reply, a
        timeout (``config.request_timeout_s``) or the process exiting first."""
        proc = self._proc
        if proc is None:
            raise AgentError("claude session not started")
        request_id = f"overseer-{uuid.uuid4().hex[:12]}"
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._ctl[request_id] = fut
        try:
            await self._write({"type": "control_request", "request_id": request_id, "request": request})
            limit = self.config.request_timeout_s if within_s is None else within_s
            waiters: set[asyncio.Future[Any]] = {fut, proc.exit_future}
            done, _ = await asyncio.wait(waiters, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
            if fut in done:
                return fut.result()
            if proc.exit_future in done:
                raise AgentError(self._gone(f"exited before answering {request['subtype']}", proc))
            raise AgentError(f"claude did not answer {request['subtype']} within {limit:.0f}s")
        finally:
            self._ctl.pop(request_id, None)
            if not fut.done():
                fut.cancel()
            elif not fut.cancelled():
                fut.exception()  # retrieved: no "never retrieved" warning

    # ------------------------------------------------------------------ reading

    async def _on_malformed(self, gen: int, prefix: str, reason: str) -> None:
        if gen == self._gen:
            await self._emit("protocol.malformed", {"line_prefix": prefix[:200], "reason": reason})

    async def _on_line(self, gen: int, line: str) -> None:
        if gen != self._gen or not line.strip():
            return
        try:
            msg = jsoncodec.loads(line)
        except ValueError as exc:
            logger.warning("claude: malformed line (%s): %.120r", exc, line)
            await self._emit("protocol.malformed", {"line_prefix": line[:200], "reason": f"invalid JSON: {exc}"})
            return
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            await self._emit("protocol.malformed", {"line_prefix": line[:200], "reason": "not a typed JSON object"})
            return
        kind = msg["type"]
        handler = {
            "stream_event": self._on_stream_event,
            "assistant": self._on_assistant,
            "user": self._on_user,
            "result": self._on_result,
            "system": self._on_system,
            "control_request": self._on_control_request,
            "control_response": self._on_control_response,
            "control_cancel_request": self._on_control_cancel,
        }.get(kind)
        if handler is None:
            self.ignored_lines[kind] = self.ignored_lines.get(kind, 0) + 1
            logger.debug("claude: ignored %s line", kind)
            return
        await handler(msg)

    async def _on_system(self, msg: dict[str, Any]) -> None:
        subtype = msg.get("subtype")
        if subtype == "init":
            sid = msg.get("session_id")
            if isinstance(sid, str) and sid and sid != self._session_id:
                logger.warning("claude reported session %s, expected %s", sid, self._session_id)
                self._session_id = sid
            if isinstance(msg.get("model"), str):
                logger.debug("claude session %s model %s", sid, msg["model"])
        elif subtype == "status":
            if msg.get("status"):
                await self._emit("status", {"status": str(msg["status"])})
        elif subtype == "api_retry":
            await self._emit("error", {
                "message": f"model API error {msg.get('error_status')} ({msg.get('error')}); "
                           f"retry {msg.get('attempt')}/{msg.get('max_retries')}",
                "will_retry": True,
            })
        else:
            self.ignored_lines[f"system/{subtype}"] = self.ignored_lines.get(f"system/{subtype}", 0) + 1

    async def _on_stream_event(self, msg: dict[str, Any]) -> None:
        event = msg.get("event")
        if not isinstance(event, dict):
            return
        etype = event.get("type")
        if etype == "message_start":
            await self._ensure_turn()
            message = event.get("message") or {}
            self._stream_msg_id = message.get("id")
            self._blocks.clear()
        elif etype == "content_block_start":
            block = event.get("content_block") or {}
            index = event.get("index")
            btype = block.get("type")
            if isinstance(index, int) and btype in ("text", "thinking"):
                await self._open_block(index, "message" if btype == "text" else "reasoning")
                initial = block.get("text") or block.get("thinking")
                if initial:
                    await self._block_delta(index, initial)
        elif etype == "content_block_delta":
            delta = event.get("delta") or {}
            index = event.get("index")
            if not isinstance(index, int):
                return
            if delta.get("type") == "text_delta" and delta.get("text"):
                if index not in self._blocks:
                    await self._open_block(index, "message")
                await self._block_delta(index, str(delta["text"]))
            elif delta.get("type") == "thinking_delta" and delta.get("thinking"):
                if index not in self._blocks:
                    await self._open_block(index, "reasoning")
                await self._block_delta(index, str(delta["thinking"]))
        elif etype == "content_block_stop":
            index = event.get("index")
            block_state = self._blocks.pop(index, None) if isinstance(index, int) else None
            if block_state is not None:
                await self._emit("item.completed", {"item_id": block_state.item_id, "item_type": block_state.item_type,
                                                    "status": "completed", "text": "".join(block_state.parts)})

    async def _open_block(self, index: int, item_type: str) -> None:
        await self._ensure_turn()
        prefix = "msg" if item_type == "message" else "rsn"
        block_state = _Block(item_id=f"{prefix}_{uuid.uuid4().hex[:12]}", item_type=item_type)
        self._blocks[index] = block_state
        await self._emit("item.started", {"item_id": block_state.item_id, "item_type": item_type})

    async def _block_delta(self, index: int, text: str) -> None:
        block_state = self._blocks[index]
        block_state.parts.append(text)
        if block_state.item_type == "message":
            await self._emit("message.delta", {"item_id": block_state.item_id, "delta": text})

    async def _on_assistant(self, msg: dict[str, Any]) -> None:
        message = msg.get("message") or {}
        content = message.get("content")
        if not isinstance(content, list):
            return
        await self._ensure_turn()
        streamed = message.get("id") is not None and message.get("id") == self._stream_msg_id
        for block in content:
            if not isinstance(block, dict):
                continue
            btype = block.get("type")
            if btype == "text" and not streamed and block.get("text"):
                # Not streamed: e.g. the CLI's synthetic "API Error: ..." message.
                item_id = f"msg_{uuid.uuid4().hex[:12]}"
                await self._emit("item.started", {"item_id": item_id, "item_type": "message"})
                await self._emit("item.completed", {"item_id": item_id, "item_type": "message",
                                                    "status": "completed", "text": str(block["text"])})
            elif btype == "tool_use" and isinstance(block.get("id"), str):
                payload = self._tool_item(block["id"], str(block.get("name") or ""), block.get("input") or {})
                self._items[block["id"]] = payload
                await self._emit("item.started", payload)

    def _tool_item(self, item_id: str, name: str, tool_input: dict[str, Any]) -> dict[str, Any]:
        payload: dict[str, Any] = {"item_id": item_id, "tool_name": name}
        if name == "Bash":
            payload["item_type"] = "command"
            payload["command"] = tool_input.get("command")
        elif name in FILE_TOOLS:
            payload["item_type"] = "file_change"
            payload["changes"] = [file_change(name, tool_input, self.config.cwd)]
        else:
            payload["item_type"] = "tool"
            payload["input"] = tool_input
        return payload

    async def _on_user(self, msg: dict[str, Any]) -> None:
        if msg.get("isReplay"):
            self._unconsumed = max(0, self._unconsumed - 1)
            return
        message = msg.get("message") or {}
        content = message.get("content")
        if not isinstance(content, list):
            return
        for block in content:
            if not isinstance(block, dict) or block.get("type") != "tool_result":
                continue
            tool_use_id = str(block.get("tool_use_id") or "")
            base = self._items.pop(tool_use_id, None) or {"item_id": tool_use_id, "item_type": "tool"}
            await self._ensure_turn()
            await self._emit("item.completed", {
                **base,
                "status": "failed" if block.get("is_error") else "completed",
                "output": truncate_output(_text_of(block.get("content"))),
            })

    async def _on_result(self, msg: dict[str, Any]) -> None:
        if self._turn_id is None:  # e.g. the error result of a failed --resume, before any turn
            logger.debug("claude result with no turn running: %s", msg.get("subtype"))
            return
        usage = msg.get("usage")
        if isinstance(usage, dict):
            input_tokens = sum(int(usage.get(k) or 0) for k in
                               ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
            output_tokens = int(usage.get("output_tokens") or 0)
            await self._emit("token_usage", {"input_tokens": input_tokens, "output_tokens": output_tokens,
                                             "total_tokens": input_tokens + output_tokens, "scope": "turn"})
        subtype = str(msg.get("subtype") or "")
        text = msg.get("result") if isinstance(msg.get("result"), str) else None
        terminal = str(msg.get("terminal_reason") or "")
        if self._interrupting or terminal.startswith("aborted"):
            await self._complete_turn("interrupted", final_message=text)
        elif msg.get("is_error") or subtype.startswith("error"):
            errors = msg.get("errors")
            error = text or ("; ".join(map(str, errors)) if isinstance(errors, list) and errors else None)
            await self._complete_turn("failed", error=error or subtype or "turn failed")
        elif self._unconsumed > 0:
            logger.debug("claude result while %d steer message(s) are queued; turn %s goes on",
                         self._unconsumed, self._turn_id)
        else:
            await self._complete_turn("completed", final_message=text)

    async def _on_control_request(self, msg: dict[str, Any]) -> None:
        request_id = str(msg.get("request_id") or "")
        request = _dict(msg.get("request"))
        subtype = request.get("subtype")
        if subtype != "can_use_tool" or not request_id:
            logger.warning("claude sent an unsupported control request %r; answering with an error", subtype)
            with contextlib.suppress(AgentError):
                await self._write({"type": "control_response", "response": {
                    "subtype": "error", "request_id": request_id, "error": f"unsupported by overseer: {subtype}"}})
            return
        await self._ensure_turn()
        tool_name = str(request.get("tool_name") or "")
        tool_input = _dict(request.get("input"))
        suggestions = request.get("permission_suggestions")
        pending = _Pending(request_id, self._turn_id, tool_name, tool_input,
                           suggestions if isinstance(suggestions, list) else None)
        if tool_name == QUESTION_TOOL:
            questions = question_list(tool_input)
            pending.question_ids = [q["id"] for q in questions]
            self._pending[request_id] = pending
            await self._emit("question.requested", {"request_id": request_id, "questions": questions})
            return
        if self.config.access_mode == "read-only":
            logger.info("claude read-only worker: denied %s %s", tool_name, tool_input.get("command", ""))
            with contextlib.suppress(AgentError):
                await self._respond(request_id, {"behavior": "deny", "message": READ_ONLY_DENY_MESSAGE})
            return
        self._pending[request_id] = pending
        await self._emit("approval.requested", approval_payload(request_id, request, self.config.cwd))

    async def _on_control_response(self, msg: dict[str, Any]) -> None:
        response = _dict(msg.get("response"))
        fut = self._ctl.get(str(response.get("request_id") or ""))
        if fut is None:
            return  # e.g. the CLI echoing our can_use_tool answer back
        if fut.done():
            return
        if response.get("subtype") == "error":
            fut.set_exception(AgentError(f"claude refused: {response.get('error')}"))
        else:
            fut.set_result(response.get("response") or {})

    async def _on_control_cancel(self, msg: dict[str, Any]) -> None:
        request_id = str(msg.get("request_id") or "")
        if self._pending.pop(request_id, None) is not None:
            await self._emit("approval.resolved", {"request_id": request_id})

    # ------------------------------------------------------------------ turns

    async def _open_turn(self, turn_id: str, prompt: str | None) -> None:
        self._turn_id = turn_id
        self._turn_started = time.monotonic()
        self._unconsumed = 0
        self._interrupting = False
        await self._emit("turn.started", {"prompt": prompt})

    async def _ensure_turn(self) -> None:
        """Open a turn for activity that arrives with none running (a queued steer run after an
        error result); nothing while stopping."""
        if self._turn_id is None and not self._stopping:
            await self._open_turn(uuid.uuid4().hex, None)

    async def _complete_turn(self, status: str, *, error: str | None = None,
                             final_message: str | None = None) -> None:
        turn_id = self._turn_id
        if turn_id is None:
            return
        for request_id in [r for r, p in self._pending.items() if p.turn_id == turn_id]:
            self._pending.pop(request_id, None)
            await self._emit("approval.resolved", {"request_id": request_id}, turn_id=turn_id)
        for block_state in list(self._blocks.values()):
            await self._emit("item.completed", {"item_id": block_state.item_id, "item_type": block_state.item_type,
                                                "status": "interrupted" if status != "completed" else "completed",
                                                "text": "".join(block_state.parts)}, turn_id=turn_id)
        self._blocks.clear()
        duration_ms = int((time.monotonic() - self._turn_started) * 1000)
        self._turn_id = None
        self._unconsumed = 0
        self._interrupting = False
        await self._emit("turn.completed", {"status": status, "error": error, "final_message": final_message,
                                            "duration_ms": duration_ms}, turn_id=turn_id)

    # ------------------------------------------------------------------ helpers

    async def _emit(self, type_: str, payload: dict[str, Any], *, turn_id: str | None = None,
                    thread: Any = _CURRENT) -> None:
        """Report one event under the live session's thread id (``thread=None``: under none)."""
        thread_id = self._session_id if thread is _CURRENT else thread
        event = AgentEvent(type=type_, thread_id=thread_id, turn_id=turn_id or self._turn_id, payload=payload)
        try:
            pending = self._sink(event)
            if pending is not None:
                await pending
        except Exception:
            logger.exception("claude: event sink failed on %s", type_)

    def _check_usable(self) -> None:
        if self._stopping:
            raise AgentError("claude session is stopped")
        if self._proc is None:
            raise AgentError("claude session not started; call start() first")

    def _require_idle(self, what: str) -> None:
        if self._turn_id is not None:
            raise AgentError(f"cannot {what} while turn {self._turn_id} runs")

    def _require_turn(self, turn_id: str) -> None:
        if self._turn_id is None or turn_id != self._turn_id:
            raise AgentError(f"turn {turn_id} is not running (running: {self._turn_id})")
        if not self.alive:
            raise AgentError(self._gone("is not running"))

    def _gone(self, what: str, proc: AgentProcess | None = None, exit_: ProcessExit | None = None) -> str:
        proc = proc or self._proc
        if proc is None:
            return f"claude process {what}"
        exit_ = exit_ or proc.exit_info
        state = f": {exit_.describe()}" if exit_ else ""
        tail = proc.stderr_tail(10)
        msg = f"claude process (pid {proc.pid}) {what}{state}"
        return f"{msg}; stderr tail:\n{tail}" if tail else msg


# ---------------------------------------------------------------------- pure helpers


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_text_of(part.get("text", part.get("content")) if isinstance(part, dict) else part)
                         for part in content)
    return "" if content is None else json.dumps(content)


def truncate_output(text: str, limit_bytes: int = OUTPUT_LIMIT_BYTES) -> str:
    """Keep the last ``limit_bytes`` bytes of ``text`` (UTF-8), marking the cut."""
    raw = text.encode("utf-8")
    if len(raw) <= limit_bytes:
        return text
    return "[...truncated]\n" + raw[-limit_bytes:].decode("utf-8", errors="ignore")


def _plus(text: str) -> list[str]:
    return [f"+{line}" for line in text.splitlines()] or ["+"]


def _minus(text: str) -> list[str]:
    return [f"-{line}" for line in text.splitlines()] or ["-"]


def file_change(tool_name: str, tool_input: dict[str, Any], cwd: str) -> dict[str, Any]:
    """``{"path", "kind": "add"|"update", "diff"}`` for a Write/Edit/MultiEdit/NotebookEdit input.

    The diff is a short unified-diff-like text built from the tool input alone (the CLI sends no
    diff): ``Write`` shows every line as added, ``Edit`` the old string removed and the new one added.
    Cut to 16,000 characters.
    """
    path = str(tool_input.get("file_path") or tool_input.get("notebook_path") or "")
    full = path if os.path.isabs(path) else os.path.join(cwd, path)
    exists = bool(path) and os.path.exists(full)
    shown = os.path.relpath(full, cwd) if path and os.path.commonpath([full, cwd]) == cwd else path
    a_side, b_side = (shown, shown) if os.path.isabs(shown) else (f"a/{shown}", f"b/{shown}")
    lines = [f"--- {a_side if exists else '/dev/null'}", f"+++ {b_side}"]
    if tool_name == "Write":
        content = str(tool_input.get("content") or "")
        lines += [f"@@ -0,0 +1,{max(1, len(content.splitlines()))} @@", *_plus(content)]
        kind = "update" if exists else "add"
    elif tool_name == "Edit":
        lines += ["@@", *_minus(str(tool_input.get("old_string") or "")),
                  *_plus(str(tool_input.get("new_string") or ""))]
        kind = "update"
    elif tool_name == "MultiEdit":
        for edit in tool_input.get("edits") or []:
            if isinstance(edit, dict):
                lines += ["@@", *_minus(str(edit.get("old_string") or "")), *_plus(str(edit.get("new_string") or ""))]
        kind = "update"
    else:  # NotebookEdit
        lines += [f"@@ cell {tool_input.get('cell_id') or '?'} ({tool_input.get('edit_mode') or 'replace'}) @@",
                  *_plus(str(tool_input.get("new_source") or ""))]
        kind = "update" if exists else "add"
    diff = "\n".join(lines) + "\n"
    if len(diff) > DIFF_LIMIT_CHARS:
        diff = diff[:DIFF_LIMIT_CHARS] + "\n[...truncated]\n"
    return {"path": path, "kind": kind, "diff": diff}


def approval_payload(request_id: str, request: dict[str, Any], cwd: str) -> dict[str, Any]:
    """The ``approval.requested`` payload for a ``can_use_tool`` control request."""
    tool_name = str(request.get("tool_name") or "")
    tool_input = _dict(request.get("input"))
    if tool_name == "Bash":
        kind, command, diff = "command", tool_input.get("command"), None
    elif tool_name in FILE_TOOLS:
        kind, command, diff = "file_change", None, file_change(tool_name, tool_input, cwd)["diff"]
    else:
        kind, command, diff = "tool", None, None
    reason = request.get("decision_reason") or request.get("description") or tool_input.get("description")
    return {"request_id": request_id, "approval_kind": kind, "command": command, "cwd": cwd, "diff": diff,
            "reason": str(reason) if reason else None, "tool_name": tool_name, "input": tool_input}


def question_list(tool_input: dict[str, Any]) -> list[dict[str, Any]]:
    """AskUserQuestion ``input.questions`` -> the ``question.requested`` shape (id = question text)."""
    out: list[dict[str, Any]] = []
    for index, q in enumerate(tool_input.get("questions") or []):
        if not isinstance(q, dict):
            continue
        text = str(q.get("question") or f"question {index + 1}")
        options = [
            {"label": str(o.get("label")), **({"description": str(o["description"])} if o.get("description") else {})}
            for o in q.get("options") or [] if isinstance(o, dict) and o.get("label") is not None
        ]
        item: dict[str, Any] = {"id": text, "question": text, "multi_select": bool(q.get("multiSelect"))}
        if q.get("header"):
            item["header"] = str(q["header"])
        if options:
            item["options"] = options
        out.append(item)
    return out
