"""The adapter contract every agent kind implements, and the normalized events it emits.

Both adapters (``runtime.codex`` for ``codex app-server``, ``runtime.claude`` for Claude Code's
stream-json mode) turn their wire protocol into the same :class:`AgentEvent` values, so nothing past
the adapter knows which agent it is (issue 3, "Claude Code adapter").

Event types (``AgentEvent.type``) and their ``payload`` keys:

==========================  ====================================================================
``agent.ready``             ``{"pid": int, "version": str | None}`` after spawn + handshake
``thread.started``          ``{"resumed": bool}``
``turn.started``            ``{"prompt": str | None}``
``turn.completed``          ``{"status": "completed"|"interrupted"|"failed", "error": str|None,
                            "final_message": str|None, "duration_ms": int|None}``
``item.started``            ``{"item_id", "item_type": "command"|"file_change"|"message"|
                            "reasoning"|"tool"|"user_message"|"other", "command"?, "changes"?}``
``item.completed``          same keys as item.started plus ``"status"``, ``"exit_code"?``,
                            ``"output"?`` (truncated), ``"text"?`` (agent message)
``message.delta``           ``{"item_id": str, "delta": str}``
``command.output_delta``    ``{"item_id": str, "delta": str}``
``plan.updated``            ``{"steps": [{"step": str, "status": str}], "explanation": str|None}``
``approval.requested``      ``{"request_id": str, "approval_kind": "command"|"file_change"|"tool",
                            "command": str|None, "cwd": str|None, "diff": str|None,
                            "reason": str|None, "tool_name": str|None, "input": dict|None}``
``approval.resolved``       ``{"request_id": str}`` (the agent withdrew or settled the request)
``question.requested``      ``{"request_id": str, "questions": [{"id", "header"?, "question",
                            "options"?: [{"label", "description"?}]}]}``
``token_usage``             ``{"input_tokens": int, "output_tokens": int, "total_tokens": int}``
``status``                  ``{"status": str}`` (agent-reported thread status, informational)
``error``                   ``{"message": str, "will_retry": bool}``
``agent.exited``            ``{"returncode": int|None, "signal": int|None, "expected": bool}``
``protocol.malformed``      ``{"line_prefix": str, "reason": str}`` (logged, counted, skipped)
==========================  ====================================================================

``thread_id`` is the agent's own thread id (Codex thread id; Claude ``session_id``). ``turn_id`` is
the agent's turn id (Codex) or an adapter-made id (Claude, which has no turn ids).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal, Protocol

AgentKind = Literal["codex", "claude_code"]
AccessMode = Literal["read-only", "default", "full-access"]
ApprovalDecision = Literal["accept", "accept_for_session", "decline", "cancel"]


@dataclass(slots=True)
class AgentEvent:
    """One normalized fact reported by an agent adapter (see the module docstring for types).

    Treat it as immutable. Not ``frozen``: one is built per agent event on the ingest hot path, and a
    frozen dataclass's ``__init__`` costs ~1.8x more (``benchmarks/stages.py``, "read+normalize").
    """

    type: str
    thread_id: str | None = None
    turn_id: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=partial(datetime.now, UTC))  # a C call, no lambda frame


EventSink = Callable[[AgentEvent], Awaitable[None] | None]
"""Where an adapter reports its events, in order. A coroutine function, or a plain function (the
worker manager's: it only queues the event), which adapters call without the await (one coroutine
less per agent event on the ingest's hot path)."""


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """How to start one agent process.

    ``binary``: path of ``codex`` or ``claude``. ``cwd``: the workspace directory the agent works in.
    ``home``: a private directory for the agent's own state (CODEX_HOME / HOME for Claude), so
    sessions can be resumed after a restart. ``model_base_url``: when set, the agent talks to this
    model endpoint (the scripted model in tests and the demo) instead of the user's own login.
    ``extra_env``: added to the agent's environment (e.g. the Overseer URL and a job token).
    """

    kind: AgentKind
    binary: str
    cwd: str
    home: str
    model: str | None = None
    access_mode: AccessMode = "default"
    model_base_url: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    request_timeout_s: float = 60.0
    line_limit_bytes: int = 64 * 1024 * 1024
    mcp_server: dict[str, Any] | None = None
    """An MCP stdio server to give the agent (``{"command", "args", "env_vars"}``; Overseer's own
    job tools, see ``overseer.jobs.mcp_server.mcp_server_spec``), or None."""


class AgentError(Exception):
    """An agent could not do what was asked (spawn failed, request failed, process gone)."""


class ThreadNotFound(AgentError):
    """The agent has no saved conversation for ``thread_id``, so it cannot be resumed.

    Raised by ``start_thread(resume_thread_id=...)``: Codex answers ``thread/resume`` with "no rollout
    found for thread id" (JSON-RPC -32600); Claude Code exits with "No conversation found with session
    ID" on ``--resume``. It happens when an agent is killed before it saved the thread: Claude Code
    writes its transcript up to ~0.1 s *after* it reports the turn's result (measured on 2.1.197
    under load), or when the agent's home was wiped.
    """

    def __init__(self, message: str, *, thread_id: str) -> None:
        super().__init__(message)
        self.thread_id = thread_id


class AgentBinaryError(AgentError):
    """The configured agent binary is missing or unusable; ``setting`` names the setting to fix."""

    def __init__(self, message: str, *, setting: str) -> None:
        super().__init__(message)
        self.setting = setting


MIN_VERSIONS: dict[str, tuple[int, ...]] = {"codex": (0, 169, 0), "claude_code": (2, 1, 197)}
"""The oldest CLI versions whose protocol Overseer was checked against (reference/agent-protocols.md)."""


def require_supported_version(kind: AgentKind, version: str | None, *, binary: str, setting: str) -> None:
    """Raise :class:`AgentBinaryError` naming ``setting`` when ``version`` is older than supported.

    Newer versions are accepted (a user's own, newer agent works); an unparseable version is accepted too.
    """
    if not version:
        return
    parts = version.split("-")[0].split("+")[0].split(".")
    try:
        found = tuple(int(p) for p in parts[:3])
    except ValueError:
        return
    minimum = MIN_VERSIONS[kind]
    if found < minimum:
        raise AgentBinaryError(
            f"{binary} is version {version}, older than the supported {'.'.join(map(str, minimum))}; "
            f"set {setting} to a newer one (or run scripts/install-agents.sh)", setting=setting)


class AgentSession(Protocol):
    """A live agent process. All methods raise :class:`AgentError` when the agent cannot comply."""

    kind: AgentKind

    @property
    def pid(self) -> int | None: ...

    @property
    def alive(self) -> bool: ...

    async def start(self) -> None:
        """Spawn the process and complete the handshake; emits ``agent.ready``."""

    async def start_thread(self, *, resume_thread_id: str | None = None) -> str:
        """Start a new thread, or resume ``resume_thread_id`` with its history; returns the thread id."""

    async def start_turn(
        self, thread_id: str, prompt: str, *, model: str | None = None, effort: str | None = None
    ) -> str:
        """Send ``prompt`` as a new turn on ``thread_id``; returns the turn id at once (not at the end)."""

    async def steer_turn(self, thread_id: str, turn_id: str, prompt: str) -> None:
        """Add input to the running turn."""

    async def interrupt_turn(self, thread_id: str, turn_id: str) -> None:
        """Interrupt the running turn; ``turn.completed`` with status ``interrupted`` follows."""

    async def answer_approval(self, request_id: str, decision: ApprovalDecision) -> None:
        """Answer a pending ``approval.requested``."""

    async def answer_question(self, request_id: str, answers: dict[str, Any]) -> None:
        """Answer a pending ``question.requested``; ``answers`` maps question id to answer text."""

    async def stop(self, *, grace_s: float = 5.0) -> None:
        """Stop gracefully (close stdin / SIGTERM), then SIGKILL after ``grace_s``. Idempotent."""


AgentFactory = Callable[[AgentConfig, EventSink], AgentSession]
