"""The tenant's delivery log: list (by endpoint and status), one delivery with its payload and
attempts, Retry and Cancel (the API's handlers, so the same 409 rules apply)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from admin.listing import PAGE_SIZE, STATUS_ORDER, cursor_of
from admin.portal.keys import TENANT
from admin.portal.render import redirect, render
from dispatcher.api import deliveries as api
from dispatcher.api.common import path_id
from dispatcher.app_keys import POOL
from dispatcher.pagination import Page, page_body
from dispatcher.problems import Handler, Problem, not_found
from dispatcher.store import deliveries as delivery_store
from dispatcher.store import portal as store

routes = web.RouteTableDef()

ROOT = "/portal/deliveries"
# Endpoints offered in the filter's list.
WEBHOOK_CHOICES = 200


async def load(request: web.Request) -> dict[str, Any]:
    """The tenant's delivery named in the path (with attempts), or a 404 page."""
    delivery_id = path_id(request, "Delivery")
    found = await store.delivery(request.app[POOL], request[TENANT].id, delivery_id)
    if found is None:
        raise not_found("Delivery", delivery_id)
    return found


@routes.get(ROOT)
async def list_deliveries(request: web.Request) -> web.Response:
    """The tenant's deliveries, newest first; ``?webhook=`` and ``?status=`` filter."""
    pool = request.app[POOL]
    tenant = request[TENANT]
    status = request.query.get("status", "")
    if status not in api.STATUSES:
        status = ""
    webhook_id = request.query.get("webhook", "").strip()[:100]
    after = cursor_of(request)
    rows = await store.deliveries(
        pool,
        tenant.id,
        after=after,
        limit=PAGE_SIZE + 1,
        webhook_id=webhook_id or None,
        status=status or None,
    )
    page = page_body(rows, Page(PAGE_SIZE, after))
    labels = await store.webhook_labels(pool, tenant.id, [d["webhook_id"] for d in page["data"]])
    choices = await store.webhooks(pool, tenant.id, after=None, limit=WEBHOOK_CHOICES)
    return render(
        request,
        "deliveries.html",
        {
            "nav": "deliveries",
            "deliveries": page["data"],
            "webhooks": labels,
            "choices": sorted(choices, key=lambda w: w["name"].lower()),
            "webhook_filter": webhook_id,
            "status_filter": status,
            "statuses": STATUS_ORDER,
            "next_cursor": page["next_cursor"],
            "paged": after is not None,
        },
    )


@routes.get(ROOT + "/{id}")
async def delivery_page(request: web.Request) -> web.Response:
    """One delivery: the event payload and every attempt."""
    delivery = await load(request)
    pool = request.app[POOL]
    tenant = request[TENANT]
    event = await store.delivery_event(pool, tenant.id, delivery["id"])
    webhook = await store.webhook(pool, tenant.id, delivery["webhook_id"])
    return render(
        request,
        "delivery.html",
        {
            "nav": "deliveries",
            "delivery": delivery,
            "attempts": list(reversed(delivery["attempts"])),
            "event": event,
            "webhook": webhook,
            "can_retry": delivery["status"] != "success" and webhook is not None,
            "can_cancel": delivery["status"] in delivery_store.UNFINISHED,
        },
    )


async def _action(request: web.Request, handler: Handler, done: str) -> web.Response:
    delivery = await load(request)
    back = f"{ROOT}/{delivery['id']}"
    try:
        await handler(request)
    except Problem as problem:
        if problem.status != 409:
            raise
        return redirect(request, back, ("error", problem.detail))
    return redirect(request, back, ("success", done))


@routes.post(ROOT + "/{id}/retry")
async def retry_delivery(request: web.Request) -> web.Response:
    """Schedule an immediate attempt (409 for a success or a deleted endpoint)."""
    return await _action(request, api.retry_delivery, "Retry scheduled; an attempt is due now.")


@routes.post(ROOT + "/{id}/cancel")
async def cancel_delivery(request: web.Request) -> web.Response:
    """Cancel a waiting delivery (409 when it has finished)."""
    return await _action(request, api.cancel_delivery, "Delivery cancelled.")
