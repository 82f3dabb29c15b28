"""The global Supervisor chat (issue 6 item 5): commands, the planner, and news from dispatched work.

A message is posted by a caller (``owner`` = the token subject). Text starting with ``/`` is a command
(:func:`parse_command`); anything else goes to the planner (``ops.planner``), whose contract is validated
(``validate_contract`` against the caller's visible workspaces) and run by the dispatch executor
(``ops.dispatch.execute``, the function behind ``POST /api/v1/ops/dispatch``). Every reply is one
``assistant`` message with a readable ``text`` and a structured ``payload`` (``payload.kind`` says which).

Commands::

    /dispatch --ws a,b --prompt "..." [--kind codex|claude_code]   names or ids; one dispatch_turn each
    /status [ws]            the live picture (from the ops snapshot)
    /feed [needs_input]     the last feed items
    /ack ID                 acknowledge a signal (id or unique prefix)
    /approve ID | /deny ID  answer a pending approval (id or unique prefix)
    /help

Tenancy: each message stores the workspace ids it concerns; a caller reads only its own messages whose
workspaces it can all see (:func:`visible`). The user's message takes the workspace ids of its reply.

News: :class:`ChatRuntime` (runtime component ``"chat"``) remembers the (worker, thread, turn) of every
action a chat message dispatched; a bus listener (fast, non-blocking: it only enqueues) feeds one task
that appends ``system`` messages for ``turn.completed``, ``approval.requested`` and ``question.requested``
of those turns/threads. Events that arrive before the dispatch reply registered its turns are kept in a
small buffer and matched when the turns are registered. It also owns the planner agent (one per node,
started on first use, stopped with the runtime).

Live updates: every message that concerns workspaces appends one ``chat.message`` event per workspace
(``entity_type="chat"``, ``entity_id``/``payload.message_id`` = the message id, ``payload.role``; no text),
so ``GET /api/v1/ops/stream?types=chat.message`` tells a page to fetch ``GET /api/v1/chat/messages?after=``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shlex
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from overseer.auth.tokens import Principal
from overseer.db.engine import Database
from overseer.db.repository import scoped
from overseer.errors import NotFound, OverseerError, ServiceUnavailable
from overseer.events import log as event_log
from overseer.events.bus import PublishedEvent
from overseer.ops import approvals as approvals_service
from overseer.ops import dispatch as dispatch_service
from overseer.ops import read
from overseer.ops.chat_models import ChatMessage
from overseer.ops.contract import VERSION, ContractInvalid, referenced_workspaces, validate_contract
from overseer.ops.models import ApprovalStatus, PendingApproval
from overseer.ops.planner import PlanContext, Planner, PlannerError, PlanNotJson, make_planner
from overseer.ops.projections import OpsWorkspace, Signal
from overseer.workspaces.models import Workspace
from overseer.workspaces.service import scoped_ws

log = logging.getLogger(__name__)

COMPONENT_NAME = "chat"
MAX_TEXT = 20_000
FEED_ITEMS = 10
HISTORY_MAX = 500
TEXT_CLIP = 4000
WATCHED_EVENTS = frozenset({"turn.completed", "approval.requested", "question.requested"})

HELP = """Commands:
  /dispatch --ws a,b --prompt "..." [--kind codex|claude_code]   run a prompt in workspaces (names or ids)
  /status [ws]              what every workspace (or one) is doing
  /feed [needs_input]       the latest activity (or only what waits for you)
  /ack ID                   acknowledge a signal
  /approve ID  |  /deny ID  answer a pending approval (id or a unique prefix)
  /help                     this text
