"""The operations state and the one pure reducer that builds it (CM-001, CM-002).

``reduce(state, event) -> state`` is the only code that turns events into the live picture of
workspaces, threads and signals. It does no I/O and reads no clock: everything it needs is in the
event (type, ids, payload, ``created_at``). The live path (each committed transaction, see
``ops.pipeline``) and restore (replaying the log) both call it, so they cannot disagree.

For speed, ``reduce`` updates ``state`` in place and returns it; it records the keys it touched in
``state.dirty`` so the pipeline writes back only those rows. Callers that need the old value copy
first (``OpsState.copy()``).

Thread status: idle | running | waiting_input | failed | completed | stalled (epic "MVP Scope" 2).
Workspace health: healthy | stale | disconnected. Signal kinds: needs_approval, needs_input, failed,
completed, stalled, disconnected (epic 5). A signal's id is stable (dedupe key): raising it again
reopens it (``acked_at`` cleared, ``raise_count`` + 1).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

SIGNAL_SEVERITY = {"needs_approval": 90, "needs_input": 85, "failed": 80, "disconnected": 70, "stalled": 60,
                   "completed": 10}
NEEDS_INPUT_KINDS = frozenset({"needs_approval", "needs_input"})
TASK_MAX = 300


class EventLike(Protocol):
    """What the reducer reads of an event (a row of ``events`` or a published event)."""

    @property
    def id(self) -> int: ...
    @property
    def workspace_id(self) -> Any: ...
    @property
    def event_type(self) -> str: ...
    @property
    def entity_type(self) -> str: ...
    @property
    def entity_id(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...
    @property
    def created_at(self) -> datetime: ...


@dataclass
class ThreadView:
    thread_id: str
    workspace_id: str
    worker_id: str | None = None
    agent_kind: str | None = None
    status: str = "idle"
    current_task: str | None = None
    last_activity_at: datetime | None = None
    next_step: str | None = None
    blockers: list[dict[str, Any]] = field(default_factory=list)
    active_turn_id: str | None = None
    last_message: str | None = None
    turn_count: int = 0
    job_id: str | None = None
    last_event_id: int = 0


@dataclass
class WorkspaceView:
    workspace_id: str
    health: str = "healthy"
    current_task: str | None = None
    last_activity_at: datetime | None = None
    next_step: str | None = None
    blockers: list[dict[str, Any]] = field(default_factory=list)
    active_thread_id: str | None = None
    last_event_id: int = 0


@dataclass
class SignalView:
    id: str
    workspace_id: str
    kind: str
    title: str
    context: dict[str, Any]
    thread_id: str | None = None
    worker_id: str | None = None
    job_id: str | None = None
    is_open: bool = True
    raised_at: datetime | None = None
    first_raised_at: datetime | None = None
    raise_count: int = 1
    acked_at: datetime | None = None
    acked_by: str | None = None
    severity: int = 0
    last_event_id: int = 0


@dataclass
class OpsState:
    workspaces: dict[str, WorkspaceView] = field(default_factory=dict)
    threads: dict[str, ThreadView] = field(default_factory=dict)
    signals: dict[str, SignalView] = field(default_factory=dict)
    worker_threads: dict[str, str] = field(default_factory=dict)
    """worker id -> its current thread id (workers carry one thread at a time)."""
    dirty: set[tuple[str, str]] = field(default_factory=set)

    def copy(self) -> OpsState:
        return copy.deepcopy(self)

    def comparable(self) -> tuple[Any, ...]:
        """Everything but bookkeeping, for equality checks (live vs replayed)."""
        return (self.workspaces, self.threads, self.signals)


# ------------------------------------------------------------------------------------------ helpers

_KEYS: dict[Any, str] = {}
"""``str(workspace_id)`` by UUID (a handful of workspaces, millions of events): ``UUID.__str__`` is
Python code, the dict lookup is not. Bounded: cleared when it grows past 10,000 entries."""


_LAST_KEY: list[Any] = [None, ""]
"""The last ``(value, text)`` of :func:`_key`: a batch's events share one UUID object per workspace, and
an identity check skips ``UUID.__hash__`` (Python code) on the dict lookup."""


def _key(value: Any) -> str:
    last = _LAST_KEY
    if value is last[0]:
        return last[1]  # type: ignore[no-any-return]
    key = _KEYS.get(value)
    if key is None:
        if len(_KEYS) > 10_000:
            _KEYS.clear()
        key = _KEYS[value] = str(value)
    last[0], last[1] = value, key
    return key


def _ws(state: OpsState, ev: EventLike) -> WorkspaceView:
    key = _key(ev.workspace_id)
    ws = state.workspaces.get(key)
    if ws is None:
        ws = state.workspaces[key] = WorkspaceView(workspace_id=key)
    state.dirty.add(("workspace", key))
    ws.last_event_id = ev.id
    return ws


def _thread_key(state: OpsState, ev: EventLike) -> str | None:
    p = ev.payload
    tid = p.get("thread_id")
    if tid:
        return str(tid)
    worker = p.get("worker_id") or (ev.entity_id if ev.entity_type == "worker" else None)
    return state.worker_threads.get(str(worker)) if worker else None


def _thread(state: OpsState, ev: EventLike, thread_id: str) -> ThreadView:
    th = state.threads.get(thread_id)
    if th is None:
        th = state.threads[thread_id] = ThreadView(thread_id=thread_id, workspace_id=_key(ev.workspace_id))
    state.dirty.add(("thread", thread_id))
    th.last_event_id = ev.id
    if ev.entity_type == "worker":
        th.worker_id = ev.entity_id
        state.worker_threads[ev.entity_id] = thread_id
        th.agent_kind = ev.payload.get("agent_kind") or th.agent_kind
    return th


def _touch(state: OpsState, th: ThreadView | None, ws: WorkspaceView, ev: EventLike) -> None:
    """Every agent event counts as liveness (CM-003): activity clears stale and stalled."""
    ws.last_activity_at = ev.created_at
    if ws.health != "healthy":
        ws.health = "healthy"
    if th is not None:
        th.last_activity_at = ev.created_at
        ws.active_thread_id = th.thread_id
        if th.status == "stalled" and th.active_turn_id:
            th.status = "running"
            _settle(state, ev, f"stalled:{th.thread_id}")


def _raise(state: OpsState, ev: EventLike, sid: str, kind: str, title: str, context: dict[str, Any],
           *, thread_id: str | None = None, worker_id: str | None = None) -> None:
    sig = state.signals.get(sid)
    if sig is None:
        sig = state.signals[sid] = SignalView(
            id=sid, workspace_id=str(ev.workspace_id), kind=kind, title=title, context=context,
            thread_id=thread_id, worker_id=worker_id, raised_at=ev.created_at, first_raised_at=ev.created_at,
            severity=SIGNAL_SEVERITY.get(kind, 0))
    else:  # raising it again reopens it
        sig.is_open = True
        sig.acked_at = None
        sig.acked_by = None
        sig.raise_count += 1
        sig.raised_at = ev.created_at
        sig.title = title
        sig.context = context
    sig.last_event_id = ev.id
    state.dirty.add(("signal", sid))


def _settle(state: OpsState, ev: EventLike, sid: str) -> None:
    """The condition behind a signal is over (it stays listed until acknowledged)."""
    sig = state.signals.get(sid)
    if sig is not None and sig.is_open:
        sig.is_open = False
        sig.last_event_id = ev.id
        state.dirty.add(("signal", sid))


def _drop_blocker(th: ThreadView | None, ws: WorkspaceView, ref: str) -> None:
    for holder in (th, ws):
        if holder is not None:
            holder.blockers = [b for b in holder.blockers if b.get("ref") != ref]


def _add_blocker(th: ThreadView | None, ws: WorkspaceView, blocker: dict[str, Any]) -> None:
    for holder in (th, ws):
        if holder is not None and all(b.get("ref") != blocker["ref"] for b in holder.blockers):
            holder.blockers = [*holder.blockers, blocker]


def _clip(text: Any, n: int = TASK_MAX) -> str | None:
    if text is None:
        return None
    s = str(text).strip()
    return s if len(s) <= n else s[: n - 1] + "…"


# ------------------------------------------------------------------------------------------ reducer

_STATEFUL_TYPES = frozenset({
    "thread.started", "turn.started", "plan.updated", "item.started", "approval.requested", "question.requested",
    "approval.decided", "approval.expired", "question.answered", "question.expired", "turn.completed",
    "agent.exited", "worker.state_changed", "worker.restart_exhausted", "thread.lost"})
"""Event types ``reduce`` does more for than mark activity (the branches below); every other type of a
worker/approval/question/thread entity only counts as liveness."""

def reduce(state: OpsState, ev: EventLike) -> OpsState:
    """Apply one committed event to ``state`` (in place) and return it. Pure: no I/O, no clock."""
    t = ev.event_type
    p = ev.payload
    if t in ("workspace.created",):
        _ws(state, ev)
        return state
    if t == "signal.acked":
        sig = state.signals.get(ev.entity_id)
        if sig is not None:
            sig.acked_at = ev.created_at
            sig.acked_by = p.get("by")
            sig.last_event_id = ev.id
            state.dirty.add(("signal", sig.id))
        return state
    if t.startswith("health."):
        return _reduce_health(state, ev)
    if ev.entity_type not in ("worker", "approval", "question", "thread"):
        return state

    ws = _ws(state, ev)
    tid = _thread_key(state, ev)
    th = _thread(state, ev, tid) if tid else None
    _touch(state, th, ws, ev)
    if t not in _STATEFUL_TYPES:  # text deltas, items, token usage, status: liveness only
        return state
    worker_id = p.get("worker_id") or (ev.entity_id if ev.entity_type == "worker" else None)

    if t == "thread.started" and th is not None:
        if th.status in ("failed", "stalled") and not th.active_turn_id:
            th.status = "idle"
    elif t == "turn.started" and th is not None:
        th.status = "running"
        th.active_turn_id = ev.payload.get("turn_id")
        th.turn_count += 1
        task = _clip(p.get("prompt"))
        if task:
            th.current_task = ws.current_task = task
        th.next_step = None
        _settle(state, ev, f"stalled:{th.thread_id}")
    elif t == "plan.updated" and th is not None:
        steps = p.get("steps") or []
        pending = [s for s in steps if str(s.get("status", "")).lower() not in ("completed", "done")]
        th.next_step = ws.next_step = _clip(pending[0].get("step")) if pending else None
    elif t == "item.started" and th is not None:
        if p.get("item_type") == "command" and p.get("command"):
            th.next_step = ws.next_step = _clip(f"running: {p.get('command')}", 200)
        elif p.get("item_type") == "file_change":
            th.next_step = ws.next_step = "applying a file change"
    elif t == "approval.requested":
        ref = f"approval:{p.get('approval_id')}"
        what = p.get("command") or p.get("tool_name") or "a file change"
        _add_blocker(th, ws, {"ref": ref, "kind": "approval", "text": _clip(f"approve: {what}", 200),
                              "since": ev.created_at.isoformat()})
        if th is not None:
            th.status = "waiting_input"
        _raise(state, ev, f"needs_approval:{p.get('approval_id')}", "needs_approval", _clip(f"Approve: {what}", 200) or "",
               {"approval_id": p.get("approval_id"), "command": p.get("command"), "diff": _clip(p.get("diff"), 4000),
                "cwd": p.get("cwd"), "reason": p.get("reason"), "tool_name": p.get("tool_name"),
                "approval_kind": p.get("approval_kind"), "turn_id": p.get("turn_id"),
                "task": th.current_task if th else None, "since": ev.created_at.isoformat()},
               thread_id=tid, worker_id=worker_id)
    elif t == "question.requested":
        ref = f"question:{p.get('question_id')}"
        qs = p.get("questions") or []
        text = qs[0].get("question") if qs and isinstance(qs[0], dict) else "a question"
        _add_blocker(th, ws, {"ref": ref, "kind": "question", "text": _clip(f"answer: {text}", 200),
                              "since": ev.created_at.isoformat()})
        if th is not None:
            th.status = "waiting_input"
        _raise(state, ev, f"needs_input:{p.get('question_id')}", "needs_input", _clip(f"Answer: {text}", 200) or "",
               {"question_id": p.get("question_id"), "questions": qs, "turn_id": p.get("turn_id"),
                "task": th.current_task if th else None, "since": ev.created_at.isoformat()},
               thread_id=tid, worker_id=worker_id)
    elif t in ("approval.decided", "approval.expired"):
        _drop_blocker(th, ws, f"approval:{ev.entity_id}")
        _settle(state, ev, f"needs_approval:{ev.entity_id}")
        if th is not None and th.status == "waiting_input" and not th.blockers:
            th.status = "running" if th.active_turn_id else "idle"
    elif t in ("question.answered", "question.expired"):
        _drop_blocker(th, ws, f"question:{ev.entity_id}")
        _settle(state, ev, f"needs_input:{ev.entity_id}")
        if th is not None and th.status == "waiting_input" and not th.blockers:
            th.status = "running" if th.active_turn_id else "idle"
    elif t == "turn.completed" and th is not None:
        status = p.get("status")
        turn_id = p.get("turn_id")
        th.active_turn_id = None
        th.last_message = _clip(p.get("final_message"), 2000) or th.last_message
        th.next_step = None
        th.blockers = []
        ws.blockers = [b for b in ws.blockers if b.get("kind") not in ("approval", "question")]
        _settle(state, ev, f"stalled:{th.thread_id}")
        if status == "failed":
            th.status = "failed"
            _raise(state, ev, f"failed:{th.thread_id}:{turn_id}", "failed",
                   _clip(f"Turn failed: {p.get('error') or 'unknown error'}", 200) or "",
                   {"error": _clip(p.get("error"), 2000), "turn_id": turn_id, "task": th.current_task,
                    "since": ev.created_at.isoformat()}, thread_id=tid, worker_id=worker_id)
        elif status == "interrupted":
            th.status = "idle"
        else:
            th.status = "completed"
            _raise(state, ev, f"completed:{th.thread_id}:{turn_id}", "completed",
                   _clip(f"Done: {th.current_task or 'turn'}", 200) or "",
                   {"final_message": th.last_message, "turn_id": turn_id, "task": th.current_task,
                    "since": ev.created_at.isoformat()}, thread_id=tid, worker_id=worker_id)
    elif t == "agent.exited" and not p.get("expected"):
        if th is not None:
            th.status = "failed"
            th.active_turn_id = None
        ws.health = "disconnected"
        _raise(state, ev, f"disconnected:{worker_id}", "disconnected", "Agent process exited unexpectedly",
               {"returncode": p.get("returncode"), "signal": p.get("signal"), "worker_id": worker_id,
                "task": th.current_task if th else None, "since": ev.created_at.isoformat()},
               thread_id=tid, worker_id=worker_id)
    elif t == "worker.state_changed" and p.get("to") in ("RUNNING", "IDLE") and worker_id:
        _settle(state, ev, f"disconnected:{worker_id}")
        _settle(state, ev, f"failed:{worker_id}:restarts")
    elif t == "worker.restart_exhausted" and worker_id:
        _raise(state, ev, f"failed:{worker_id}:restarts", "failed",
               _clip(f"Restart limit reached: {p.get('last_error') or 'the agent keeps failing'}", 200) or "",
               {"error": _clip(p.get("last_error"), 2000), "restarts": p.get("restarts"),
                "window_s": p.get("window_s"), "worker_id": worker_id,
                "task": th.current_task if th else None, "since": ev.created_at.isoformat()},
               thread_id=tid, worker_id=worker_id)
    elif t == "thread.lost" and th is not None:
        # The agent had no saved conversation for this thread (killed before it saved it): the worker
        # goes on in ``new_thread_id`` without this thread's context (runtime.workers._attach_thread).
        th.status = "failed"
        th.active_turn_id = None
        new = str(p.get("new_thread_id") or "")
        _raise(state, ev, f"failed:{th.thread_id}:lost", "failed",
               f"Conversation lost: the agent had not saved it; continuing in new thread {new[:8]}",
               {"error": _clip(p.get("error"), 2000), "new_thread_id": new or None,
                "turn_interrupted": bool(p.get("turn_interrupted")), "task": th.current_task,
                "since": ev.created_at.isoformat()}, thread_id=th.thread_id, worker_id=worker_id)
    return state


def _reduce_health(state: OpsState, ev: EventLike) -> OpsState:
    """Signals and health from the pull side of the loop (CM-003): stalled, stale, disconnected."""
    p = ev.payload
    ws = _ws(state, ev)
    tid = p.get("thread_id")
    th = state.threads.get(str(tid)) if tid else None
    if th is not None:
        state.dirty.add(("thread", th.thread_id))
        th.last_event_id = ev.id
    since = p.get("since")
    if ev.event_type == "health.stalled" and th is not None:
        th.status = "stalled"
        _raise(state, ev, f"stalled:{th.thread_id}", "stalled",
               _clip(f"No progress for {int(p.get('silent_s', 0))} s", 200) or "",
               {"silent_s": p.get("silent_s"), "task": th.current_task, "turn_id": th.active_turn_id,
                "since": since}, thread_id=th.thread_id, worker_id=th.worker_id)
    elif ev.event_type == "health.workspace_stale":
        ws.health = "stale"
    elif ev.event_type == "health.disconnected":
        ws.health = "disconnected"
        worker_id = p.get("worker_id")
        if th is not None:
            th.status = "failed"
            th.active_turn_id = None
        _raise(state, ev, f"disconnected:{worker_id}", "disconnected",
               _clip(p.get("reason") or "Agent unreachable", 200) or "",
               {"worker_id": worker_id, "reason": p.get("reason"), "since": since,
                "task": th.current_task if th else None},
               thread_id=th.thread_id if th else None, worker_id=worker_id)
    return state


def _is_liveness_type(t: str) -> bool:
    """True for an event type ``reduce`` does no more for than mark activity (cached per type)."""
    live = _LIVENESS_TYPES.get(t)
    if live is None:
        if len(_LIVENESS_TYPES) > 1000:  # event types are a small set; bound it anyway
            _LIVENESS_TYPES.clear()
        live = _LIVENESS_TYPES[t] = not (t in _STATEFUL_TYPES or t == "workspace.created" or t == "signal.acked"
                                         or t.startswith("health."))
    return live


_LIVENESS_TYPES: dict[str, bool] = {}


def reduce_many(state: OpsState, events: Sequence[EventLike]) -> OpsState:
    """Apply ``events`` (id order) to ``state``: the same result, dirty set included, as ``reduce`` on
    each in turn (tests/unit/test_reducer.py checks it with Hypothesis), with less work for a burst.

    Of a run of consecutive liveness-only events (:func:`_is_liveness_type`: text deltas, status,
    token usage) with one *liveness key* (workspace, entity type and id, and the payload's thread id,
    worker id and agent kind: what such an event writes its values under), only the first and the
    last are reduced. The first
    does what activity changes (a stalled thread runs again); every later one only writes the same
    fields (last event id, last activity time) with its own values, so the run's last event leaves
    them as all of them would."""
    run_key: tuple[Any, ...] | None = None
    held: EventLike | None = None  # the latest event of the current run, not reduced yet
    types = _LIVENESS_TYPES
    for ev in events:
        live = types.get(ev.event_type)  # the liveness key, inline (it runs for every event)
        if live is None:
            live = _is_liveness_type(ev.event_type)
        if live:
            p = ev.payload
            key: tuple[Any, ...] | None = (ev.workspace_id, ev.entity_type, ev.entity_id, p.get("thread_id"),
                                           p.get("worker_id"), p.get("agent_kind"))
        else:
            key = None
        if key is not None and key == run_key:
            held = ev
            continue
        if held is not None:
            reduce(state, held)
            held = None
        reduce(state, ev)
        run_key = key
    if held is not None:
        reduce(state, held)
    return state


def replay(events: list[EventLike], state: OpsState | None = None) -> OpsState:
    """Fold ``events`` (in id order) into a state: the restore path."""
    state = state or OpsState()
    for ev in events:
        reduce(state, ev)
    return state
