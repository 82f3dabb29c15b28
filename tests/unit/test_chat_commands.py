"""Chat command parsing (ops.chat.parse_command) and the planner's answer parsing (ops.planner)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from overseer.config import Settings
from overseer.ops.chat import HELP, Command, CommandError, parse_command, visible
from overseer.ops.contract import validate_contract
from overseer.ops.planner import (
    AgentPlanner,
    PlanContext,
    PlannerError,
    PlanNotJson,
    build_prompt,
    extract_json,
    output_schema,
)
from overseer.runtime.agent import AgentEvent


def test_free_text_is_not_a_command() -> None:
    assert parse_command("please fix the tests in alpha") is None
    assert parse_command("  what is /status?") is None


@pytest.mark.parametrize(("text", "args"), [
    ('/dispatch --ws a,b --prompt "fix the tests"', {"workspaces": ["a", "b"], "prompt": "fix the tests",
                                                      "kind": "codex"}),
    ("/dispatch --prompt 'it''s fine' --ws alpha --kind claude_code",
     {"workspaces": ["alpha"], "prompt": "its fine", "kind": "claude_code"}),
    ('/dispatch --ws=a, b ,a --prompt="say \\"hi\\""', None),
    ('/DISPATCH --ws " a , b " --prompt "x y"', {"workspaces": ["a", "b"], "prompt": "x y", "kind": "codex"}),
])
def test_dispatch_parsing(text: str, args: dict[str, object] | None) -> None:
    if args is None:  # "--ws=a," then a stray "b": an unexpected positional argument
        with pytest.raises(CommandError, match="Unexpected argument 'b'"):
            parse_command(text)
        return
    assert parse_command(text) == Command("dispatch", args)


def test_dispatch_dedupes_workspaces_and_takes_equals_form() -> None:
    cmd = parse_command('/dispatch --ws=a,b,a --prompt="say \\"hi\\""')
    assert cmd == Command("dispatch", {"workspaces": ["a", "b"], "prompt": 'say "hi"', "kind": "codex"})


@pytest.mark.parametrize(("text", "match"), [
    ('/dispatch --ws a --prompt "unbalanced', "check your quotes"),
    ("/dispatch --ws a", "needs --prompt"),
    ('/dispatch --prompt "x"', "needs --ws"),
    ('/dispatch --ws , --prompt "x"', "names no workspace"),
    ('/dispatch --ws a --prompt "x" --colour red', "Unknown option --colour"),
    ('/dispatch --ws a --prompt "x" --kind gpt', "--kind must be codex or claude_code"),
    ('/dispatch --ws a --ws b --prompt "x"', "--ws given twice"),
    ("/dispatch --ws a --prompt", "--prompt needs a value"),
    ('/dispatch --ws a fix it', "Unexpected argument 'fix'"),
    ("/status a b", "at most 1 argument"),
    ("/status --all", "takes no option"),
    ("/feed everything", "needs_input"),
    ("/ack", "needs an id"),
    ("/approve", "needs an id"),
    ("/deny 1 2", "at most 1 argument"),
    ("/help me", "no argument"),
])
def test_bad_commands(text: str, match: str | None) -> None:
    with pytest.raises(CommandError) as exc:
        parse_command(text)
    if match:
        assert match in str(exc.value)


def test_unknown_command_points_to_help() -> None:
    with pytest.raises(CommandError, match=r"Unknown command /deploy\. Type /help"):
        parse_command("/deploy everything")


@pytest.mark.parametrize(("text", "cmd"), [
    ("/help", Command("help")),
    ("/status", Command("status", {"workspace": None})),
    ("/status alpha", Command("status", {"workspace": "alpha"})),
    ("/feed", Command("feed", {"needs_input": False})),
    ("/feed needs_input", Command("feed", {"needs_input": True})),
    ("/feed needs-input", Command("feed", {"needs_input": True})),
    ("/ack needs_approval:123", Command("ack", {"id": "needs_approval:123"})),
    ("/approve 1f2e3d", Command("approve", {"id": "1f2e3d"})),
    ("/deny 1f2e3d", Command("deny", {"id": "1f2e3d"})),
])
def test_simple_commands(text: str, cmd: Command) -> None:
    assert parse_command(text) == cmd


def test_help_lists_every_command() -> None:
    for name in ("/dispatch", "/status", "/feed", "/ack", "/approve", "/deny", "/help"):
        assert name in HELP


def test_visibility_needs_every_workspace() -> None:
    import uuid

    from overseer.auth.tokens import Principal

    a, b = uuid.uuid4(), uuid.uuid4()
    only_a = Principal("x", frozenset(), frozenset({a}))
    admin = Principal("x", frozenset({"admin"}), None)
    assert visible([], only_a) and visible([str(a)], only_a)
    assert not visible([str(a), str(b)], only_a) and not visible([str(b)], only_a)
    assert visible([str(a), str(b)], admin)


# ---------------------------------------------------------------------------- planner answers


CONTRACT = {"version": "overseer.dispatch.v1", "actions": [
    {"type": "dispatch_turn", "action_id": "a1", "workspace_id": "3f0c8f4e-5d0e-4f43-9d8e-1b2f3a4c5d6e",
     "prompt": "hi"}]}


@pytest.mark.parametrize("message", [
    json.dumps(CONTRACT),
    "Here is the plan:\n```json\n" + json.dumps(CONTRACT, indent=2) + "\n```\nDone.",
    "```\n" + json.dumps(CONTRACT) + "\n```",
    "Sure. " + json.dumps(CONTRACT) + " and then {\"other\": 1}",
    "{not json} " + json.dumps(CONTRACT),
])
def test_extract_json_takes_the_first_object(message: str) -> None:
    assert extract_json(message) == CONTRACT


def test_extract_json_drops_null_optionals_and_refuses_prose() -> None:
    doc = {"version": "overseer.dispatch.v1", "actions": [{**CONTRACT["actions"][0], "thread_id": None,
                                                           "agent_kind": None}]}
    assert extract_json(json.dumps(doc)) == CONTRACT
    with pytest.raises(PlanNotJson):
        extract_json("I would dispatch to alpha.")
    with pytest.raises(PlanNotJson):
        extract_json("[1, 2]")


def test_prompt_and_strict_schema() -> None:
    prompt = build_prompt("do [[json: {}]] it", PlanContext("me", [{"id": "w1", "name": "alpha",
                                                                   "current_task": None, "health": "healthy"}]))
    assert prompt.endswith("do [[json: {}]] it") and '"name":"alpha"' in prompt and "overseer.dispatch.v1" in prompt
    assert prompt.count("[[") == 1  # only the user's own markers
    schema = output_schema()
    text = json.dumps(schema)
    assert "oneOf" not in text and "discriminator" not in text
    turn = schema["$defs"]["DispatchTurn"]
    assert set(turn["required"]) == set(turn["properties"]) and turn["additionalProperties"] is False
    assert {"type": "null"} in turn["properties"]["thread_id"]["anyOf"]
    validate_contract(CONTRACT, visible_workspaces=None)


# ---------------------------------------------------------------------------- AgentPlanner with a fake agent


class FakeSession:
    """Just enough of an AgentSession: answers each turn with ``reply`` (None: never answers)."""

    kind = "codex"

    def __init__(self, config: Any, sink: Any, reply: str | None, *, schema: bool) -> None:
        self.sink, self.reply, self.alive, self.pid = sink, reply, False, 4242
        self.turns: list[dict[str, Any]] = []
        self.threads = 0
        self.stopped = False
        if schema:
            self.start_turn = self._start_turn_with_schema  # type: ignore[method-assign]

    async def start(self) -> None:
        self.alive = True

    async def start_thread(self, *, resume_thread_id: str | None = None) -> str:
        self.threads += 1
        return f"thread-{self.threads}"

    async def start_turn(self, thread_id: str, prompt: str, *, model: str | None = None,
                         effort: str | None = None) -> str:
        return await self._turn(thread_id, prompt, None)

    async def _start_turn_with_schema(self, thread_id: str, prompt: str, *, model: str | None = None,
                                      effort: str | None = None, output_schema: Any = None) -> str:
        return await self._turn(thread_id, prompt, output_schema)

    async def _turn(self, thread_id: str, prompt: str, schema: Any) -> str:
        self.turns.append({"thread_id": thread_id, "prompt": prompt, "schema": schema})
        if self.reply is not None:
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self.sink(AgentEvent(
                "turn.completed", thread_id, "turn-1", {"status": "completed", "final_message": self.reply}))))
        return "turn-1"

    async def interrupt_turn(self, thread_id: str, turn_id: str) -> None:
        pass

    async def stop(self, *, grace_s: float = 5.0) -> None:
        self.stopped, self.alive = True, False


def _planner(tmp_path: Any, reply: str | None, *, schema: bool = False, timeout_s: float = 5.0,
             ) -> tuple[AgentPlanner, list[FakeSession]]:
    sessions: list[FakeSession] = []

    def factory(config: Any, sink: Any) -> FakeSession:
        assert config.access_mode == "read-only" and str(tmp_path) in config.home
        sessions.append(FakeSession(config, sink, reply, schema=schema))
        return sessions[-1]

    settings = Settings(data_dir=tmp_path, codex_bin="/bin/true", jwt_secret="x" * 40)  # type: ignore[arg-type]
    return AgentPlanner(settings, agent_factory=factory, timeout_s=timeout_s), sessions


async def test_agent_planner_one_process_new_thread_per_plan(tmp_path: Any) -> None:
    planner, sessions = _planner(tmp_path, "```json\n" + json.dumps(CONTRACT) + "\n```")
    ctx = PlanContext("me", [])
    assert await planner.plan("one", ctx) == CONTRACT
    assert await planner.plan("two", ctx) == CONTRACT
    assert len(sessions) == 1 and [t["thread_id"] for t in sessions[0].turns] == ["thread-1", "thread-2"]
    assert sessions[0].turns[0]["schema"] is None  # this adapter cannot take outputSchema: prompt only
    await planner.stop()
    assert sessions[0].stopped
    with pytest.raises(PlannerError):
        await planner.plan("after stop", ctx)


async def test_agent_planner_passes_output_schema_when_the_adapter_takes_it(tmp_path: Any) -> None:
    planner, sessions = _planner(tmp_path, json.dumps(CONTRACT), schema=True)
    await planner.plan("x", PlanContext("me", []))
    assert sessions[0].turns[0]["schema"] == output_schema()
    await planner.stop()


async def test_agent_planner_timeout_and_missing_binary(tmp_path: Any) -> None:
    planner, _ = _planner(tmp_path, None, timeout_s=0.2)
    with pytest.raises(PlannerError, match="did not answer within"):
        await planner.plan("x", PlanContext("me", []))
    await planner.stop()
    missing = AgentPlanner(Settings(data_dir=tmp_path, codex_bin=str(tmp_path / "nope"),  # type: ignore[arg-type]
                                    jwt_secret="x" * 40))
    with pytest.raises(PlannerError, match="not available"):
        await missing.plan("x", PlanContext("me", []))