Anything else is a request for the planner, which turns it into dispatch actions."""

COMMANDS = ("dispatch", "status", "feed", "ack", "approve", "deny", "help")


# ============================================================================================ parsing


class CommandError(Exception):
    """A command that cannot be run as written; the message is shown to the user."""


@dataclass(frozen=True)
class Command:
    name: str
    args: dict[str, Any] = field(default_factory=dict)


def parse_command(text: str) -> Command | None:
    """Parse a chat line: None for free text (the planner's), a :class:`Command`, or CommandError."""
    line = text.strip()
    if not line.startswith("/"):
        return None
    try:
        tokens = shlex.split(line)
    except ValueError as exc:
        raise CommandError(f"Cannot parse the command: {exc} (check your quotes)") from exc
    name, rest = tokens[0][1:].lower(), tokens[1:]
    if name not in COMMANDS:
        raise CommandError(f"Unknown command /{name}. Type /help for the list of commands.")
    if name == "dispatch":
        return Command(name, _parse_dispatch(rest))
    if name == "help":
        _max_args(name, rest, 0)
        return Command(name)
    if name == "status":
        _max_args(name, rest, 1)
        return Command(name, {"workspace": rest[0] if rest else None})
    if name == "feed":
        _max_args(name, rest, 1)
        if rest and rest[0].lower().replace("-", "_") not in ("needs_input",):
            raise CommandError(f"/feed takes nothing or 'needs_input', not {rest[0]!r}")
        return Command(name, {"needs_input": bool(rest)})
    _max_args(name, rest, 1)
    if not rest:
        raise CommandError(f"/{name} needs an id: /{name} ID")
    return Command(name, {"id": rest[0]})


def _max_args(name: str, rest: list[str], n: int) -> None:
    flags = [t for t in rest if t.startswith("--")]
    if flags:
        raise CommandError(f"/{name} takes no option {flags[0]!r}. Type /help.")
    if len(rest) > n:
        raise CommandError(f"/{name} takes {'no argument' if n == 0 else f'at most {n} argument'}; "
                           f"got {len(rest)}. Type /help.")


def _parse_dispatch(rest: list[str]) -> dict[str, Any]:
    options: dict[str, str] = {}
    i = 0
    while i < len(rest):
        tok = rest[i]
        if not tok.startswith("--"):
            raise CommandError(f"Unexpected argument {tok!r}: quote the prompt, e.g. --prompt \"fix the tests\"")
        key, eq, value = tok[2:].partition("=")
        if key not in ("ws", "prompt", "kind"):
            raise CommandError(f"Unknown option --{key} for /dispatch (use --ws, --prompt, --kind)")
        if not eq:
            if i + 1 >= len(rest):
                raise CommandError(f"--{key} needs a value")
            i += 1
            value = rest[i]
        if key in options:
            raise CommandError(f"--{key} given twice")
        options[key] = value
        i += 1
    missing = [k for k in ("ws", "prompt") if not options.get(k, "").strip()]
    if missing:
        raise CommandError(f"/dispatch needs {' and '.join('--' + m for m in missing)}: "
                           '/dispatch --ws a,b --prompt "..."')
    workspaces = [w.strip() for w in options["ws"].split(",") if w.strip()]
    if not workspaces:
        raise CommandError("--ws names no workspace: --ws a,b")
    kind = options.get("kind", "codex")
    if kind not in ("codex", "claude_code"):
        raise CommandError(f"--kind must be codex or claude_code, not {kind!r}")
    return {"workspaces": list(dict.fromkeys(workspaces)), "prompt": options["prompt"].strip(), "kind": kind}


# ============================================================================================ storage


def visible(workspace_ids: list[str] | None, principal: Principal) -> bool:
    """May ``principal`` (as the owner) read a message that concerns ``workspace_ids``?"""
    if principal.workspace_ids is None:
        return True
    allowed = {str(w) for w in principal.workspace_ids}
    return all(str(w) in allowed for w in (workspace_ids or []))


def message_dict(m: ChatMessage) -> dict[str, Any]:
    return {"id": m.id, "role": m.role, "text": m.text, "payload": m.payload or {},
            "workspace_ids": list(m.workspace_ids or []), "created_at": m.created_at.isoformat()}


async def add_message(session: AsyncSession, *, owner: str, role: str, text: str,
                      payload: dict[str, Any] | None = None, workspace_ids: list[str] | None = None) -> ChatMessage:
    """Insert one message (and its ``chat.message`` events, one per workspace) in the caller's transaction."""
    ws_ids = [str(w) for w in dict.fromkeys(workspace_ids or [])]
    msg = ChatMessage(owner=owner, role=role, text=text[:200_000], payload=json.loads(json.dumps(payload or {}, default=str)),
                      workspace_ids=ws_ids)
    session.add(msg)
    await session.flush()
    await _announce(session, msg)
    return msg


async def _announce(session: AsyncSession, msg: ChatMessage) -> None:
    for ws in msg.workspace_ids or []:
        await event_log.append(session, workspace_id=uuid.UUID(ws), event_type="chat.message", entity_type="chat",
                               entity_id=msg.id, payload={"message_id": msg.id, "role": msg.role})


async def history(db: Database, principal: Principal, *, after: int | None = None, before: int | None = None,
                  limit: int = 100) -> dict[str, Any]:
    """The caller's messages, oldest first: those after ``after``, or the last ``limit`` (before ``before``)."""
    limit = max(1, min(limit, HISTORY_MAX))
    out: list[ChatMessage] = []
    cursor_after, cursor_before = after, before
    ascending = after is not None
    has_more = False
    async with db.read_session() as session:
        while len(out) <= limit:
            stmt = select(ChatMessage).where(ChatMessage.owner == principal.subject)
            if ascending:
                stmt = stmt.where(ChatMessage.id > (cursor_after or 0)).order_by(ChatMessage.id)
            else:
                if cursor_before is not None:
                    stmt = stmt.where(ChatMessage.id < cursor_before)
                stmt = stmt.order_by(ChatMessage.id.desc())
            batch = list((await session.execute(stmt.limit(limit * 2))).scalars())
            for m in batch:
                if visible(m.workspace_ids, principal):
                    out.append(m)
            if len(batch) < limit * 2:
                break
            if ascending:
                cursor_after = batch[-1].id
            else:
                cursor_before = batch[-1].id
    if len(out) > limit:
        has_more, out = True, out[:limit]
    if not ascending:
        out.reverse()
    return {"messages": [message_dict(m) for m in out], "has_more": has_more,
            "last_id": out[-1].id if out else after}


# ============================================================================================ the service


@dataclass
class Reply:
    text: str
    payload: dict[str, Any]
    workspace_ids: list[str] = field(default_factory=list)
    dispatched: list[dict[str, Any]] = field(default_factory=list)
    """Results of dispatched actions (with worker/thread/turn) for :meth:`ChatRuntime.track`."""


class ChatService:
    """Posts a message and answers it. ``workers``: this node's WorkerManager (None: agent actions fail with
    RUNTIME_UNAVAILABLE); ``runtime``: the ChatRuntime (planner + news), None without the runtime."""

    def __init__(self, db: Database, *, workers: Any | None, runtime: ChatRuntime | None) -> None:
        self.db, self.workers, self.runtime = db, workers, runtime

    async def post(self, principal: Principal, text: str) -> list[dict[str, Any]]:
        async with self.db.session() as session:
            user = await add_message(session, owner=principal.subject, role="user", text=text,
                                     payload={"kind": "command" if text.strip().startswith("/") else "request"})
        try:
            reply = await self.answer(principal, text)
        except Exception as exc:
            log.exception("chat: answering message %s failed", user.id)
            reply = Reply(f"Something went wrong while answering: {type(exc).__name__}", {"kind": "error"})
        reply.payload.setdefault("in_reply_to", user.id)
        async with self.db.session() as session:
            if reply.workspace_ids:
                user.workspace_ids = list(dict.fromkeys(reply.workspace_ids))
                await session.execute(update(ChatMessage).where(ChatMessage.id == user.id)
                                      .values(workspace_ids=user.workspace_ids))
                await _announce(session, user)
            answer = await add_message(session, owner=principal.subject, role="assistant", text=reply.text,
                                       payload=reply.payload, workspace_ids=reply.workspace_ids)
        if self.runtime is not None and reply.dispatched:
            self.runtime.track(principal.subject, answer.id, reply.dispatched)
        return [message_dict(user), message_dict(answer)]

    async def answer(self, principal: Principal, text: str) -> Reply:
        try:
            command = parse_command(text)
        except CommandError as exc:
            return Reply(str(exc), {"kind": "error", "code": "BAD_COMMAND"})
        if command is None:
            return await self._plan(principal, text)
        handler = getattr(self, f"_cmd_{command.name}")
        return await handler(principal, **command.args)  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ helpers

    async def _workspaces(self, session: AsyncSession, principal: Principal) -> list[Workspace]:
        return list((await session.execute(scoped_ws(select(Workspace), principal).order_by(Workspace.name)))
                    .scalars())

    async def _run_contract(self, principal: Principal, data: Any, *, kind: str,
                            extra: dict[str, Any] | None = None) -> Reply:
        """Validate ``data`` like POST /api/v1/ops/dispatch and run it with the same executor."""
        async with self.db.read_session() as session:
            visible_ids = await dispatch_service.visible_workspaces(session, principal=principal,
                                                                    ids=referenced_workspaces(data))
        violations: list[dict[str, str]] = []
        contract = None
        try:
            contract = validate_contract(data, visible_workspaces=visible_ids)
        except ContractInvalid as exc:
            violations = exc.violations
        ws_ids = sorted(str(w) for w in visible_ids)
        base = {"kind": kind, "contract": data, **(extra or {})}
        if violations or contract is None:
            return _refused(base, violations, ws_ids)
        result = await dispatch_service.execute(self.db, self.workers, principal=principal, contract=contract)
        results = [r.model_dump(mode="json") for r in result.results]
        names = await self._names(principal)
        ok = sum(r["status"] == "dispatched" for r in results)
        lines = [f"Ran {len(results)} action{'s' if len(results) != 1 else ''}: {ok} dispatched, "
                 f"{len(results) - ok} failed."]
        for r in results:
            where = names.get(r.get("workspace_id") or "", r.get("workspace_id") or "-")
            if r["status"] == "dispatched":
                lines.append(f"- {r['action_id']} → {where}: dispatched (worker {(r.get('worker_id') or '-')[:8]}, "
                             f"thread {r.get('thread_id') or '-'}, turn {r.get('turn_id') or '-'})")
            else:
                err = r.get("error") or {}
                lines.append(f"- {r['action_id']} → {where}: failed {err.get('code')}: {err.get('message')}")
        dispatched = [r for r in results if r["status"] == "dispatched" and r.get("turn_id")
                      and r["type"] in ("dispatch_turn", "steer_turn")]
        return Reply("\n".join(lines), {**base, "results": results}, ws_ids, dispatched)

    async def _names(self, principal: Principal) -> dict[str, str]:
        async with self.db.read_session() as session:
            return {str(w.id): w.name for w in await self._workspaces(session, principal)}

    # ------------------------------------------------------------------ commands

    async def _cmd_help(self, principal: Principal) -> Reply:
        return Reply(HELP, {"kind": "help", "commands": list(COMMANDS)})

    async def _cmd_dispatch(self, principal: Principal, *, workspaces: list[str], prompt: str, kind: str) -> Reply:
        async with self.db.read_session() as session:
            known = await self._workspaces(session, principal)
        by_id = {str(w.id): w for w in known}
        by_name = {w.name: w for w in known}
        actions: list[dict[str, Any]] = []
        violations: list[dict[str, str]] = []
        for n, ref in enumerate(workspaces):
            ws = by_id.get(ref.lower()) or by_name.get(ref)
            if ws is None:
                violations.append({"path": f"$.actions[{n}].workspace_id", "code": "WORKSPACE_NOT_FOUND",
                                   "message": f"workspace {ref!r} not found"})
                continue
            actions.append({"type": "dispatch_turn", "action_id": f"{n + 1}-{ws.name}"[:100],
                            "workspace_id": str(ws.id), "prompt": prompt, "agent_kind": kind})
        data = {"version": VERSION, "actions": actions}
        if violations:  # refused as a whole, like an invalid contract (paths index the --ws list)
            return _refused({"kind": "dispatch", "contract": data}, violations,
                            sorted({a["workspace_id"] for a in actions}))
        return await self._run_contract(principal, data, kind="dispatch")

    async def _cmd_status(self, principal: Principal, *, workspace: str | None) -> Reply:
        async with self.db.read_session() as session:
            snap = await read.snapshot(session, principal=principal)
        rows = snap["workspaces"]
        if workspace is not None:
            rows = [w for w in rows if w["id"] == workspace.lower() or w["name"] == workspace]
            if not rows:
                return Reply(f"No workspace {workspace!r}. /status lists them all.",
                             {"kind": "error", "code": "WORKSPACE_NOT_FOUND"})
        ids = {w["id"] for w in rows}
        approvals = [a for a in snap["pending_approvals"] if a["workspace_id"] in ids]
        questions = [q for q in snap["open_questions"] if q["workspace_id"] in ids]
        lines = []
        for w in rows:
            counts: dict[str, int] = w["threads_by_status"]  # every thread (the listed ones are capped)
            bits = [w["health"]]
            if w["current_task"]:
                bits.append(f"task: {_clip(w['current_task'], 120)}")
            if w["next_step"]:
                bits.append(f"next: {_clip(w['next_step'], 80)}")
            if w["blockers"]:
                bits.append(f"{len(w['blockers'])} blocker(s)")
            if w["unacked_signals"]:
                bits.append(f"{w['unacked_signals']} unacked signal(s)")
            if counts:
                bits.append("threads: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
            lines.append(f"{w['name']}: " + " · ".join(bits))
        if not rows:
            lines.append("No workspaces.")
        # The snapshot lists the oldest requests only; the totals are in its counts.
        n_approvals = snap["counts"]["pending_approvals"] if workspace is None else len(approvals)
        n_questions = snap["counts"]["open_questions"] if workspace is None else len(questions)
        if approvals:
            lines.append(f"{n_approvals} approval(s) waiting: " + ", ".join(
                f"{a['id'][:8]} ({_clip(a['command'] or a['kind'], 60)})" for a in approvals[:10])
                + " — /approve ID or /deny ID")
        if questions:
            lines.append(f"{n_questions} question(s) waiting.")
        payload = {"kind": "status", "workspaces": [
            {k: w[k] for k in ("id", "name", "health", "current_task", "next_step", "blockers", "unacked_signals",
                               "last_activity_at", "active_thread_id", "threads_by_status")} | {"threads": w["threads_total"]}
            for w in rows],
            "pending_approvals": [a["id"] for a in approvals], "open_questions": [q["id"] for q in questions]}
        return Reply("\n".join(lines), payload, sorted(ids))

    async def _cmd_feed(self, principal: Principal, *, needs_input: bool) -> Reply:
        async with self.db.read_session() as session:
            feed = await read.feed(session, principal=principal, limit=FEED_ITEMS, needs_input=needs_input)
            names = {str(w.id): w.name for w in await self._workspaces(session, principal)}
        items = feed["items"]
        lines = [f"#{it['id']} {names.get(it['workspace_id'], it['workspace_id'][:8])} {it['event_type']}"
                 + (f": {s}" if (s := _summary(it)) else "") for it in reversed(items)]
        head = "Waiting for you:" if needs_input else f"Latest {len(items)} item(s):"
        text = head + "\n" + "\n".join(lines) if items else ("Nothing waits for you." if needs_input
                                                              else "No activity yet.")
        return Reply(text, {"kind": "feed", "needs_input": needs_input, "items": items},
                     sorted({it["workspace_id"] for it in items}))

    async def _cmd_ack(self, principal: Principal, *, id: str) -> Reply:
        async with self.db.read_session() as session:
            exact = (await session.execute(scoped(select(Signal.id).where(Signal.id == id), Signal, principal))
                     ).scalar_one_or_none()
            if exact is None:
                rows = (await session.execute(scoped(select(Signal.id), Signal, principal)
                                              .where(Signal.acked_at.is_(None), Signal.id.startswith(id, autoescape=True))
                                              .limit(3))).scalars().all()
                if len(rows) != 1:
                    why = "no unacknowledged signal" if not rows else "more than one signal"
                    return Reply(f"Cannot ack {id!r}: {why} matches. /feed or /status show the signals.",
                                 {"kind": "error", "code": "NOT_FOUND" if not rows else "AMBIGUOUS"})
                exact = rows[0]
        try:
            async with self.db.session() as session:
                sig = await read.ack_signal(session, principal=principal, signal_id=exact)
                data = read.signal_dict(sig)
        except NotFound:
            return Reply(f"Cannot ack {id!r}: no such signal.", {"kind": "error", "code": "NOT_FOUND"})
        return Reply(f"Acknowledged {data['kind']} signal {data['id']}: {data['title']}",
                     {"kind": "ack", "signal": data}, [data["workspace_id"]])

    async def _cmd_approve(self, principal: Principal, *, id: str) -> Reply:
        return await self._decide(principal, id, "accept")

    async def _cmd_deny(self, principal: Principal, *, id: str) -> Reply:
        return await self._decide(principal, id, "decline")

    async def _decide(self, principal: Principal, ref: str, decision: str) -> Reply:
        verb = "approve" if decision == "accept" else "deny"
        async with self.db.read_session() as session:
            pending = (await session.execute(
                scoped(select(PendingApproval), PendingApproval, principal)
                .where(PendingApproval.status == ApprovalStatus.pending))).scalars().all()
        matches = [a for a in pending if str(a.id) == ref.lower()] or \
                  [a for a in pending if str(a.id).startswith(ref.lower())]
        if len(matches) != 1:
            why = "no pending approval" if not matches else f"{len(matches)} pending approvals"
            return Reply(f"Cannot {verb} {ref!r}: {why} match{'es' if len(matches) == 1 else ''}. "
                         "/feed needs_input lists what waits.",
                         {"kind": "error", "code": "NOT_FOUND" if not matches else "AMBIGUOUS"})
        approval = matches[0]

        def manager() -> Any:
            if self.workers is None:
                raise ServiceUnavailable("The agent runtime is not running on this node", code="RUNTIME_UNAVAILABLE")
            return self.workers

        ws = [str(approval.workspace_id)]
        refs = {"approval_id": str(approval.id), "decision": decision, "worker_id": str(approval.worker_id),
                "thread_id": approval.thread_id, "turn_id": approval.turn_id, "command": approval.command}
        try:
            row = await approvals_service.decide(self.db, manager, principal=principal, approval_id=approval.id,
                                                 decision=decision)
        except OverseerError as exc:
            return Reply(f"Could not {verb} {str(approval.id)[:8]}: {exc.code}: {exc.message}",
                         {"kind": "approval", **refs, "error": {"code": exc.code, "message": exc.message}}, ws)
        what = _clip(approval.command or approval.kind, 200)
        return Reply(f"{'Approved' if decision == 'accept' else 'Denied'} {str(approval.id)[:8]} ({what}).",
                     {"kind": "approval", **refs, "status": row.status}, ws)

    # ------------------------------------------------------------------ free text

    async def _plan(self, principal: Principal, text: str) -> Reply:
        planner = self.runtime.planner if self.runtime is not None else None
        if planner is None:
            why = ("no planner is configured (OVERSEER_PLANNER_AGENT=none)" if self.runtime is not None
                   else "the agent runtime is not running on this node")
            return Reply(f"I cannot plan free text: {why}. Use /dispatch, or /help for the commands.",
                         {"kind": "planner_error", "code": "PLANNER_UNAVAILABLE"})
        async with self.db.read_session() as session:
            workspaces = await self._workspaces(session, principal)
            ops = {o.workspace_id: o for o in (await session.execute(
                scoped(select(OpsWorkspace), OpsWorkspace, principal))).scalars()}
        context = PlanContext(owner=principal.subject, workspaces=[
            {"id": str(w.id), "name": w.name,
             "current_task": ops[w.id].current_task if w.id in ops else None,
             "health": ops[w.id].health if w.id in ops else "healthy"} for w in workspaces])
        try:
            data = await planner.plan(text, context)
        except PlanNotJson as exc:
            violation = {"path": "$", "code": "INVALID_JSON", "message": str(exc)}
            return Reply(f"Refused: the planner did not answer with a contract, nothing was run.\n  $  INVALID_JSON  "
                         f"{exc}", {"kind": "plan_invalid", "violations": [violation], "raw": exc.raw})
        except PlannerError as exc:
            return Reply(f"The planner failed: {exc}", {"kind": "planner_error", "code": "PLANNER_FAILED",
                                                        "message": str(exc)})
        return await self._run_contract(principal, data, kind="plan")


def _refused(base: dict[str, Any], violations: list[dict[str, str]], ws_ids: list[str]) -> Reply:
    lines = [f"  {v['path']}  {v['code']}  {v['message']}" for v in violations]
    return Reply("Refused: the action contract is invalid, nothing was run.\n" + "\n".join(lines),
                 {**base, "kind": f"{base['kind']}_invalid", "violations": violations}, ws_ids)


def _clip(text: Any, n: int) -> str:
    s = str(text or "").strip().replace("\n", " ")
    return s if len(s) <= n else s[: n - 1] + "…"


def _summary(item: dict[str, Any]) -> str:
    p = item.get("payload") or {}
    for key in ("command", "final_message", "prompt", "error", "reason", "to"):
        if p.get(key):
            return _clip(p[key], 120)
    return ""


# ============================================================================================ runtime


@dataclass(frozen=True)
class Track:
    owner: str
    message_id: int
    workspace_id: str
    worker_id: str | None
    thread_id: str | None
    turn_id: str | None


class _Bounded(OrderedDict[str, Track]):
    def __init__(self, maxlen: int) -> None:
        super().__init__()
        self.maxlen = maxlen

    def put(self, key: str, value: Track) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.maxlen:
            self.popitem(last=False)


class ChatRuntime:
    """Runtime component ``"chat"``: the planner of this node and the news from chat-dispatched work."""

    TRACK_MAX = 10_000
    BUFFER_MAX = 2_000

    def __init__(self, *, db: Database, settings: Any, planner: Planner | None) -> None:
        self.db, self.settings, self.planner = db, settings, planner
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._running = False
        self._listening = False
        self.turns = _Bounded(self.TRACK_MAX)
        self.threads = _Bounded(self.TRACK_MAX)
        self._buffer: deque[PublishedEvent] = deque(maxlen=self.BUFFER_MAX)

    async def start(self) -> None:
        if not self._listening:
            self.db.bus.add_listener(self._on_event)
            self._listening = True
        self._running = True
        self._task = asyncio.create_task(self._run(), name="overseer-chat")

    async def stop(self) -> None:
        self._running = False
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), 5.0)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.planner is not None:
            await self.planner.stop()

    async def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until every queued event and registration has been handled (tests)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout_s)

    # the bus listener: synchronous, fast, never raises
    def _on_event(self, ev: PublishedEvent) -> None:
        if self._running and ev.event_type in WATCHED_EVENTS and ev.entity_type == "worker":
            self._queue.put_nowait(("event", ev))

    def track(self, owner: str, message_id: int, results: list[dict[str, Any]]) -> None:
        """Remember the worker/thread/turn of each dispatched result of chat message ``message_id``."""
        tracks = [Track(owner, message_id, str(r.get("workspace_id")), r.get("worker_id"), r.get("thread_id"),
                        r.get("turn_id")) for r in results if r.get("workspace_id")]
        if tracks and self._running:
            self._queue.put_nowait(("track", tracks))

    async def _run(self) -> None:
        while True:
            kind, item = await self._queue.get()
            try:
                if kind == "track":
                    for t in item:
                        if t.turn_id:
                            self.turns.put(t.turn_id, t)
                        if t.thread_id:
                            self.threads.put(t.thread_id, t)
                    waiting = sorted(self._buffer, key=lambda e: e.id)
                    self._buffer.clear()
                    for ev in waiting:
                        # Early events: a completion only by its exact turn; a request (approval or
                        # question) also by its thread, because with fast ingest it can commit before
                        # the dispatch reply has registered the turn.
                        await self._handle(ev, by_thread=ev.event_type != "turn.completed")
                else:
                    await self._handle(item, by_thread=True)
            except Exception:
                log.exception("chat: handling %s failed", kind)
            finally:
                self._queue.task_done()

    def _match(self, ev: PublishedEvent, *, by_thread: bool) -> Track | None:
        """The chat dispatch ``ev`` belongs to: its turn; for requests also its thread, but only a
        dispatch whose turn is still open (or unknown): a request of a NEW turn on a thread an earlier,
        finished chat dispatch used waits in the buffer for its own dispatch to register, instead of
        being told as news of the old one."""
        p = ev.payload
        turn_id, thread_id = p.get("turn_id"), p.get("thread_id")
        if ev.event_type == "turn.completed":
            return self.turns.pop(turn_id, None) if turn_id else None
        track = self.turns.get(turn_id) if turn_id else None
        if track is None and by_thread and thread_id:
            candidate = self.threads.get(thread_id)
            if candidate is not None and (candidate.turn_id is None or candidate.turn_id in self.turns):
                track = candidate
        return track

    async def _handle(self, ev: PublishedEvent, *, by_thread: bool) -> None:
        track = self._match(ev, by_thread=by_thread)
        if track is None:
            self._buffer.append(ev)  # its dispatch reply may not have registered the turn yet
            return
        async with self.db.session() as session:
            ws = await session.get(Workspace, uuid.UUID(track.workspace_id))
            name = ws.name if ws is not None else track.workspace_id[:8]
            text, payload = _news(ev, name)
            payload.update({"event_id": ev.id, "event_type": ev.event_type, "in_reply_to": track.message_id,
                            "workspace_id": track.workspace_id, "worker_id": ev.entity_id,
                            "thread_id": ev.payload.get("thread_id"), "turn_id": ev.payload.get("turn_id")})
            await add_message(session, owner=track.owner, role="system", text=text, payload=payload,
                              workspace_ids=[track.workspace_id])


