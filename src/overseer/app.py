"""The application factory: the only module that knows both the web layer and the runtime.

``create_app(settings)`` builds the FastAPI app. Its lifespan opens the database (migrating it to
head), starts the runtime (supervisor heartbeats, agent workers, health sweeps) and stops it on
shutdown, stopping every agent process it started.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from overseer.clock import Clock, SystemClock
from overseer.config import Settings, get_settings
from overseer.db import migrate
from overseer.db.engine import Database, make_engine
from overseer.errors import install_error_handlers
from overseer.events.bus import EventBus
from overseer.idempotency import IdempotencyMiddleware
from overseer.ops.pipeline import OpsPipeline
from overseer.web.routes import install as install_web

log = logging.getLogger(__name__)


def _routers() -> list[Any]:
    from overseer.metrics import router as metrics
    from overseer.workspaces.routes import router as workspaces

    routers: list[Any] = [workspaces, metrics]
    for mod in ("overseer.supervisors.routes", "overseer.workers.routes", "overseer.ops.routes",
                "overseer.events.routes", "overseer.ops.dispatch_routes", "overseer.jobs.routes",
                "overseer.ops.chat_routes"):
        try:
            module = __import__(mod, fromlist=["router"])
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise
            continue
        routers.extend(module.routers if hasattr(module, "routers") else [module.router])
    return routers


def _register_optional(runtime: Any) -> None:
    """Components built in their own packages register themselves when present."""
    try:
        from overseer.runtime import supervisor_agent
    except ImportError:  # the supervisors package is not there yet
        return
    supervisor_agent.register(runtime)
    from overseer.ops import chat  # the chat's planner agent and news from chat-dispatched work
    from overseer.runtime import jobs as job_scheduler

    job_scheduler.register(runtime)
    chat.register(runtime)


def create_app(settings: Settings | None = None, *, clock: Clock | None = None, migrate_on_start: bool = True,
               start_runtime: bool = True) -> FastAPI:
    """Build the app. ``start_runtime=False`` serves the API without background loops (tests)."""
    settings = settings or get_settings()
    clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.resolved_database_url, sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms,
                             background_checkpoint=settings.sqlite_checkpoint_interval_s > 0)
        if migrate_on_start:
            await migrate.upgrade(engine)
        db = Database(engine, EventBus(), busy_timeout_s=settings.sqlite_busy_timeout_ms / 1000)
        await db.start_checkpointer(settings.sqlite_checkpoint_interval_s)
        ops = OpsPipeline(db)
        ops.install()
        app.state.db = db
        app.state.ops = ops
        app.state.settings = settings
        app.state.clock = clock
        app.state.jwt_key = settings.jwt_key()
        runtime = None
        if start_runtime:
            from overseer.runtime.health import HealthMonitor
            from overseer.runtime.notifier import Notifier
            from overseer.runtime.supervisor import Runtime
            from overseer.runtime.workers import WorkerManager

            runtime = Runtime(db=db, settings=settings, clock=clock)
            workers = WorkerManager(db=db, settings=settings, clock=clock)
            runtime.add("workers", workers)
            runtime.add("health", HealthMonitor(db=db, settings=settings, clock=clock, workers=workers))
            runtime.add("notifier", Notifier(db=db, settings=settings))
            _register_optional(runtime)
            await runtime.start()
        app.state.runtime = runtime
        try:
            yield
        finally:
            if runtime is not None:
                await runtime.stop()
            await db.dispose()

    app = FastAPI(
        title="Overseer",
        version="0.1.0",
        description="A supervisor for fleets of AI coding agents. Errors: {error: {code, message, details}}.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(IdempotencyMiddleware)
    for router in _routers():
        app.include_router(router)
    install_web(app)  # the live page at /, /static, /auth/*, and the CSRF middleware (outermost)

    @app.get("/healthz", tags=["meta"])
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return app
