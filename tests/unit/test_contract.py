"""The action contract ``overseer.dispatch.v1`` (CM-006): strict validation that lists every violation."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overseer.ops.contract import (
    MAX_ACTIONS,
    VERSION,
    Contract,
    ContractInvalid,
    DispatchTurn,
    json_schema,
    referenced_workspaces,
    validate_contract,
)

WS1, WS2 = uuid.uuid4(), uuid.uuid4()
WORKER = uuid.uuid4()


def turn(action_id: str = "a1", ws: uuid.UUID = WS1, **extra: Any) -> dict[str, Any]:
    return {"type": "dispatch_turn", "action_id": action_id, "workspace_id": str(ws), "prompt": "do it", **extra}


def contract(*actions: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"version": VERSION, "actions": list(actions), **extra}


def violations(data: Any, visible: set[uuid.UUID] | None = None) -> list[tuple[str, str]]:
    with pytest.raises(ContractInvalid) as info:
        validate_contract(data, visible_workspaces=visible)
    assert info.value.status == 400 and info.value.code == "CONTRACT_INVALID"
    body = info.value.body()["error"]
    assert body["details"]["violations"] == info.value.violations
    assert all(set(v) == {"path", "code", "message"} and v["message"] for v in info.value.violations)
    return [(v["path"], v["code"]) for v in info.value.violations]


def test_valid_contract_with_every_action_type() -> None:
    data = contract(
        turn("a1", thread_id="th-1", worker_id=str(WORKER), agent_kind="claude_code", dedupe_key="k",
             model="m", effort="high", access_mode="read-only"),
        turn("a2", ws=WS2),
        {"type": "steer_turn", "action_id": "a3", "workspace_id": str(WS1), "worker_id": str(WORKER),
         "prompt": "also this"},
        {"type": "interrupt_turn", "action_id": "a4", "workspace_id": str(WS2), "worker_id": str(WORKER)},
        {"type": "ack_signal", "action_id": "a5", "signal_id": f"health:{WS1}:stalled"},
    )
    c = validate_contract(data, visible_workspaces={WS1, WS2})
    assert [a.type for a in c.actions] == ["dispatch_turn", "dispatch_turn", "steer_turn", "interrupt_turn",
                                           "ack_signal"]
    first = c.actions[0]
    assert isinstance(first, DispatchTurn) and first.worker_id == WORKER and first.agent_kind == "claude_code"
    second = c.actions[1]
    assert isinstance(second, DispatchTurn) and second.agent_kind == "codex" and second.access_mode is None
    assert validate_contract(data, visible_workspaces=None) == c  # None: visibility not checked


def test_strings_are_trimmed() -> None:
    c = validate_contract(contract(turn("  a1 ", prompt="  hi  ", dedupe_key=" k ")), visible_workspaces=None)
    a = c.actions[0]
    assert isinstance(a, DispatchTurn) and (a.action_id, a.prompt, a.dedupe_key) == ("a1", "hi", "k")


@pytest.mark.parametrize(("data", "expected"), [
    (contract(turn(), extra=1), [("$.extra", "UNKNOWN_FIELD")]),
    (contract(turn(surprise=True)), [("$.actions[0].surprise", "UNKNOWN_FIELD")]),
    ({**contract(turn()), "version": "supervisor.dispatch.v1"}, [("$.version", "UNKNOWN_VERSION")]),
    ({**contract(turn()), "version": 1}, [("$.version", "UNKNOWN_VERSION")]),
    ({"actions": [turn()]}, [("$.version", "MISSING_FIELD")]),
    ({"version": VERSION}, [("$.actions", "MISSING_FIELD")]),
    (contract(), [("$.actions", "EMPTY_ACTIONS")]),
    (contract({"type": "launch_missiles", "action_id": "x"}), [("$.actions[0].type", "UNKNOWN_TYPE")]),
    (contract({"action_id": "x", "prompt": "p"}), [("$.actions[0].type", "MISSING_FIELD")]),
    (contract("not an object"), [("$.actions[0]", "WRONG_TYPE")]),
    ({"version": VERSION, "actions": {"a": 1}}, [("$.actions", "WRONG_TYPE")]),
    ([1, 2], [("$", "WRONG_TYPE")]),
    (None, [("$", "WRONG_TYPE")]),
    (contract(turn(prompt=5)), [("$.actions[0].prompt", "WRONG_TYPE")]),
    (contract(turn(workspace_id="not-a-uuid")), [("$.actions[0].workspace_id", "WRONG_TYPE")]),
    (contract(turn(agent_kind="gpt")), [("$.actions[0].agent_kind", "INVALID_VALUE")]),
    (contract(turn(access_mode="root")), [("$.actions[0].access_mode", "INVALID_VALUE")]),
    (contract(turn(prompt="   ")), [("$.actions[0].prompt", "TOO_SHORT")]),
    (contract(turn(prompt="x" * 200_001)), [("$.actions[0].prompt", "TOO_LONG")]),
    (contract(turn("a" * 101)), [("$.actions[0].action_id", "TOO_LONG")]),
    (contract({"type": "steer_turn", "action_id": "s", "workspace_id": str(WS1), "prompt": "p"}),
     [("$.actions[0].worker_id", "MISSING_FIELD")]),
    (contract(turn("a1"), turn(" a1")), [("$.actions[1].action_id", "DUPLICATE_ACTION_ID")]),
    (contract(turn("a1", dedupe_key="k"), turn("a2", dedupe_key="k")),
     [("$.actions[1].dedupe_key", "DUPLICATE_DEDUPE_KEY")]),
])
def test_each_violation_kind(data: Any, expected: list[tuple[str, str]]) -> None:
    assert violations(data) == expected


def test_same_dedupe_key_in_two_workspaces_is_fine() -> None:
    validate_contract(contract(turn("a1", dedupe_key="k"), turn("a2", ws=WS2, dedupe_key="k")),
                      visible_workspaces={WS1, WS2})


def test_prompt_at_the_limit_is_accepted() -> None:
    validate_contract(contract(turn(prompt="x" * 200_000)), visible_workspaces=None)


def test_invisible_workspace_is_reported_like_a_missing_one() -> None:
    hidden = uuid.uuid4()
    with pytest.raises(ContractInvalid) as info:
        validate_contract(contract(turn("a1"), turn("a2", ws=hidden)), visible_workspaces={WS1})
    [v] = info.value.violations
    assert v == {"path": "$.actions[1].workspace_id", "code": "WORKSPACE_NOT_FOUND",
                 "message": f"workspace {hidden} not found"}


def test_too_many_actions_still_lists_item_violations() -> None:
    actions = [turn(f"a{i}") for i in range(MAX_ACTIONS + 1)]
    actions[7]["prompt"] = ""
    assert violations(contract(*actions)) == [("$.actions", "TOO_MANY_ACTIONS"),
                                              ("$.actions[7].prompt", "TOO_SHORT")]
    validate_contract(contract(*(turn(f"a{i}") for i in range(MAX_ACTIONS))), visible_workspaces=None)


def test_every_violation_is_listed_at_once() -> None:
    hidden = uuid.uuid4()
    data = {
        "version": "overseer.dispatch.v0",
        "bogus": True,
        "actions": [
            turn("a1", dedupe_key="k", colour="red"),
            {"type": "nope", "action_id": "a1"},
            turn("a3", dedupe_key="k", prompt=""),
            turn("a4", ws=hidden),
            {"type": "interrupt_turn", "action_id": "a5", "workspace_id": str(WS1), "worker_id": "zzz"},
        ],
    }
    assert violations(data, visible={WS1}) == [
        ("$.version", "UNKNOWN_VERSION"),
        ("$.bogus", "UNKNOWN_FIELD"),
        ("$.actions[0].colour", "UNKNOWN_FIELD"),
        ("$.actions[1].type", "UNKNOWN_TYPE"),
        ("$.actions[1].action_id", "DUPLICATE_ACTION_ID"),
        ("$.actions[2].prompt", "TOO_SHORT"),
        ("$.actions[2].dedupe_key", "DUPLICATE_DEDUPE_KEY"),
        ("$.actions[3].workspace_id", "WORKSPACE_NOT_FOUND"),
        ("$.actions[4].worker_id", "WRONG_TYPE"),
    ]


def test_referenced_workspaces_reads_invalid_documents() -> None:
    assert referenced_workspaces(contract(turn(), turn("b", ws=WS2), {"workspace_id": "x"}, 5)) == {WS1, WS2}
    assert referenced_workspaces([1]) == set() and referenced_workspaces({"actions": "x"}) == set()


def test_json_schema_structure() -> None:
    schema = json_schema()
    json.dumps(schema)  # plain JSON
    assert schema["$id"] == VERSION and schema["$schema"].startswith("https://json-schema.org/")
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert set(schema["required"]) == {"version", "actions"}
    assert schema["properties"]["version"]["const"] == VERSION
    actions = schema["properties"]["actions"]
    assert (actions["minItems"], actions["maxItems"]) == (1, MAX_ACTIONS)
    mapping = actions["items"]["discriminator"]["mapping"]
    assert set(mapping) == {"dispatch_turn", "steer_turn", "interrupt_turn", "ack_signal"}
    for ref in mapping.values():
        assert ref.startswith("#/$defs/")
        action = schema["$defs"][ref.removeprefix("#/$defs/")]
        assert action["additionalProperties"] is False and "action_id" in action["required"]
        assert action["properties"]["action_id"]["maxLength"] == 100
    dispatch = schema["$defs"]["DispatchTurn"]["properties"]
    assert dispatch["prompt"]["maxLength"] == 200_000
    assert dispatch["agent_kind"]["enum"] == ["codex", "claude_code"] and dispatch["agent_kind"]["default"] == "codex"


def test_pydantic_round_trip() -> None:
    data = contract(turn("a1", dedupe_key="k", access_mode="full-access"),
                    {"type": "ack_signal", "action_id": "a2", "signal_id": "s1"})
    c = validate_contract(data, visible_workspaces={WS1})
    dumped = c.model_dump(mode="json", exclude_none=True)
    assert validate_contract(dumped, visible_workspaces={WS1}) == c
    assert Contract.model_validate_json(c.model_dump_json()) == c


_text = st.text(min_size=1, max_size=30).filter(lambda s: s.strip() != "")


@settings(max_examples=75, deadline=None)
@given(st.lists(st.tuples(_text, st.sampled_from([WS1, WS2]), st.none() | _text), min_size=1, max_size=12))
def test_duplicates_are_found_exactly(specs: list[tuple[str, uuid.UUID, str | None]]) -> None:
    """A contract is accepted iff its action ids and (workspace, dedupe_key) pairs are unique (and hold no
    NUL character: INVALID_VALUE)."""
    actions = [turn(aid, ws=ws, **({"dedupe_key": key} if key else {})) for aid, ws, key in specs]
    ids = [aid.strip() for aid, _, _ in specs]
    keys = [(ws, key.strip()) for _, ws, key in specs if key]
    bad_sizes = any(len(aid.strip()) > 100 for aid in ids)
    nul = any("\x00" in text for aid, _, key in specs for text in (aid, key or ""))
    unique = len(set(ids)) == len(ids) and len(set(keys)) == len(keys)
    try:
        validate_contract(contract(*actions), visible_workspaces={WS1, WS2})
        accepted = True
    except ContractInvalid as exc:
        accepted = False
        codes = {v["code"] for v in exc.violations}
        assert codes <= {"DUPLICATE_ACTION_ID", "DUPLICATE_DEDUPE_KEY", "TOO_LONG", "INVALID_VALUE"}
        assert ("INVALID_VALUE" in codes) is nul
    assert accepted is (unique and not bad_sizes and not nul)


@settings(max_examples=75, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                max_size=3), max_leaves=10))
def test_garbage_never_crashes(data: Any) -> None:
    """Any JSON value is either a contract or a ContractInvalid with at least one violation."""
    try:
        validate_contract(data, visible_workspaces=set())
    except ContractInvalid as exc:
        assert exc.violations
