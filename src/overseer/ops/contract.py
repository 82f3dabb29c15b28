"""The planner -> executor action contract ``overseer.dispatch.v1`` (CM-006; modelled on the fork's
``supervisor.dispatch.v1``, anchors-codexmonitor-omoios.md §1.3 "Contract").

Shape (every object strict: unknown fields are violations; every string is trimmed)::

    {"version": "overseer.dispatch.v1",
     "actions": [                                            # 1..100 actions
       {"type": "dispatch_turn", "action_id", "workspace_id", "prompt",
        "thread_id"?, "worker_id"?, "agent_kind"? ("codex" | "claude_code", default "codex"),
        "dedupe_key"?, "model"?, "effort"? ("minimal" | "low" | "medium" | "high"),
        "access_mode"? ("read-only" | "default" | "full-access")},
       {"type": "steer_turn", "action_id", "workspace_id", "worker_id", "prompt"},
       {"type": "interrupt_turn", "action_id", "workspace_id", "worker_id"},
       {"type": "ack_signal", "action_id", "signal_id"}]}

Limits: ``action_id`` 1..100 chars, ``prompt`` 1..200 000 chars, ``dedupe_key`` 1..200 chars,
``thread_id`` 1..128 chars, ``model`` 1..200 chars.

:func:`validate_contract` is pure (no I/O): it collects EVERY violation and rejects the contract as a
whole with :class:`ContractInvalid` (400 ``CONTRACT_INVALID``, ``details.violations`` = a list of
``{path, code, message}``, ``path`` in JSONPath form such as ``$.actions[2].prompt``). Violation codes:

==========================  ===========================================================================
``UNKNOWN_FIELD``           a field the contract does not define (at any level)
``UNKNOWN_VERSION``         ``version`` is not ``overseer.dispatch.v1``
``UNKNOWN_TYPE``            an action ``type`` that does not exist
``MISSING_FIELD``           a required field (``type`` included) is absent
``EMPTY_ACTIONS``           ``actions`` is an empty list
``TOO_MANY_ACTIONS``        more than 100 actions
``WRONG_TYPE``              a value of the wrong JSON type (or a malformed UUID)
``INVALID_VALUE``           a value outside its enumeration, or text holding the NUL character (U+0000)
``TOO_LONG`` / ``TOO_SHORT``  a string outside its size bounds (an empty string after trimming is TOO_SHORT)
``DUPLICATE_ACTION_ID``     an ``action_id`` used twice
``DUPLICATE_DEDUPE_KEY``    the same (``workspace_id``, ``dedupe_key``) pair twice
``WORKSPACE_NOT_FOUND``     a workspace the caller cannot see (identical for "does not exist")
==========================  ===========================================================================

:func:`json_schema` is the published JSON Schema (``GET /api/v1/ops/contract``), generated from the
same pydantic models, with ``$id`` ``overseer.dispatch.v1``.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, Final, Literal

import pydantic
from pydantic import Field

from overseer.errors import OverseerError
from overseer.schemas import WriteSchema

VERSION: Final = "overseer.dispatch.v1"
MAX_ACTIONS = 100
MAX_PROMPT = 200_000
MAX_ACTION_ID = 100
MAX_DEDUPE_KEY = 200

AgentKind = Literal["codex", "claude_code"]
AccessMode = Literal["read-only", "default", "full-access"]
Effort = Literal["minimal", "low", "medium", "high"]

ActionId = Annotated[str, Field(min_length=1, max_length=MAX_ACTION_ID,
                                description="Unique within the contract; results are keyed by it.")]
Prompt = Annotated[str, Field(min_length=1, max_length=MAX_PROMPT)]


class ContractInvalid(OverseerError):
    """The contract was rejected as a whole; ``details.violations`` lists every problem found."""

    status, code = 400, "CONTRACT_INVALID"

    def __init__(self, violations: list[dict[str, str]]) -> None:
        n = len(violations)
        super().__init__(f"The action contract is invalid ({n} violation{'s' if n != 1 else ''})",
                         details={"violations": violations})
        self.violations = violations


class _Action(WriteSchema):
    action_id: ActionId


class DispatchTurn(_Action):
    """Run ``prompt`` as a new turn in ``workspace_id`` on a chosen or new worker (CM-005)."""

    type: Literal["dispatch_turn"]
    workspace_id: uuid.UUID
    prompt: Prompt
    thread_id: str | None = Field(default=None, min_length=1, max_length=128,
                                  description="Continue this thread (on the worker that owns it).")
    worker_id: uuid.UUID | None = Field(default=None, description="Use this worker (it must be in the workspace).")
    agent_kind: AgentKind = Field(default="codex", description="The kind of worker to pick or create.")
    dedupe_key: str | None = Field(default=None, min_length=1, max_length=MAX_DEDUPE_KEY,
                                   description="Idempotency key, unique per workspace: a repeat replays the "
                                               "earlier result and does nothing.")
    model: str | None = Field(default=None, min_length=1, max_length=200)
    effort: Effort | None = None
    access_mode: AccessMode | None = Field(
        default=None, description="Sandbox of the worker: an existing worker must have it; a new one gets it "
                                  "(default: 'default').")


class SteerTurn(_Action):
    """Add ``prompt`` to the turn running on ``worker_id``."""

    type: Literal["steer_turn"]
    workspace_id: uuid.UUID
    worker_id: uuid.UUID
    prompt: Prompt


class InterruptTurn(_Action):
    """Interrupt the turn running on ``worker_id`` (the worker stays up)."""

    type: Literal["interrupt_turn"]
    workspace_id: uuid.UUID
    worker_id: uuid.UUID


class AckSignal(_Action):
    """Acknowledge a signal."""

    type: Literal["ack_signal"]
    signal_id: str = Field(min_length=1, max_length=200, description="The signal's id, e.g. 'health:<ws>:stalled'.")


Action = Annotated[DispatchTurn | SteerTurn | InterruptTurn | AckSignal, Field(discriminator="type")]


class Contract(WriteSchema):
    """``overseer.dispatch.v1``: a versioned list of actions for the executor."""

    model_config = pydantic.ConfigDict(title="overseer.dispatch.v1")

    version: Literal["overseer.dispatch.v1"]
    actions: list[Action] = Field(min_length=1, max_length=MAX_ACTIONS)


_ACTION_ADAPTER: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(Action)

_CODES = {
    "extra_forbidden": "UNKNOWN_FIELD",
    "missing": "MISSING_FIELD",
    "union_tag_not_found": "MISSING_FIELD",
    "union_tag_invalid": "UNKNOWN_TYPE",
    "literal_error": "INVALID_VALUE",
    "value_error": "INVALID_VALUE",  # WriteSchema: text with a NUL character
    "string_too_long": "TOO_LONG",
    "too_long": "TOO_LONG",
    "string_too_short": "TOO_SHORT",
    "too_short": "TOO_SHORT",
}


def _path(loc: tuple[Any, ...]) -> str:
    out = "$"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _violation(path: str, code: str, message: str) -> dict[str, str]:
    return {"path": path, "code": code, "message": message}


def _from_pydantic(err: Any, data: Any, prefix: tuple[Any, ...] = ()) -> dict[str, str]:
    """Map one pydantic error to a violation (drops the union tag pydantic puts into the location)."""
    loc = prefix + tuple(err["loc"])
    etype = err["type"]
    actions = data.get("actions") if isinstance(data, dict) else None
    if len(loc) >= 3 and loc[0] == "actions" and isinstance(loc[1], int) and isinstance(actions, list):
        item = actions[loc[1]] if loc[1] < len(actions) else None
        if isinstance(item, dict) and item.get("type") == loc[2]:
            loc = loc[:2] + loc[3:]
    if etype in ("union_tag_invalid", "union_tag_not_found"):
        loc = (*loc, "type")
    code = _CODES.get(etype, "WRONG_TYPE")
    message = err["msg"]
    if loc == ("version",) and etype != "missing":
        code, message = "UNKNOWN_VERSION", f"Unknown contract version; expected {VERSION!r}"
    elif loc == ("actions",) and etype == "too_short":
        code, message = "EMPTY_ACTIONS", "The contract has no actions"
    elif loc == ("actions",) and etype == "too_long":
        code, message = "TOO_MANY_ACTIONS", f"At most {MAX_ACTIONS} actions per contract"
    elif etype == "union_tag_invalid":
        message = (f"Unknown action type {err.get('ctx', {}).get('tag')!r}; expected one of "
                   "dispatch_turn, steer_turn, interrupt_turn, ack_signal")
    elif etype == "extra_forbidden":
        message = f"Unknown field {loc[-1]!r}"
    elif etype in ("model_attributes_type", "model_type"):
        message = "Expected a JSON object"
    return _violation(_path(loc), code, message)


def _order(violation: dict[str, str]) -> int:
    m = re.match(r"\$\.actions\[(\d+)\]", violation["path"])
    return int(m.group(1)) if m else -1


def _norm(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _uuid(value: Any) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        return None


def referenced_workspaces(data: Any) -> set[uuid.UUID]:
    """Workspace ids named by the (possibly invalid) contract: what the caller must be able to see."""
    actions = data.get("actions") if isinstance(data, dict) else None
    if not isinstance(actions, list):
        return set()
    return {ws for a in actions if isinstance(a, dict) and (ws := _uuid(a.get("workspace_id"))) is not None}


def _semantic(data: Any, visible: set[uuid.UUID] | None) -> list[dict[str, str]]:
    """Duplicates and visibility, read from the raw actions so they are reported next to type errors."""
    actions = data.get("actions") if isinstance(data, dict) else None
    if not isinstance(actions, list):
        return []
    out: list[dict[str, str]] = []
    seen_ids: dict[str, int] = {}
    seen_keys: dict[tuple[uuid.UUID, str], int] = {}
    for i, a in enumerate(actions):
        if not isinstance(a, dict):
            continue
        action_id = _norm(a.get("action_id"))
        if action_id is not None:
            if action_id in seen_ids:
                out.append(_violation(f"$.actions[{i}].action_id", "DUPLICATE_ACTION_ID",
                                      f"action_id {action_id!r} is already used by $.actions[{seen_ids[action_id]}]"))
            else:
                seen_ids[action_id] = i
        ws = _uuid(a.get("workspace_id"))
        key = _norm(a.get("dedupe_key"))
        if ws is not None and key is not None:
            if (ws, key) in seen_keys:
                out.append(_violation(f"$.actions[{i}].dedupe_key", "DUPLICATE_DEDUPE_KEY",
                                      f"dedupe_key {key!r} is already used in this workspace by "
                                      f"$.actions[{seen_keys[(ws, key)]}]"))
            else:
                seen_keys[(ws, key)] = i
        if ws is not None and visible is not None and ws not in visible:
            out.append(_violation(f"$.actions[{i}].workspace_id", "WORKSPACE_NOT_FOUND", f"workspace {ws} not found"))
    return out


def validate_contract(data: Any, *, visible_workspaces: set[uuid.UUID] | None) -> Contract:
    """Validate a parsed JSON document as ``overseer.dispatch.v1`` and return the typed contract.

    ``visible_workspaces`` is the set of workspace ids the caller may see (``None``: do not check
    visibility, e.g. for an offline check). Pure: no I/O. Raises :class:`ContractInvalid` listing
    every violation (see the module docstring for the codes); nothing of an invalid contract is run.
    """
    violations: list[dict[str, str]] = []
    contract: Contract | None = None
    try:
        contract = Contract.model_validate(data)
    except pydantic.ValidationError as exc:
        violations.extend(_from_pydantic(e, data) for e in exc.errors())
        actions = data.get("actions") if isinstance(data, dict) else None
        if isinstance(actions, list) and len(actions) > MAX_ACTIONS:
            # pydantic stops at the length check: validate the items too, so every violation is listed.
            for i, item in enumerate(actions):
                try:
                    _ACTION_ADAPTER.validate_python(item)
                except pydantic.ValidationError as item_exc:
                    violations.extend(_from_pydantic(e, data, ("actions", i)) for e in item_exc.errors())
    violations.extend(_semantic(data, visible_workspaces))
    violations.sort(key=_order)  # stable: the document's own problems first, then action by action
    if violations or contract is None:
        raise ContractInvalid(violations)
    return contract


def json_schema() -> dict[str, Any]:
    """The contract's JSON Schema (draft 2020-12) generated from :class:`Contract`, ``$id`` = the version."""
    schema = Contract.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": VERSION, **schema}


__all__ = ["VERSION", "AckSignal", "Action", "Contract", "ContractInvalid", "DispatchTurn", "InterruptTurn",
           "SteerTurn", "json_schema", "referenced_workspaces", "validate_contract"]
