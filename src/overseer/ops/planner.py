"""The chat's planner: free text -> an ``overseer.dispatch.v1`` contract, written by an LLM agent.

:class:`Planner` is the interface the chat uses (``await planner.plan(text, context) -> dict``): it returns
the parsed JSON document the model answered with, *unvalidated* (the chat validates it with
``validate_contract`` against the caller's visible workspaces and runs nothing when it is invalid). It
raises :class:`PlannerError` when no answer could be had (agent missing, model error, timeout) and
:class:`PlanNotJson` when the answer holds no JSON object.

:class:`AgentPlanner` is the implementation: one agent process per node (``settings.planner_agent``:
``codex`` or ``claude_code``), spawned on first use, in a private home and an empty working directory
under ``<data_dir>/planner/``, read-only, pointed at the same model endpoint as workers
(``settings.model_base_url``). Every plan runs in a **new thread** (no context leaks from one caller's
plan into another's). The prompt is a short instruction, the contract's JSON Schema, the caller's
visible workspaces (id, name, current task, health) and the user's text; with Codex the schema is also
passed as ``outputSchema`` of ``turn/start`` once the adapter accepts it (``start_turn(...,
output_schema=...)``; detected by signature). Approvals and questions the planner agent raises are
declined at once: it must only answer. A plan gets :data:`PLAN_TIMEOUT_S` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from overseer.config import Settings
from overseer.ops.contract import VERSION, json_schema
from overseer.runtime.agent import AgentConfig, AgentError, AgentEvent, AgentFactory, AgentSession

log = logging.getLogger(__name__)

PLAN_TIMEOUT_S = 60.0
MAX_WORKSPACES_IN_PROMPT = 200
INSTRUCTION = f"""You are the planner of Overseer, a supervisor of coding agents working in several workspaces.
Turn the user's request below into ONE action contract and answer with that JSON document only: no prose,
no code fence. The contract's version is "{VERSION}". Use only the workspace ids listed below. Give every
action a short unique action_id. To run work in a workspace use a "dispatch_turn" action whose prompt is a
complete, self-contained instruction for the coding agent there. Do not run commands yourself."""


class PlannerError(Exception):
    """The planner could not answer (agent missing or unusable, model error, timeout)."""


class PlanNotJson(PlannerError):
    """The planner answered, but its final message holds no JSON object (``raw`` is that message)."""

    def __init__(self, message: str, raw: str) -> None:
        super().__init__(message)
        self.raw = raw


@dataclass(frozen=True)
class PlanContext:
    """What the planner may know: the caller's visible workspaces (``id``, ``name``, ``current_task``,
    ``health``) and who asks."""

    owner: str
    workspaces: list[dict[str, Any]] = field(default_factory=list)


class Planner(Protocol):
    async def plan(self, text: str, context: PlanContext) -> dict[str, Any]:
        """The contract document the model wrote for ``text`` (parsed, not validated)."""

    async def stop(self) -> None:
        """Stop the planner's agent, if any (idempotent)."""


# ---------------------------------------------------------------------------------------- prompt & parse


def build_prompt(text: str, context: PlanContext) -> str:
    """The planner's user message: instruction, schema, visible workspaces, then the user's text (last, so
    that whatever the user wrote is what the model reads most recently)."""
    rows = [{"id": w.get("id"), "name": w.get("name"), "current_task": w.get("current_task"),
             "health": w.get("health")} for w in context.workspaces[:MAX_WORKSPACES_IN_PROMPT]]
    return (f"{INSTRUCTION}\n\nJSON Schema of the contract:\n{json.dumps(json_schema(), separators=(',', ':'))}"
            f"\n\nWorkspaces you may use:\n{json.dumps(rows, separators=(',', ':'))}"
            f"\n\nThe user's request:\n{text}")


_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.DOTALL)


def extract_json(message: str | None) -> dict[str, Any]:
    """The first JSON object in the planner's final message (code fences stripped). Raises PlanNotJson."""
    raw = (message or "").strip()
    candidates = [m.group(1) for m in _FENCE.finditer(raw)] + [raw]
    decoder = json.JSONDecoder()
    for text in candidates:
        pos = text.find("{")
        while pos >= 0:
            try:
                value, _ = decoder.raw_decode(text, pos)
            except ValueError:
                pos = text.find("{", pos + 1)
                continue
            if isinstance(value, dict):
                return _drop_nulls(value)
            pos = text.find("{", pos + 1)
    raise PlanNotJson("The planner's answer holds no JSON object", raw[:2000])


