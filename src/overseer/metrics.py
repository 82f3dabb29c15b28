"""``GET /metrics``: Prometheus text format (issue 3 item 9), for an operator (``admin`` scope).

Node-level aggregates only (no per-workspace labels, so nothing of a tenant leaks through labels):
workers by status, active turns, pending approvals, open questions, tokens used, events ingested by this
node, connected stream clients. Computed per scrape from the database and the runtime.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from overseer.auth.deps import Admin
from overseer.deps import DbDep
from overseer.workers import service as workers_service

router = APIRouter(tags=["meta"])


@router.get("/metrics", responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(request: Request, principal: Admin, db: DbDep) -> Response:
    """Prometheus metrics of this node (admin)."""
    async with db.read_session() as session:
        data = await workers_service.metrics(session, principal=principal)
    registry = CollectorRegistry()
    by_status = Gauge("overseer_workers", "Workers by status", ["status"], registry=registry)
    for status, n in data["workers_by_status"].items():
        by_status.labels(status=status).set(n)
    Gauge("overseer_active_turns", "Turns running now", registry=registry).set(data["active_turns"])
    Gauge("overseer_pending_approvals", "Approvals waiting for a person", registry=registry).set(
        data["pending_approvals"])
    Gauge("overseer_open_questions", "Questions waiting for a person", registry=registry).set(data["open_questions"])
    Gauge("overseer_tokens_used", "Tokens reported by the agents", registry=registry).set(data["tokens_used"])
    runtime = request.app.state.runtime
    manager = runtime.components.get("workers") if runtime is not None else None
    ingested = Counter("overseer_agent_events", "Agent events ingested by this node", registry=registry)
    if manager is not None:
        ingested.inc(manager.stats.events)
        Gauge("overseer_agent_events_per_second", "Ingest rate over the last 10 s", registry=registry).set(
            manager.stats.rate())
    Gauge("overseer_stream_clients", "Connected event-stream subscribers", registry=registry).set(
        db.bus.subscriber_count)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
