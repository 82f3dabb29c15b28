"""``/api/v1/ops``: the action contract and the dispatch executor (CM-005, CM-006; issue 4 items 6-7).

- ``GET /api/v1/ops/contract``: the JSON Schema of ``overseer.dispatch.v1`` (``$id`` = the version).
- ``POST /api/v1/ops/dispatch`` (``supervisor:write``): body = the contract. 400 ``CONTRACT_INVALID``
  with ``details.violations`` rejects it as a whole (nothing runs); otherwise 200
  ``{"version": "overseer.dispatch.v1", "results": [...]}`` with one result per action, failed ones
  included (see :mod:`overseer.ops.dispatch`).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request

from overseer.auth.deps import SupervisorRead, SupervisorWrite
from overseer.deps import DbDep
from overseer.errors import COMMON_ERRORS
from overseer.ops import dispatch as service
from overseer.ops.contract import ContractInvalid, json_schema, referenced_workspaces, validate_contract

router = APIRouter(prefix="/api/v1/ops", tags=["operations"], responses=COMMON_ERRORS)

_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {
            "type": "object",
            "description": "An overseer.dispatch.v1 action contract; its JSON Schema is GET /api/v1/ops/contract.",
        }}},
    }
}


@router.get("/contract", response_model=dict[str, Any])
async def get_contract(principal: SupervisorRead) -> dict[str, Any]:
    """The JSON Schema of the action contract ``overseer.dispatch.v1`` (generated from the validator's models)."""
    return json_schema()


@router.post("/dispatch", response_model=service.DispatchResponse, openapi_extra=_BODY_DOC)
async def dispatch(request: Request, principal: SupervisorWrite, db: DbDep) -> service.DispatchResponse:
    """Validate the contract (400 ``CONTRACT_INVALID`` lists every violation) and run its actions:
    concurrently across workspaces, in order within one; one result per action."""
    raw = await request.body()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ContractInvalid([{"path": "$", "code": "INVALID_JSON", "message": f"The body is not JSON: {exc}"}]
                              ) from exc
    async with db.read_session() as session:
        visible = await service.visible_workspaces(session, principal=principal, ids=referenced_workspaces(data))
    contract = validate_contract(data, visible_workspaces=visible)
    runtime = request.app.state.runtime
    manager = runtime.components.get("workers") if runtime is not None else None
    return await service.execute(db, manager, principal=principal, contract=contract)
