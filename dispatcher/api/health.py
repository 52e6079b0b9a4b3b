"""``/healthz`` (the process is alive) and ``/readyz`` (it can do its job)."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from dispatcher import migrate
from dispatcher.api.common import json_response
from dispatcher.app_keys import ENGINE, POOL
from dispatcher.db import DB_UNAVAILABLE
from dispatcher.openapi import operation
from dispatcher.schemas import HealthOut

routes = web.RouteTableDef()


@routes.get("/healthz")
@operation(summary="Liveness", tag="operations", responses={200: HealthOut}, auth="none")
async def healthz(request: web.Request) -> web.Response:
    """Liveness: answers as long as the event loop runs."""
    return json_response({"status": "ok"})


@routes.get("/readyz")
@operation(
    summary="Readiness: database, schema, engine",
    tag="operations",
    responses={200: HealthOut, 503: HealthOut},
    auth="none",
)
async def readyz(request: web.Request) -> web.Response:
    """Readiness: the database answers, the schema is current and the engine runs."""
    checks: dict[str, object] = {}
    ready = True
    try:
        async with request.app[POOL].acquire(timeout=2) as conn:
            version = await migrate.current_version(conn)
        checks["database"] = "ok"
        if version >= migrate.latest_version():
            checks["migrations"] = "ok"
        else:
            checks["migrations"] = f"at {version}, expected {migrate.latest_version()}"
            ready = False
    except DB_UNAVAILABLE as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
        ready = False
    except asyncpg.PostgresError as exc:
        checks["migrations"] = f"not applied: {type(exc).__name__}"
        ready = False
    engine = request.app.get(ENGINE)
    if engine is not None and engine.running:
        checks["engine"] = "running"
        checks["in_flight"] = engine.in_flight
        checks["queued"] = engine.queued
    else:
        checks["engine"] = "not running"
        ready = False
    return json_response(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )
