"""Webhook pages: list, create, edit, details (secret, ping, enable/disable, delete) and logs.

Changes go through the same store functions and API helpers as ``/v1/webhooks``; single-step
actions call the API handler itself, so the console and the API cannot drift apart.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from admin import queries
from admin.forms import (
    Form,
    new_webhook_values,
    validate,
    webhook_data,
    webhook_values,
    webhook_values_of,
)
from admin.listing import OPERATOR, PAGE_SIZE, STATUS_ORDER, cursor_of
from admin.performance import performance
from admin.render import redirect, render
from dispatcher.api import webhooks as api
from dispatcher.api.common import path_id
from dispatcher.api.deliveries import STATUSES
from dispatcher.app_keys import POOL, SETTINGS
from dispatcher.pagination import Page, page_body
from dispatcher.problems import Handler, Problem, not_found
from dispatcher.schemas import PATCH_NOT_NULL, WebhookCreate, WebhookPatch
from dispatcher.store import deliveries as delivery_store
from dispatcher.store import event_types as event_type_store
from dispatcher.store import webhooks as store

routes = web.RouteTableDef()

FILTERS = {"": None, "active": True, "disabled": False}


def status_of(webhook: dict[str, Any]) -> tuple[str, str]:
    """The label and pill colour for a webhook's state."""
    if webhook["enabled"]:
        return "Active", "green"
    return {
        "auto": ("Auto-disabled", "red"),
        "gone": ("Gone", "red"),
    }.get(webhook["disabled_reason"] or "", ("Disabled", "gray"))


async def load(request: web.Request) -> dict[str, Any]:
    """The webhook named in the path, or a 404 page."""
    webhook_id = path_id(request, "Webhook")
    webhook = await store.get(request.app[POOL], webhook_id)
    if webhook is None:
        raise not_found("Webhook", webhook_id)
    return webhook


@routes.get("/admin/webhooks")
async def list_webhooks(request: web.Request) -> web.Response:
    """All webhooks with their state and last-hour success rate; filter, search, pages."""
    pool = request.app[POOL]
    state = request.query.get("state", "")
    if state not in FILTERS:
        state = ""
    search = request.query.get("q", "").strip()[:200]
    tenant = request.query.get("tenant", "").strip()[:128]
    after = cursor_of(request)
    # The operator's own are only a console filter: the API's list has no such parameter, so
    # they are read with the search (empty text matches every webhook).
    if search or tenant == OPERATOR:
        rows = await queries.search_webhooks(
            pool,
            after=after,
            limit=PAGE_SIZE + 1,
            enabled=FILTERS[state],
            text=search,
            tenant_id=None if tenant == OPERATOR else tenant or None,
            operator_only=tenant == OPERATOR,
        )
    else:
        rows = await store.list_page(
            pool, after=after, limit=PAGE_SIZE + 1, enabled=FILTERS[state], tenant_id=tenant or None
        )
    page = page_body(rows, Page(PAGE_SIZE, after))
    webhooks = page["data"]
    rates = await queries.success_rates(pool, [w["id"] for w in webhooks])
    total, active = await queries.webhook_counts(pool)
    return render(
        request,
        "webhooks.html",
        {
            "nav": "webhooks",
            "webhooks": [
                {**w, "status": status_of(w), "rate": rates.get(w["id"])} for w in webhooks
            ],
            "state": state,
            "search": search,
            "tenant": tenant,
            "next_cursor": page["next_cursor"],
            "paged": after is not None,
            "counts": {"": total, "active": active, "disabled": total - active},
        },
    )


async def _form_page(
    request: web.Request,
    form: Form[Any],
    *,
    webhook: dict[str, Any] | None = None,
    status: int = 200,
) -> web.Response:
    return render(
        request, "webhook_form.html", await form_context(request, form, webhook), status=status
    )


async def form_context(
    request: web.Request, form: Form[Any], webhook: dict[str, Any] | None
) -> dict[str, Any]:
    """What the webhook form shows (the console's and the portal's are one template)."""
    settings = request.app[SETTINGS]
    known = await event_type_store.list_page(request.app[POOL], after=None, limit=30)
    return {
        "nav": "webhooks",
        "webhook": webhook,
        "values": form.values,
        "errors": form.errors,
        "known_types": [t["name"] for t in known],
        "defaults": {
            "max_retries": settings.max_retries,
            "timeout_seconds": settings.delivery_timeout_seconds,
        },
    }


