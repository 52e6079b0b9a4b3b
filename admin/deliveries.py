"""Delivery pages: the log across all webhooks (filtered by webhook, event type, status and
time, searched by event or delivery id), one delivery with its payload and attempts, the
Retry and Cancel buttons (the API's handlers, so the same 409 rules apply), and bulk retry or
cancel of a filtered set, counted before it is confirmed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from admin import queries
from admin.listing import OPERATOR, PAGE_SIZE, STATUS_ORDER, cursor_of, tenant_filter
from admin.render import redirect, render
from admin.sent import Secret, requests_as_sent
from dispatcher import ids
from dispatcher.api import deliveries as api
from dispatcher.api.common import path_id
from dispatcher.app_keys import POOL, SCHEDULER, SETTINGS
from dispatcher.matching import name_problem
from dispatcher.pagination import Page, page_body
from dispatcher.problems import Handler, Problem, not_found
from dispatcher.store import deliveries as store
from dispatcher.store import notify
from dispatcher.store import webhooks as webhook_store
from dispatcher.store.events import Q as EVENT_Q

routes = web.RouteTableDef()

# A bulk action changes at most this many deliveries (newest first), in batches of BULK_BATCH
# per statement: bounded work per click; run it again for the rest.
BULK_MAX = 10_000
BULK_BATCH = 1_000
ACTIONS = {"retry": "Retry", "cancel": "Cancel"}
# Query-string names of the filters, kept across pages, bulk previews and their forms.
FILTER_KEYS = ("webhook", "type", "status", "from", "to", "q", "tenant")
# Webhooks offered in the filter's list (more can still be chosen by id).
WEBHOOK_CHOICES = 200


def parse_time(raw: str) -> datetime | None:
    """A time typed or picked in the form (``2026-11-25T14:00``, UTC unless an offset is given)."""
    value = datetime.fromisoformat(raw.strip().replace(" ", "T", 1))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass
class Filters:
    """What the operator filtered by, as typed, and the store filter it makes."""

    values: dict[str, str]
    where: store.Filter
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        """Anything but the status filters the list."""
        return any(self.values.get(k) for k in FILTER_KEYS if k != "status")

    def query(self, **extra: str) -> dict[str, str]:
        """The filters as query-string pairs (only those set)."""
        merged = {**self.values, **extra}
        return {k: v for k, v in merged.items() if v}


def parse_filters(query: Mapping[str, str]) -> Filters:
    """Filters from the query string (or a bulk form); a bad value is reported, not applied."""
    values = {k: str(query.get(k, "")).strip()[:200] for k in FILTER_KEYS}
    errors: dict[str, str] = {}
    status = values["status"] if values["status"] in api.STATUSES else ""
    values["status"] = status
    event_type = values["type"]
    if event_type and name_problem(event_type):
        errors["type"] = "Enter an event type name, like order.created."
        event_type = ""
    bounds: dict[str, str | None] = {"from": None, "to": None}
    for key in bounds:
        if values[key]:
            try:
                at = parse_time(values[key])
            except ValueError:
                errors[key] = "Enter a date and time, like 2026-11-25 14:00 (UTC)."
                continue
            assert at is not None
            bounds[key] = ids.time_bound("dlv", int(at.timestamp() * 1000))
    if bounds["from"] and bounds["to"] and bounds["from"] >= bounds["to"]:
        errors["to"] = "Choose an end after the start."
        bounds["to"] = None
    tenant = tenant_filter(values["tenant"])
    if tenant.error:
        errors["tenant"] = tenant.error
    return Filters(
        values=values,
        where=store.Filter(
            webhook_id=values["webhook"] or None,
            event_id=values["q"] or None,
            status=status or None,
            event_type=event_type or None,
            from_id=bounds["from"],
            to_id=bounds["to"],
            tenant_id=tenant.tenant_id,
            operator_only=tenant.operator_only,
        ),
        errors=errors,
    )


async def _webhook_choices(request: web.Request) -> list[dict[str, Any]]:
    rows = await webhook_store.list_page(request.app[POOL], after=None, limit=WEBHOOK_CHOICES)
    return sorted(rows, key=lambda w: w["name"].lower())


@routes.get("/admin/deliveries")
async def list_deliveries(request: web.Request) -> web.Response:
    """Every webhook's deliveries, newest first, filtered; a delivery id opens that delivery."""
    filters = parse_filters(request.query)
    pool = request.app[POOL]
    search = filters.values["q"]
    if search.startswith("dlv_") and await store.get(pool, search) is not None:
        raise web.HTTPSeeOther(f"/admin/deliveries/{search}")
    after = cursor_of(request)
    rows = await store.filtered_page(pool, filters.where, after=after, limit=PAGE_SIZE + 1)
    page = page_body(rows, Page(PAGE_SIZE, after))
    webhooks = await queries.webhook_labels(pool, [d["webhook_id"] for d in page["data"]])
    return render(
        request,
        "deliveries.html",
        {
            "nav": "deliveries",
            "deliveries": page["data"],
            "webhooks": webhooks,
            "filters": filters,
            "status_filter": filters.values["status"],
            "statuses": STATUS_ORDER,
            "choices": await _webhook_choices(request),
            "operator": OPERATOR,
            "next_cursor": page["next_cursor"],
            "paged": after is not None,
        },
    )