def _drop_nulls(doc: dict[str, Any]) -> dict[str, Any]:
    """Drop ``null`` optional fields of actions (a strict output schema makes the model write them)."""
    actions = doc.get("actions")
    if isinstance(actions, list):
        doc = {**doc, "actions": [{k: v for k, v in a.items() if v is not None} if isinstance(a, dict) else a
                                  for a in actions]}
    return doc


def output_schema() -> dict[str, Any]:
    """The contract's schema in the form OpenAI structured outputs accept (``strict``): every object lists
    all its properties as required (optional ones become nullable; :func:`extract_json` drops the nulls),
    ``oneOf`` becomes ``anyOf``, and keywords strict mode rejects (``discriminator``, ``default``,
    ``$schema``, ``$id``, ``format``, length bounds) are removed. The validator stays the judge."""
    schema = copy.deepcopy(json_schema())

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(n) for n in node]
        if not isinstance(node, dict):
            return node
        out = {k: walk(v) for k, v in node.items()
               if k not in ("discriminator", "default", "$schema", "$id", "format", "minLength", "maxLength",
                            "minItems", "maxItems", "title", "description")}
        if "oneOf" in out:
            out["anyOf"] = out.pop("oneOf")
        if out.get("type") == "object" and isinstance(out.get("properties"), dict):
            required = set(out.get("required") or [])
            for name, prop in out["properties"].items():
                if name not in required:
                    out["properties"][name] = _nullable(prop)
            out["required"] = list(out["properties"])
            out["additionalProperties"] = False
        return out

    return walk(schema)  # type: ignore[no-any-return]


def _nullable(prop: dict[str, Any]) -> dict[str, Any]:
    if "anyOf" in prop:
        if not any(p.get("type") == "null" for p in prop["anyOf"] if isinstance(p, dict)):
            return {**prop, "anyOf": [*prop["anyOf"], {"type": "null"}]}
        return prop
    return {"anyOf": [prop, {"type": "null"}]}


# ---------------------------------------------------------------------------------------- agent planner


