"""The landing page: throughput and failures over the last hour, and the queue right now."""

from __future__ import annotations

from aiohttp import web

from admin import queries
from admin.chart import minute_chart
from admin.render import render
from admin.webhooks import status_of
from dispatcher.app_keys import ENGINE, POOL
from dispatcher.store import deliveries as delivery_store
from dispatcher.store import webhooks as webhook_store

routes = web.RouteTableDef()


@routes.get("/admin")
@routes.get("/admin/")
async def overview(request: web.Request) -> web.Response:
    """Events, deliveries, success rate, in flight, queue depth, disabled webhooks, a chart."""
    pool = request.app[POOL]
    stats = await queries.overview(pool)
    engine = request.app.get(ENGINE)
    disabled = await webhook_store.list_page(pool, after=None, limit=6, enabled=False)
    failures = await delivery_store.list_page(pool, after=None, limit=6, status="failed")
    webhooks = await queries.webhook_labels(pool, [d["webhook_id"] for d in failures])
    return render(
        request,
        "overview.html",
        {
            "nav": "overview",
            "stats": stats,
            "chart": minute_chart(stats.per_minute),
            "in_flight": engine.in_flight if engine else 0,
            "disabled": [{**w, "status": status_of(w)} for w in disabled],
            "failures": failures,
            "webhooks": webhooks,
        },
    )
