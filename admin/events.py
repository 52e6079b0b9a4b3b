"""Event pages: the events accepted, newest first (filtered by type), and one event with its
data and every delivery made for it."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from admin import queries
from admin.listing import OPERATOR, PAGE_SIZE, tenant_filter
from admin.render import render
from dispatcher.api.common import path_id
from dispatcher.app_keys import POOL
from dispatcher.matching import name_problem
from dispatcher.pagination import decode_cursor, encode_cursor
from dispatcher.problems import Problem, not_found
from dispatcher.store import deliveries as delivery_store
from dispatcher.store.events import Q

routes = web.RouteTableDef()

# Deliveries listed on an event's page (an event reaches at most this many webhooks here).
EVENT_DELIVERIES = 200


def _keyset(raw: str | None) -> tuple[datetime | None, str | None]:
    """The (created_at, id) a page cursor stands for; a bad one means the first page."""
    if not raw:
        return None, None
    try:
        stamp, _, event_id = decode_cursor(raw).partition("|")
        return datetime.fromisoformat(stamp), event_id
    except (Problem, ValueError):
        return None, None


@routes.get("/admin/events")
async def list_events(request: web.Request) -> web.Response:
    """Events, newest first; ``?type=`` and ``?tenant=`` filter; an exact event id opens that
    event."""
    event_type = request.query.get("type", "").strip()[:255]
    error = None
    if event_type and name_problem(event_type):
        error = "Enter an event type name, like order.created."
    tenant_raw = request.query.get("tenant", "").strip()[:200]
    tenant = tenant_filter(tenant_raw)
    search = request.query.get("q", "").strip()[:255]
    pool = request.app[POOL]
    if search and await pool.fetchrow(Q["event_as_stored"], search) is not None:
        raise web.HTTPSeeOther(f"/admin/events/{search}")
    after_ts, after_id = _keyset(request.query.get("cursor"))
    rows = await pool.fetch(
        Q["console_events"],
        after_ts,
        after_id,
        None if error else event_type or None,
        PAGE_SIZE + 1,
        tenant.tenant_id,
        tenant.operator_only,
    )
    events = [dict(r) for r in rows[:PAGE_SIZE]]
    next_cursor = None
    if len(rows) > PAGE_SIZE:
        last = events[-1]
        next_cursor = encode_cursor(f"{last['created_at'].isoformat()}|{last['id']}")
    base = {"type": event_type} if event_type and not error else {}
    if tenant_raw and not tenant.error:
        base["tenant"] = tenant_raw
    return render(
        request,
        "events.html",
        {
            "nav": "events",
            "events": events,
            "type_filter": event_type,
            "search": search,
            "error": error,
            "tenant": tenant_raw,
            "tenant_error": tenant.error,
            "operator": OPERATOR,
            "not_found": bool(search),
            "base_query": base,
            "next_cursor": next_cursor,
            "paged": after_ts is not None,
        },
    )


@routes.get("/admin/events/{id}")
async def event_page(request: web.Request) -> web.Response:
    """One event: its data and its deliveries, one per webhook it went to."""
    event_id = path_id(request, "Event")
    pool = request.app[POOL]
    event = await pool.fetchrow(Q["get_event"], event_id, None)
    if event is None:
        raise not_found("Event", event_id)
    deliveries = await delivery_store.list_page(
        pool, after=None, limit=EVENT_DELIVERIES, event_id=event_id
    )
    webhooks = await queries.webhook_labels(pool, [d["webhook_id"] for d in deliveries])
    return render(
        request,
        "event.html",
        {"nav": "events", "event": dict(event), "deliveries": deliveries, "webhooks": webhooks},
    )