class AgentPlanner:
    """A :class:`Planner` backed by one Codex or Claude Code process of this node (started lazily)."""

    def __init__(self, settings: Settings, *, kind: str = "codex", agent_factory: AgentFactory | None = None,
                 timeout_s: float = PLAN_TIMEOUT_S) -> None:
        self.settings = settings
        self.kind = kind
        self.timeout_s = timeout_s
        self._factory = agent_factory
        self.session: AgentSession | None = None
        self._start_lock = asyncio.Lock()
        self._serial = asyncio.Lock()  # Claude runs one turn per process: plans take turns
        self._waiters: dict[str, asyncio.Future[AgentEvent]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopped = False

    @property
    def pid(self) -> int | None:
        return self.session.pid if self.session is not None else None

    def config(self) -> AgentConfig:
        """The planner agent's AgentConfig (raises AgentUnavailable naming the setting for a missing binary)."""
        from overseer.runtime.workers import check_binary

        s = self.settings
        codex = self.kind == "codex"
        binary = check_binary(s.codex_bin if codex else s.claude_bin,
                              setting="OVERSEER_CODEX_BIN" if codex else "OVERSEER_CLAUDE_BIN")
        root = s.data_dir / "planner"
        home, cwd = root / f"{self.kind}-home", root / "work"
        home.mkdir(parents=True, exist_ok=True)
        cwd.mkdir(parents=True, exist_ok=True)
        return AgentConfig(kind=self.kind,  # type: ignore[arg-type]
                           binary=binary, cwd=str(cwd), home=str(home),
                           model=s.planner_model or (s.codex_model if codex else s.claude_model),
                           access_mode="read-only", model_base_url=s.model_base_url,
                           request_timeout_s=s.agent_request_timeout_s)

    async def _session(self) -> AgentSession:
        async with self._start_lock:
            if self._stopped:
                raise PlannerError("The planner is stopped")
            if self.session is not None and self.session.alive:
                return self.session
            if self.session is not None:  # died: start a new one
                with contextlib.suppress(Exception):
                    await self.session.stop(grace_s=0.5)
                self.session = None
            try:
                config = self.config()
            except Exception as exc:  # AgentUnavailable: binary missing
                raise PlannerError(f"The planner agent is not available: {exc}") from exc
            if self._factory is not None:
                session = self._factory(config, self._sink)
            else:
                from overseer.runtime.workers import default_agent_factory

                session = default_agent_factory(config, self._sink)
            try:
                await session.start()
            except (AgentError, OSError) as exc:
                with contextlib.suppress(Exception):
                    await session.stop(grace_s=0.5)
                raise PlannerError(f"The planner agent ({self.kind}) failed to start: {exc}") from exc
            self.session = session
            return session

    async def _sink(self, ev: AgentEvent) -> None:
        if ev.type == "turn.completed" and ev.thread_id:
            fut = self._waiters.get(ev.thread_id)
            if fut is not None and not fut.done():
                fut.set_result(ev)
        elif ev.type in ("approval.requested", "question.requested"):
            self._spawn(self._decline(ev))
        elif ev.type == "agent.exited":
            for fut in self._waiters.values():
                if not fut.done():
                    fut.set_exception(PlannerError("The planner agent exited"))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _decline(self, ev: AgentEvent) -> None:
        session = self.session
        if session is None:
            return
        request_id = str(ev.payload.get("request_id"))
        try:
            await session.answer_approval(request_id, "decline")
        except Exception:  # Codex questions take an answer, not a decision
            with contextlib.suppress(Exception):
                await session.answer_question(request_id, {})

    async def plan(self, text: str, context: PlanContext) -> dict[str, Any]:
        if self.kind == "claude_code":
            async with self._serial:
                return await self._plan(text, context)
        return await self._plan(text, context)

    async def _plan(self, text: str, context: PlanContext) -> dict[str, Any]:
        session = await self._session()
        prompt = build_prompt(text, context)
        loop = asyncio.get_running_loop()
        thread_id: str | None = None
        turn_id: str | None = None
        try:
            async with asyncio.timeout(self.timeout_s):
                thread_id = await session.start_thread()
                fut: asyncio.Future[AgentEvent] = loop.create_future()
                self._waiters[thread_id] = fut
                kwargs: dict[str, Any] = {}
                if _accepts(session.start_turn, "output_schema"):
                    kwargs["output_schema"] = output_schema()
                turn_id = await session.start_turn(thread_id, prompt, **kwargs)
                done = await fut
        except TimeoutError:
            if thread_id and turn_id and session.alive:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(session.interrupt_turn(thread_id, turn_id), 5)
            raise PlannerError(f"The planner did not answer within {self.timeout_s:.0f} s") from None
        except AgentError as exc:
            raise PlannerError(f"The planner agent failed: {exc}") from exc
        finally:
            if thread_id:
                self._waiters.pop(thread_id, None)
        status = done.payload.get("status")
        if status != "completed":
            raise PlannerError(f"The planner's turn {status or 'ended'}: {done.payload.get('error') or 'no answer'}")
        return extract_json(done.payload.get("final_message"))

    async def stop(self) -> None:
        self._stopped = True
        async with self._start_lock:
            session, self.session = self.session, None
        if session is not None:
            with contextlib.suppress(Exception):
                await session.stop(grace_s=2.0)
        for task in list(self._tasks):
            task.cancel()
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(PlannerError("The planner was stopped"))


def _accepts(fn: Any, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def make_planner(settings: Settings, *, agent_factory: AgentFactory | None = None) -> Planner | None:
    """The planner ``settings.planner_agent`` asks for (None for ``"none"``)."""
    if settings.planner_agent == "none":
        return None
    return AgentPlanner(settings, kind=settings.planner_agent, agent_factory=agent_factory)


__all__ = ["PLAN_TIMEOUT_S", "AgentPlanner", "PlanContext", "PlanNotJson", "Planner", "PlannerError",
           "build_prompt", "extract_json", "make_planner", "output_schema"]