@routes.get("/admin/webhooks/new")
async def new_webhook(request: web.Request) -> web.Response:
    """The create form."""
    return await _form_page(request, Form(values=new_webhook_values()))


@routes.post("/admin/webhooks/new")
async def create_webhook(request: web.Request) -> web.Response:
    """Create a webhook, validated exactly as ``POST /v1/webhooks``."""
    values = webhook_values(await request.post(), create=True)
    data, form = webhook_data(values, create=True)
    form.values["secret"] = ""  # never echo a secret back into the page
    validate(WebhookCreate, data, form)
    if form.ok:
        assert isinstance(form.model, WebhookCreate)
        try:
            await api.check_target(request, form.model.url)
        except Problem as problem:
            form.add_errors(problem.errors or [])
    if not form.ok:
        return await _form_page(request, form, status=422)
    assert isinstance(form.model, WebhookCreate)
    async with request.app[POOL].acquire() as conn:
        webhook = await store.create(conn, form.model)
    await api.changed(request, webhook["id"])
    return redirect(
        request,
        f"/admin/webhooks/{webhook['id']}",
        ("success", f"Webhook “{webhook['name']}” created. Reveal its signing secret below."),
    )


@routes.get("/admin/webhooks/{id}/edit")
async def edit_webhook(request: web.Request) -> web.Response:
    """The edit form, filled with the webhook's current settings."""
    webhook = await load(request)
    return await _form_page(request, Form(values=webhook_values_of(webhook)), webhook=webhook)


@routes.post("/admin/webhooks/{id}/edit")
async def save_webhook(request: web.Request) -> web.Response:
    """Apply the edit form like ``PATCH /v1/webhooks/{id}``; blank overrides reset to global."""
    webhook = await load(request)
    values = webhook_values(await request.post(), create=False)
    data, form = webhook_data(values, create=False)
    validate(WebhookPatch, data, form)
    changes: dict[str, Any] = {}
    if form.ok:
        assert isinstance(form.model, WebhookPatch)
        changes = {f: getattr(form.model, f) for f in form.model.model_fields_set}
        form.add_errors(
            [
                {"field": f, "message": "must not be null"}
                for f in changes
                if f in PATCH_NOT_NULL and changes[f] is None
            ]
        )
        if changes.get("url") and changes["url"] != webhook["url"]:
            try:
                await api.check_target(request, changes["url"])
            except Problem as problem:
                form.add_errors(problem.errors or [])
    if not form.ok:
        return await _form_page(request, form, webhook=webhook, status=422)
    async with request.app[POOL].acquire() as conn:
        updated = await store.update(conn, webhook["id"], changes)
    if updated is None:
        raise not_found("Webhook", webhook["id"])
    await api.changed(request, webhook["id"])
    return redirect(request, f"/admin/webhooks/{webhook['id']}", ("success", "Changes saved."))


async def _header(request: web.Request, webhook: dict[str, Any]) -> dict[str, Any]:
    """What both tabs show above their content."""
    settings = request.app[SETTINGS]
    pool = request.app[POOL]
    rate = (await queries.success_rates(pool, [webhook["id"]])).get(webhook["id"])
    unfinished = await queries.unfinished(pool, webhook["id"])
    return {
        "nav": "webhooks",
        "webhook": webhook,
        "status": status_of(webhook),
        "rate": rate,
        "unfinished": unfinished,
        # A disabled webhook's unfinished deliveries wait for it to be enabled again.
        "held": 0 if webhook["enabled"] else unfinished,
        "failures_before_disable": settings.failures_before_disable,
        "failure_window_seconds": settings.failure_window_seconds,
        # "Send example" offers the types that have one.
        "example_types": await event_type_store.names_with_examples(pool),
    }


