"""``/v1/deliveries``: the delivery log, manual retry and cancel."""

from __future__ import annotations

from typing import get_args

from aiohttp import web

from dispatcher import metrics
from dispatcher.api.common import json_response, path_id, query_str
from dispatcher.api.scoping import tenant_filter
from dispatcher.app_keys import ENGINE, POOL, SCHEDULER, SETTINGS
from dispatcher.openapi import PAGINATION, STATUS, STR, Param, operation
from dispatcher.pagination import page_body, page_from_query
from dispatcher.problems import Problem, invalid, not_found
from dispatcher.schemas import DeliveryDetail, DeliveryOut, DeliveryPage, DeliveryStatus
from dispatcher.store import deliveries as store
from dispatcher.store import notify
from dispatcher.tenancy import scope

routes = web.RouteTableDef()
STATUSES = frozenset(get_args(DeliveryStatus))


async def list_response(request: web.Request, webhook_id: str | None) -> web.Response:
    """A filtered, paginated list of deliveries."""
    page = page_from_query(request.query)
    status = query_str(request, "status")
    if status is not None and status not in STATUSES:
        raise invalid("status", f"must be one of {', '.join(sorted(STATUSES))}")
    event_id = query_str(request, "event_id")
    rows = await store.list_page(
        request.app[POOL],
        after=page.after,
        limit=page.limit + 1,
        webhook_id=webhook_id or query_str(request, "webhook_id"),
        event_id=event_id,
        status=status,
        scope=scope(request),
        tenant_id=tenant_filter(request),
    )
    return json_response(page_body(rows, page))


@routes.get("/v1/deliveries")
@operation(
    summary="List deliveries",
    tag="deliveries",
    responses={200: DeliveryPage},
    query=(
        *PAGINATION,
        Param("webhook_id", STR),
        Param("event_id", STR),
        Param("status", STATUS),
        Param("tenant_id", STR, "only this tenant's"),
    ),
)
async def list_deliveries(request: web.Request) -> web.Response:
    """Deliveries, newest first; ``?webhook_id=``, ``?event_id=``, ``?status=``,
    ``?tenant_id=`` filter."""
    return await list_response(request, None)


@routes.get("/v1/deliveries/{id}")
@operation(
    summary="A delivery with its attempts",
    tag="deliveries",
    responses={200: DeliveryDetail},
    problems=(404,),
)
async def get_delivery(request: web.Request) -> web.Response:
    """One delivery with every attempt."""
    delivery_id = path_id(request, "Delivery")
    found = await store.get(
        request.app[POOL], delivery_id, with_attempts=True, scope=scope(request)
    )
    if found is None:
        raise not_found("Delivery", delivery_id)
    return json_response(found)


@routes.post("/v1/deliveries/{id}/retry")
@operation(
    summary="Schedule an immediate attempt",
    tag="deliveries",
    responses={202: DeliveryOut},
    problems=(404, 409),
)
async def retry_delivery(request: web.Request) -> web.Response:
    """Schedule an immediate attempt (409 for a delivery that already succeeded)."""
    delivery_id = path_id(request, "Delivery")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await store.retry(conn, delivery_id, scope=scope(request))
        if row is None:
            current = await store.get(conn, delivery_id, scope=scope(request))
            if current is None:
                raise not_found("Delivery", delivery_id)
            if current["status"] == "success":
                raise Problem(409, "This delivery already succeeded.", slug="conflict")
            raise Problem(409, "The webhook of this delivery was deleted.", slug="conflict")
        await notify(conn, "wake")
    request.app[SCHEDULER].wake.set()
    return json_response(store.to_api(row), status=202)


@routes.post("/v1/deliveries/{id}/cancel")
@operation(
    summary="Cancel a waiting delivery",
    tag="deliveries",
    responses={200: DeliveryOut},
    problems=(404, 409),
)
async def cancel_delivery(request: web.Request) -> web.Response:
    """Cancel a delivery that is still waiting (409 when it has finished)."""
    delivery_id = path_id(request, "Delivery")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await store.cancel(conn, delivery_id, scope=scope(request))
        if row is None:
            current = await store.get(conn, delivery_id, scope=scope(request))
            if current is None:
                raise not_found("Delivery", delivery_id)
            raise Problem(
                409, f"This delivery has finished ({current['status']}).", slug="conflict"
            )
        await notify(conn, "cancel", id=delivery_id)
    request.app[ENGINE].forget(delivery_id)
    label = row["webhook_id"] if request.app[SETTINGS].metrics_per_webhook else ""
    metrics.DELIVERIES_FINISHED.labels("cancelled", label).inc()
    return json_response(store.to_api(row))