def _news(ev: PublishedEvent, name: str) -> tuple[str, dict[str, Any]]:
    p = ev.payload
    if ev.event_type == "turn.completed":
        status = p.get("status") or "completed"
        final, error = p.get("final_message"), p.get("error")
        if status == "completed":
            text = f"{name}: turn completed." + (f"\n{_clip_block(final)}" if final else "")
        elif status == "failed":
            text = f"{name}: turn failed: {_clip_block(error or 'unknown error')}"
        else:
            text = f"{name}: turn {status}." + (f" {_clip_block(error)}" if error else "")
        return text, {"kind": "turn.completed", "status": status, "final_message": _clip_block(final) if final
                      else None, "error": error}
    if ev.event_type == "approval.requested":
        aid = str(p.get("approval_id"))
        what = p.get("command") or p.get("tool_name") or p.get("approval_kind") or "an action"
        text = (f"{name}: approval needed for `{_clip(what, 300)}` (approval {aid}). "
                f"Reply /approve {aid[:8]} or /deny {aid[:8]}.")
        return text, {"kind": "approval.requested", "approval_id": aid, "command": p.get("command"),
                      "approval_kind": p.get("approval_kind"), "cwd": p.get("cwd"), "reason": p.get("reason"),
                      "diff": _clip_block(p.get("diff")) if p.get("diff") else None}
    qid = str(p.get("question_id"))
    questions = p.get("questions") or []
    asked = "; ".join(_clip(q.get("question"), 200) for q in questions if isinstance(q, dict)) or "a question"
    text = (f"{name}: the agent asks: {asked} (question {qid}; answer it in the operations panel or "
            f"POST /api/v1/ops/questions/{qid}/answer).")
    return text, {"kind": "question.requested", "question_id": qid, "questions": questions}


def _clip_block(text: Any) -> str:
    s = str(text or "").strip()
    return s if len(s) <= TEXT_CLIP else s[: TEXT_CLIP - 1] + "…"


def register(runtime: Any) -> ChatRuntime:
    """Add the chat component (planner + news) to ``runtime`` as ``"chat"``; returns it. Register it after
    ``"workers"`` so it stops first."""
    component = ChatRuntime(db=runtime.db, settings=runtime.settings, planner=make_planner(runtime.settings))
    runtime.add(COMPONENT_NAME, component)
    return component


def service_for(db: Database, runtime: Any | None) -> ChatService:
    """The ChatService of a node: its WorkerManager and ChatRuntime when the runtime runs."""
    components = runtime.components if runtime is not None else {}
    return ChatService(db, workers=components.get("workers"), runtime=components.get(COMPONENT_NAME))


__all__ = ["COMMANDS", "HELP", "ChatRuntime", "ChatService", "Command", "CommandError", "add_message", "history",
           "message_dict", "parse_command", "register", "service_for", "visible"]
