"""The aiohttp application factory.

One application serves the management API, ingestion, ``/admin``, ``/metrics``, ``/healthz``
and ``/readyz``. Long-lived resources (the database pool) are opened and closed by
``cleanup_ctx`` so tests and ``serve`` share the same lifecycle.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import structlog
from aiohttp import web

import admin
from dispatcher import db, metrics, migrate, openapi, retention
from dispatcher.api import (
    deliveries,
    event_types,
    events,
    health,
    send_test,
    tenants,
    webhooks,
)
from dispatcher.app_keys import (
    DSN,
    ENGINE,
    INGEST_BUDGET,
    INGESTOR,
    LISTENER,
    OPERATIONAL,
    POOL,
    REGISTRY,
    SCHEDULER,
    SETTINGS,
    TOKENS,
)
from dispatcher.auth import Tokens, auth_middleware
from dispatcher.budget import ByteBudget
from dispatcher.config import Settings
from dispatcher.engine import Engine
from dispatcher.ingest import Ingestor
from dispatcher.listener import Listener
from dispatcher.operational import Publisher
from dispatcher.problems import Handler, problem_middleware
from dispatcher.registry import Registry
from dispatcher.scheduler import Scheduler

log = structlog.get_logger("dispatcher.api")
_STARTUP_TROUBLE: tuple[type[BaseException], ...] = (*db.DB_UNAVAILABLE, asyncpg.PostgresError)


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every request an id (echoed as ``X-Request-Id``) and log one line per API call."""
    request_id = request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    finally:
        if request.path.startswith("/v1/"):
            log.info(
                "api_request",
                method=request.method,
                path=request.path,
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
        structlog.contextvars.unbind_contextvars("request_id")


async def _pool_ctx(app: web.Application) -> AsyncIterator[None]:
    pool = await db.create_pool(app[DSN])
    app[POOL] = pool
    yield
    await pool.close()


async def _schema_current(pool: asyncpg.Pool) -> bool:
    async with pool.acquire() as conn:
        return await migrate.current_version(conn) >= migrate.latest_version()


async def _engine_ctx(app: web.Application) -> AsyncIterator[None]:
    """Registry, engine, scheduler, listener and ingestor, started and stopped in order.

    On a database whose schema is not current (``serve`` always migrates first, but another
    process may be pointed at an old database) the engine waits for the migration, and until
    then ``/readyz`` and ingestion answer 503.
    """
    settings, pool = app[SETTINGS], app[POOL]
    registry = Registry(tenant_max_in_flight=settings.max_in_flight_per_webhook)
    engine = Engine(settings, pool, registry)
    scheduler = Scheduler(engine, pool)
    listener = Listener(
        app[DSN], pool, registry, engine, scheduler, settings.reload_interval_seconds
    )
    ingestor = Ingestor(pool, registry, engine)
    # Operational events have a writer of their own: producers' events never wait behind
    # a commit of Dispatcher's own (under a stream of failures, ten of those a second).
    publisher = Publisher(Ingestor(pool, registry, engine), settings.failure_window_seconds)
    # Who listens to what the engine announces: the one place it is decided.
    engine.written.connect(scheduler.outcomes_written)
    engine.written.connect(publisher.outcomes_written)
    engine.disabled.connect(publisher.webhook_disabled)
    app[REGISTRY], app[ENGINE], app[SCHEDULER] = registry, engine, scheduler
    app[LISTENER], app[INGESTOR], app[OPERATIONAL] = listener, ingestor, publisher
    background: list[asyncio.Task[None]] = []

    async def start() -> None:
        while True:
            try:
                if await _schema_current(pool):
                    break
                log.warning("schema_not_current", expected=migrate.latest_version())
            except _STARTUP_TROUBLE as exc:
                log.warning("schema_check_failed", error=str(exc))
            await asyncio.sleep(1)
        await registry.load(pool)
        await engine.start()
        ingestor.start()
        publisher.ingestor.start()
        listener.start()
        scheduler.start()
        loop = asyncio.get_running_loop()
        background.append(
            loop.create_task(retention.run(pool, settings.retention_days), name="retention")
        )
        background.append(
            loop.create_task(metrics.sample_forever(pool, registry), name="metrics-sampler")
        )
        log.info("engine_started", owner=engine.owner)

    if await _schema_current(pool):
        await start()
    else:
        background.append(asyncio.get_running_loop().create_task(start(), name="engine-start"))
    yield
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)
    if not engine.running:
        return
    # Shutdown (the server already stopped accepting requests): claim nothing more, let
    # attempts in flight finish up to the deadline, give back every lease, then commit the
    # operational events those last attempts produced.
    await scheduler.stop()
    await engine.stop(deadline=settings.delivery_timeout_seconds)
    await ingestor.stop()
    await publisher.drain()
    await publisher.ingestor.stop()
    await listener.stop()
    log.info("engine_stopped", owner=engine.owner)


def create_app(settings: Settings, dsn: str, tokens: Tokens) -> web.Application:
    """Build the application; the database pool opens when the app starts."""
    app = web.Application(
        middlewares=[request_context, problem_middleware, auth_middleware(tokens, POOL)],
        client_max_size=settings.max_payload_bytes + 65536,
    )
    app[SETTINGS] = settings
    app[DSN] = dsn
    app[TOKENS] = tokens
    app[INGEST_BUDGET] = ByteBudget(settings.ingest_memory_bytes)
    app.cleanup_ctx.append(_pool_ctx)
    app.cleanup_ctx.append(_engine_ctx)
    for module in (health, webhooks, send_test, event_types, events, deliveries, tenants):
        app.add_routes(module.routes)
    app.router.add_get("/metrics", metrics.handler)
    app.router.add_get("/v1/openapi.json", openapi.handler)
    app[openapi.CACHE] = {}
    admin.setup(app)
    return app
