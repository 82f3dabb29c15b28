"""``GET /api/v1/ops/stream``: the live event stream as server-sent events (issue 6 item 1).

The framing, replay and reconnect rules live in ``events/stream.py``; the contract for clients is in
``events/AGENTS.md``. This module parses the request, checks tenancy, and wires sse-starlette's
keep-alive pings and shutdown detection to the generator.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Header, Query, Request
from sse_starlette import EventSourceResponse

from overseer.auth.deps import SupervisorRead
from overseer.deps import DbDep, SettingsDep
from overseer.errors import COMMON_ERRORS, ValidationFailed
from overseer.events.query import TypeFilter
from overseer.events.stream import StreamFilter, StreamHub, event_stream
from overseer.workspaces import service as workspaces

router = APIRouter(prefix="/api/v1/ops", tags=["operations"], responses=COMMON_ERRORS)

SHUTDOWN_GRACE_S = 2.0
"""Seconds sse-starlette waits for the generator's farewell ``reconnect`` after it sees shutdown."""
MAX_WORKSPACE_FILTER = 100


def stream_hub(request: Request) -> StreamHub:
    """The app's :class:`StreamHub` (created on first use): ``app.state.streams.connected`` for metrics."""
    hub = getattr(request.app.state, "streams", None)
    if hub is None:
        hub = request.app.state.streams = StreamHub()
    return hub


def connected_clients(app: Any) -> int:
    """Stream clients connected to ``app`` now (0 before the first stream): for /metrics."""
    hub = getattr(app.state, "streams", None)
    return hub.connected if hub is not None else 0


def _parse_cursor(value: str | None, source: str) -> int | None:
    if value is None or value.strip() == "":
        return None
    try:
        cursor = int(value.strip())
    except ValueError:
        cursor = -1
    if cursor < 0:
        raise ValidationFailed(f"{source} must be a non-negative event id", details={"param": source, "value": value})
    return cursor


def _parse_workspace_ids(raw: list[str]) -> list[uuid.UUID]:
    ids: list[uuid.UUID] = []
    for value in raw:
        for part in value.split(","):
            if not part.strip():
                continue
            try:
                ws = uuid.UUID(part.strip())
            except ValueError as exc:
                raise ValidationFailed("workspace_id must be a UUID",
                                       details={"param": "workspace_id", "value": part}) from exc
            if ws not in ids:
                ids.append(ws)
    if len(ids) > MAX_WORKSPACE_FILTER:
        raise ValidationFailed(f"At most {MAX_WORKSPACE_FILTER} workspace ids", details={"param": "workspace_id"})
    return ids


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    responses={200: {"description": "Server-sent events; see events/AGENTS.md for the contract.",
                     "content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
async def stream(
    request: Request,
    principal: SupervisorRead,
    db: DbDep,
    settings: SettingsDep,
    workspace_id: Annotated[list[str] | None, Query(
        description="Only these workspaces (repeat the parameter or separate with commas). Each must be "
                    "visible to the token, else 404.")] = None,
    types: Annotated[list[str] | None, Query(
        description="Only these event types, comma-separated; a trailing * matches a prefix (turn.*).")] = None,
    last_event_id: Annotated[str | None, Query(
        description="Resume after this event id (for clients that cannot send the Last-Event-ID header; "
                    "the header wins).")] = None,
    since: Annotated[Literal["now", "start"], Query(
        description="Without a Last-Event-ID: 'now' (default) streams only events committed from now on; "
                    "'start' replays the whole visible log first.")] = "now",
    last_event_id_header: Annotated[str | None, Header(
        alias="Last-Event-ID", description="Resume after this event id (sent by EventSource on reconnect).")] = None,
) -> EventSourceResponse:
    """Stream the caller's events live, resumable with ``Last-Event-ID``.

    Frames: ``ready`` (id = cursor) first, then one message per event (``id`` = events.id,
    ``event`` = event_type, ``data`` = the event as JSON), comment pings every
    ``stream_keepalive_s``, and a final ``reconnect`` {reason, last_event_id} when the server ends
    the stream (slow_consumer, max_lifetime, shutdown). Errors (JSON, before streaming): 401, 403
    (needs supervisor:read), 404 (a workspace_id not visible), 400 (malformed parameter).
    """
    cursor = _parse_cursor(last_event_id_header, "Last-Event-ID")
    if cursor is None:
        cursor = _parse_cursor(last_event_id, "last_event_id")
    if cursor is None and since == "start":
        cursor = 0

    requested = _parse_workspace_ids(workspace_id or [])
    if requested:
        async with db.read_session() as session:
            for ws in requested:
                await workspaces.get(session, principal=principal, workspace_id=ws)  # 404 if not visible
    filt = StreamFilter(frozenset(requested) if requested else None, TypeFilter.parse(types or []))

    stop = anyio.Event()
    generator = event_stream(db, principal, filt, last_event_id=cursor, queue_max=settings.stream_queue_max,
                             max_lifetime_s=settings.stream_max_lifetime_s, stop=stop, hub=stream_hub(request))
    return EventSourceResponse(generator, ping=settings.stream_keepalive_s, shutdown_event=stop,
                               shutdown_grace_period=SHUTDOWN_GRACE_S)
