"""``/api/v1/chat``: the global Supervisor chat (issue 6 item 5; service in :mod:`overseer.ops.chat`).

- ``POST /api/v1/chat/messages`` (``supervisor:write``) ``{"text": "..."}`` (1..20 000 characters): stores the
  message, answers it (a command, or free text through the planner) and returns 201
  ``{"messages": [<the user's message>, <the assistant's reply>]}``. Slow when the planner runs (up to ~60 s).
- ``GET /api/v1/chat/messages?after=&before=&limit=`` (``supervisor:read``): the caller's conversation, oldest
  first: ``after=<id>`` the messages after it; otherwise the last ``limit`` (before ``before``).
  ``{"messages": [...], "has_more": bool, "last_id": int | null}``.

Message: ``{id, role: user|assistant|system, text, payload, workspace_ids, created_at}``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import Field

from overseer.auth.deps import SupervisorRead, SupervisorWrite
from overseer.deps import DbDep
from overseer.errors import COMMON_ERRORS
from overseer.ops import chat
from overseer.schemas import WriteSchema

router = APIRouter(prefix="/api/v1/chat", tags=["chat"], responses=COMMON_ERRORS)


class ChatPost(WriteSchema):
    text: str = Field(min_length=1, max_length=chat.MAX_TEXT)


@router.post("/messages", status_code=201)
async def post_message(request: Request, body: ChatPost, principal: SupervisorWrite, db: DbDep) -> dict[str, Any]:
    """Send one chat message; the reply (command result, plan and dispatch results, or an error) comes back
    with it. News from the work it dispatched arrives later as ``system`` messages."""
    service = chat.service_for(db, request.app.state.runtime)
    return {"messages": await service.post(principal, body.text)}


@router.get("/messages")
async def list_messages(principal: SupervisorRead, db: DbDep,
                        after: Annotated[int | None, Query(ge=0)] = None,
                        before: Annotated[int | None, Query(ge=1)] = None,
                        limit: Annotated[int, Query(ge=1, le=chat.HISTORY_MAX)] = 100) -> dict[str, Any]:
    """The caller's chat, oldest first (only messages about workspaces the token can all see)."""
    return await chat.history(db, principal, after=after, before=before, limit=limit)
