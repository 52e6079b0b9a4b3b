"""The aiohttp application factory.

One application serves the management API, ingestion, ``/admin``, ``/metrics``, ``/healthz``
and ``/readyz``. Long-lived resources (the database pool) are opened and closed by
``cleanup_ctx`` so tests and ``serve`` share the same lifecycle.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from dispatcher import db
from dispatcher.api import event_types, health, webhooks
from dispatcher.app_keys import DSN, POOL, SETTINGS, TOKENS
from dispatcher.auth import Tokens, auth_middleware
from dispatcher.config import Settings
from dispatcher.problems import Handler, problem_middleware

log = structlog.get_logger("dispatcher.api")


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


def create_app(settings: Settings, dsn: str, tokens: Tokens) -> web.Application:
    """Build the application; the database pool opens when the app starts."""
    app = web.Application(
        middlewares=[request_context, problem_middleware, auth_middleware(tokens)],
        client_max_size=settings.max_payload_bytes + 65536,
    )
    app[SETTINGS] = settings
    app[DSN] = dsn
    app[TOKENS] = tokens
    app.cleanup_ctx.append(_pool_ctx)
    app.add_routes(health.routes)
    app.add_routes(webhooks.routes)
    app.add_routes(event_types.routes)
    return app
