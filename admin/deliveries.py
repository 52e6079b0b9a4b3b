"""Delivery pages: the log across all webhooks, one delivery with its payload and attempts,
and the Retry and Cancel buttons (the API's handlers, so the same 409 rules apply)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from admin import queries
from admin.listing import PAGE_SIZE, STATUS_ORDER, cursor_of
from admin.render import redirect, render
from dispatcher.api import deliveries as api
from dispatcher.api.common import path_id
from dispatcher.app_keys import POOL
from dispatcher.pagination import Page, page_body
from dispatcher.problems import Handler, Problem, not_found
from dispatcher.store import deliveries as store
from dispatcher.store import webhooks as webhook_store
from dispatcher.store.events import Q as EVENT_Q

routes = web.RouteTableDef()


@routes.get("/admin/deliveries")
async def list_deliveries(request: web.Request) -> web.Response:
    """Every webhook's deliveries, newest first, filtered by status."""
    status = request.query.get("status", "")
    if status not in api.STATUSES:
        status = ""
    after = cursor_of(request)
    pool = request.app[POOL]
    rows = await store.list_page(pool, after=after, limit=PAGE_SIZE + 1, status=status or None)
    page = page_body(rows, Page(PAGE_SIZE, after))
    webhooks = await queries.webhook_labels(pool, [d["webhook_id"] for d in page["data"]])
    return render(
        request,
        "deliveries.html",
        {
            "nav": "deliveries",
            "deliveries": page["data"],
            "webhooks": webhooks,
            "status_filter": status,
            "statuses": STATUS_ORDER,
            "next_cursor": page["next_cursor"],
            "paged": after is not None,
        },
    )


@routes.get("/admin/deliveries/{id}")
async def delivery_page(request: web.Request) -> web.Response:
    """One delivery: the event payload and every attempt."""
    delivery_id = path_id(request, "Delivery")
    pool = request.app[POOL]
    delivery = await store.get(pool, delivery_id, with_attempts=True)
    if delivery is None:
        raise not_found("Delivery", delivery_id)
    event = await pool.fetchrow(EVENT_Q["get_event"], delivery["event_id"])
    webhook = await webhook_store.get(pool, delivery["webhook_id"])
    context: dict[str, Any] = {
        "nav": "deliveries",
        "delivery": delivery,
        "attempts": list(reversed(delivery["attempts"])),
        "event": dict(event) if event else None,
        "webhook": webhook,
        "can_retry": delivery["status"] != "success" and webhook is not None,
        "can_cancel": delivery["status"] in store.UNFINISHED,
    }
    return render(request, "delivery.html", context)


async def _action(request: web.Request, handler: Handler, done: str) -> web.Response:
    delivery_id = path_id(request, "Delivery")
    back = f"/admin/deliveries/{delivery_id}"
    try:
        await handler(request)
    except Problem as problem:
        if problem.status != 409:
            raise
        return redirect(request, back, ("error", problem.detail))
    return redirect(request, back, ("success", done))


@routes.post("/admin/deliveries/{id}/retry")
async def retry_delivery(request: web.Request) -> web.Response:
    """Schedule an immediate attempt (409 for a success or a deleted webhook)."""
    return await _action(request, api.retry_delivery, "Retry scheduled; an attempt is due now.")


@routes.post("/admin/deliveries/{id}/cancel")
async def cancel_delivery(request: web.Request) -> web.Response:
    """Cancel a waiting delivery (409 when it has finished)."""
    return await _action(request, api.cancel_delivery, "Delivery cancelled.")