@routes.get("/admin/webhooks/{id}")
async def webhook_details(request: web.Request) -> web.Response:
    """The Details tab; ``?secret=show`` reveals the signing secret."""
    webhook = await load(request)
    context = await _header(request, webhook)
    settings = request.app[SETTINGS]
    if request.query.get("secret") == "show":
        context["secret"] = await store.current_secret(request.app[POOL], webhook["id"])
    context.update(
        tab="details",
        performance=await performance(
            request.app[POOL], webhook["id"], request.query.get("span", "")
        ),
        replay_since=(datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
        defaults={
            "max_retries": settings.max_retries,
            "timeout_seconds": settings.delivery_timeout_seconds,
        },
    )
    return render(request, "webhook.html", context)


@routes.get("/admin/webhooks/{id}/logs")
async def webhook_logs(request: web.Request) -> web.Response:
    """The Logs tab: this webhook's deliveries, newest first, filtered by status."""
    webhook = await load(request)
    status = request.query.get("status", "")
    if status not in STATUSES:
        status = ""
    after = cursor_of(request)
    rows = await delivery_store.list_page(
        request.app[POOL],
        after=after,
        limit=PAGE_SIZE + 1,
        webhook_id=webhook["id"],
        status=status or None,
    )
    page = page_body(rows, Page(PAGE_SIZE, after))
    context = await _header(request, webhook)
    context.update(
        tab="logs",
        deliveries=page["data"],
        status_filter=status,
        statuses=STATUS_ORDER,
        next_cursor=page["next_cursor"],
        paged=after is not None,
    )
    return render(request, "webhook.html", context)


async def _action(request: web.Request, handler: Handler, done: str) -> web.Response:
    """Run an API handler for the webhook in the path; 409s become an error message."""
    webhook_id = path_id(request, "Webhook")
    try:
        await handler(request)
    except Problem as problem:
        if problem.status != 409:
            raise
        return redirect(request, f"/admin/webhooks/{webhook_id}", ("error", problem.detail))
    return redirect(request, f"/admin/webhooks/{webhook_id}", ("success", done))


@routes.post("/admin/webhooks/{id}/enable")
async def enable_webhook(request: web.Request) -> web.Response:
    """Enable; held deliveries resume."""
    return await _action(
        request, api.enable_webhook, "Webhook enabled. Held deliveries are being sent."
    )


@routes.post("/admin/webhooks/{id}/disable")
async def disable_webhook(request: web.Request) -> web.Response:
    """Disable; waiting deliveries are held until it is enabled again."""
    return await _action(
        request, api.disable_webhook, "Webhook disabled. New events will not be sent to it."
    )


@routes.post("/admin/webhooks/{id}/ping")
async def ping_webhook(request: web.Request) -> web.Response:
    """Send a ``webhook.ping`` event to this webhook only."""
    return await _action(
        request, api.ping_webhook, "Ping sent. It appears in the Logs tab as webhook.ping."
    )


@routes.post("/admin/webhooks/{id}/secret/rotate")
async def rotate_secret(request: web.Request) -> web.Response:
    """A new signing secret, shown at once; the old one signs during the grace period."""
    webhook_id = path_id(request, "Webhook")
    await api.rotate_secret(request)
    grace = request.app[SETTINGS].secret_grace_seconds
    until = datetime.now(UTC) + timedelta(seconds=grace)
    message = "Secret rotated. Update your receiver with the new secret below."
    if grace > 0:
        message += f" The previous secret keeps signing until {until:%Y-%m-%d %H:%M} UTC."
    return redirect(request, f"/admin/webhooks/{webhook_id}?secret=show", ("success", message))


@routes.get("/admin/webhooks/{id}/delete")
async def confirm_delete(request: web.Request) -> web.Response:
    """Ask before deleting."""
    webhook = await load(request)
    unfinished = await queries.unfinished(request.app[POOL], webhook["id"])
    back = f"/admin/webhooks/{webhook['id']}"
    return render(
        request,
        "confirm_delete.html",
        {
            "nav": "webhooks",
            "kind": "webhook",
            "title": f"Delete webhook “{webhook['name']}”?",
            "name": webhook["name"],
            "crumbs": [("Webhooks", "/admin/webhooks"), (webhook["name"], back)],
            "action": f"/admin/webhooks/{webhook['id']}/delete",
            "back": back,
            "consequences": [
                "Dispatcher stops sending events to this endpoint immediately.",
                (
                    f"Its {unfinished} unfinished deliver{'y' if unfinished == 1 else 'ies'} "
                    f"will be cancelled."
                    if unfinished
                    else "It has no unfinished deliveries."
                ),
                "Its delivery log is kept until retention removes it.",
            ],
            "button": "Delete webhook",
        },
    )


@routes.post("/admin/webhooks/{id}/delete")
async def delete_webhook(request: web.Request) -> web.Response:
    """Delete, like ``DELETE /v1/webhooks/{id}``."""
    webhook = await load(request)
    await api.delete_webhook(request)
    return redirect(
        request, "/admin/webhooks", ("success", f"Webhook “{webhook['name']}” deleted.")
    )