async def _bulk_ids(request: web.Request, filters: Filters, action: str) -> list[str]:
    """The ids the action would change now, newest first, at most BULK_MAX + 1."""
    return await store.bulk_ids(
        request.app[POOL], filters.where, action, after=None, limit=BULK_MAX + 1
    )


def _action_of(raw: str) -> str:
    if raw not in ACTIONS:
        raise Problem(404, "There is no such bulk action.", slug="not-found")
    return raw


@routes.get("/admin/deliveries/bulk/{action}")
async def bulk_preview(request: web.Request) -> web.Response:
    """How many of the filtered deliveries the action would change, and a form to confirm."""
    action = _action_of(request.match_info["action"])
    filters = parse_filters(request.query)
    count = 0 if filters.errors else len(await _bulk_ids(request, filters, action))
    return render(
        request,
        "bulk_confirm.html",
        {
            "nav": "deliveries",
            "action": action,
            "verb": ACTIONS[action],
            "count": min(count, BULK_MAX),
            "capped": count > BULK_MAX,
            "limit": BULK_MAX,
            "filters": filters,
            "operator": OPERATOR,
            "back": "/admin/deliveries?" + urlencode(filters.query()),
        },
    )


@routes.post("/admin/deliveries/bulk/{action}")
async def bulk_apply(request: web.Request) -> web.Response:
    """Retry or cancel the filtered deliveries (at most BULK_MAX), a batch per statement."""
    action = _action_of(request.match_info["action"])
    form = await request.post()
    filters = parse_filters({k: str(form.get(k, "")) for k in FILTER_KEYS})
    back = "/admin/deliveries?" + urlencode(filters.query())
    if filters.errors:
        return redirect(request, back, ("error", "Fix the filters first."))
    pool = request.app[POOL]
    changed = 0
    after: str | None = None
    seen = 0
    while seen < BULK_MAX:
        batch = await store.bulk_ids(
            pool, filters.where, action, after=after, limit=min(BULK_BATCH, BULK_MAX - seen)
        )
        if not batch:
            break
        seen += len(batch)
        after = batch[-1]
        async with pool.acquire() as conn, conn.transaction():
            if action == "retry":
                changed += await store.retry_many(conn, batch)
                await notify(conn, "wake")
            else:
                cancelled = await store.cancel_many(conn, batch)
                changed += len(cancelled)
                for delivery_id in cancelled:
                    await notify(conn, "cancel", id=delivery_id)
    if action == "retry":
        request.app[SCHEDULER].wake.set()
    noun = "delivery" if changed == 1 else "deliveries"
    done = (
        f"{changed:,} {noun} scheduled for an immediate attempt."
        if action == "retry"
        else (f"{changed:,} {noun} cancelled.")
    )
    return redirect(request, back, ("success", done))


@routes.get("/admin/deliveries/{id}")
async def delivery_page(request: web.Request) -> web.Response:
    """One delivery: the event payload and every attempt, with the request as sent."""
    delivery_id = path_id(request, "Delivery")
    pool = request.app[POOL]
    delivery = await store.get(pool, delivery_id, with_attempts=True)
    if delivery is None:
        raise not_found("Delivery", delivery_id)
    event = await pool.fetchrow(EVENT_Q["get_event"], delivery["event_id"], None)
    webhook = await webhook_store.get(pool, delivery["webhook_id"])
    stored = await pool.fetchrow(EVENT_Q["event_as_stored"], delivery["event_id"])
    secrets = await webhook_store.secrets_on_record(pool, delivery["webhook_id"])
    attempts = list(reversed(delivery["attempts"]))
    sent = requests_as_sent(
        dict(stored) if stored else None,
        webhook,
        attempts,
        [Secret(*s) for s in secrets],
        request.app[SETTINGS].secret_grace_seconds,
    )
    context: dict[str, Any] = {
        "nav": "deliveries",
        "delivery": delivery,
        "attempts": [{**a, "sent": r} for a, r in zip(attempts, sent, strict=True)],
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
