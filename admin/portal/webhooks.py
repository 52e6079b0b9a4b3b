"""The tenant's endpoints (webhooks): list, create, edit, details, enable/disable, secret,
test events, replay of failed deliveries, delete.

Every page first finds the webhook through ``dispatcher.store.portal`` inside the signed-in
tenant (another tenant's id is a 404, like a missing one); changes then go through the same
store functions and API handlers as ``/v1/webhooks``, which run as the tenant too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from admin import queries
from admin import webhooks as console_webhooks
from admin.deliveries import parse_time
from admin.forms import (
    Form,
    new_webhook_values,
    text,
    validate,
    webhook_data,
    webhook_values,
    webhook_values_of,
)
from admin.listing import PAGE_SIZE, cursor_of
from admin.portal.keys import TENANT
from admin.portal.render import redirect, render
from admin.webhooks import status_of
from dispatcher.api import send_test
from dispatcher.api import webhooks as api
from dispatcher.api.common import path_id
from dispatcher.app_keys import POOL, SCHEDULER, SETTINGS
from dispatcher.pagination import Page, page_body
from dispatcher.problems import Handler, Problem, not_found
from dispatcher.schemas import PATCH_NOT_NULL, SendTestIn, WebhookCreate, WebhookPatch
from dispatcher.store import deliveries as delivery_store
from dispatcher.store import event_types as event_type_store
from dispatcher.store import notify
from dispatcher.store import portal as store
from dispatcher.store import webhooks as webhook_store

routes = web.RouteTableDef()

FILTERS = {"": None, "active": True, "disabled": False}
ROOT = "/portal/webhooks"


async def load(request: web.Request) -> dict[str, Any]:
    """The tenant's webhook named in the path, or a 404 page (also for another tenant's)."""
    webhook_id = path_id(request, "Webhook")
    webhook = await store.webhook(request.app[POOL], request[TENANT].id, webhook_id)
    if webhook is None:
        raise not_found("Webhook", webhook_id)
    return webhook


async def rates_of(request: web.Request, webhook_ids: list[str]) -> dict[str, queries.Rate]:
    """The last hour's success rate of those webhooks that are the signed-in tenant's."""
    found = await store.success_rates(
        request.app[POOL], request[TENANT].id, webhook_ids, queries.WINDOW_SECONDS
    )
    return {k: queries.Rate(attempts, ok) for k, (attempts, ok) in found.items()}


@routes.get("/portal")
@routes.get("/portal/")
async def home(request: web.Request) -> web.Response:
    """The portal opens on the endpoints."""
    raise web.HTTPSeeOther(ROOT)


@routes.get(ROOT)
async def list_webhooks(request: web.Request) -> web.Response:
    """The tenant's endpoints with state and last-hour success rate; filter, search, pages."""
    pool = request.app[POOL]
    tenant = request[TENANT]
    state = request.query.get("state", "")
    if state not in FILTERS:
        state = ""
    search = request.query.get("q", "").strip()[:200]
    after = cursor_of(request)
    rows = await store.webhooks(
        pool, tenant.id, after=after, limit=PAGE_SIZE + 1, enabled=FILTERS[state], text=search
    )
    page = page_body(rows, Page(PAGE_SIZE, after))
    webhooks = page["data"]
    rates = await rates_of(request, [w["id"] for w in webhooks])
    total, active = await store.webhook_counts(pool, tenant.id)
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
        request,
        "webhook_form.html",
        await console_webhooks.form_context(request, form, webhook),
        status=status,
    )


@routes.get(ROOT + "/new")
async def new_webhook(request: web.Request) -> web.Response:
    """The create form."""
    return await _form_page(request, Form(values=new_webhook_values()))


@routes.post(ROOT + "/new")
async def create_webhook(request: web.Request) -> web.Response:
    """Create an endpoint of this tenant, validated exactly as ``POST /v1/webhooks``."""
    values = webhook_values(await request.post(), create=True)
    data, form = webhook_data(values, create=True)
    form.values["secret"] = ""  # never echo a secret back into the page
    data["tenant_id"] = request[TENANT].id  # always the session's tenant, never the form's
    validate(WebhookCreate, data, form)
    if form.ok:
        assert isinstance(form.model, WebhookCreate)
        form.add_errors(api.in_flight_errors(request, form.model.max_in_flight))
        try:
            await api.check_target(request, form.model.url)
        except Problem as problem:
            form.add_errors(problem.errors or [])
    if not form.ok:
        return await _form_page(request, form, status=422)
    assert isinstance(form.model, WebhookCreate)
    async with request.app[POOL].acquire() as conn:
        webhook = await webhook_store.create(conn, form.model)
    await api.changed(request, webhook["id"])
    return redirect(
        request,
        f"{ROOT}/{webhook['id']}",
        ("success", f"Endpoint “{webhook['name']}” created. Reveal its signing secret below."),
    )


@routes.get(ROOT + "/{id}/edit")
async def edit_webhook(request: web.Request) -> web.Response:
    """The edit form, filled with the endpoint's current settings."""
    webhook = await load(request)
    return await _form_page(request, Form(values=webhook_values_of(webhook)), webhook=webhook)


@routes.post(ROOT + "/{id}/edit")
async def save_webhook(request: web.Request) -> web.Response:
    """Apply the edit form like ``PATCH /v1/webhooks/{id}``."""
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
        form.add_errors(api.in_flight_errors(request, changes.get("max_in_flight")))
        if changes.get("url") and changes["url"] != webhook["url"]:
            try:
                await api.check_target(request, changes["url"])
            except Problem as problem:
                form.add_errors(problem.errors or [])
    if not form.ok:
        return await _form_page(request, form, webhook=webhook, status=422)
    async with request.app[POOL].acquire() as conn:
        updated = await webhook_store.update(conn, webhook["id"], changes, scope=request[TENANT].id)
    if updated is None:
        raise not_found("Webhook", webhook["id"])
    await api.changed(request, webhook["id"])
    return redirect(request, f"{ROOT}/{webhook['id']}", ("success", "Changes saved."))


@routes.get(ROOT + "/{id}")
async def webhook_details(request: web.Request) -> web.Response:
    """One endpoint: state, settings, secret (``?secret=show``), tests, replay, its log."""
    webhook = await load(request)
    pool = request.app[POOL]
    settings = request.app[SETTINGS]
    unfinished = await store.unfinished(pool, request[TENANT].id, webhook["id"])
    rows = await store.deliveries(
        pool, request[TENANT].id, after=None, limit=10, webhook_id=webhook["id"]
    )
    context: dict[str, Any] = {
        "nav": "webhooks",
        "webhook": webhook,
        "status": status_of(webhook),
        "rate": (await rates_of(request, [webhook["id"]])).get(webhook["id"]),
        "unfinished": unfinished,
        "held": 0 if webhook["enabled"] else unfinished,
        "failures_before_disable": settings.failures_before_disable,
        "failure_window_seconds": settings.failure_window_seconds,
        "example_types": await event_type_store.names_with_examples(pool),
        "deliveries": rows,
        "replay_since": (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
        "defaults": {
            "max_retries": settings.max_retries,
            "timeout_seconds": settings.delivery_timeout_seconds,
        },
        "secret": None,
    }
    if request.query.get("secret") == "show":
        context["secret"] = await webhook_store.current_secret(
            pool, webhook["id"], scope=request[TENANT].id
        )
    return render(request, "webhook.html", context)


async def _action(request: web.Request, handler: Handler, done: str) -> web.Response:
    """Run an API handler on the tenant's webhook in the path; 409s become a message."""
    webhook = await load(request)
    back = f"{ROOT}/{webhook['id']}"
    try:
        await handler(request)
    except Problem as problem:
        if problem.status != 409:
            raise
        return redirect(request, back, ("error", problem.detail))
    return redirect(request, back, ("success", done))


@routes.post(ROOT + "/{id}/enable")
async def enable_webhook(request: web.Request) -> web.Response:
    """Enable; held deliveries resume."""
    return await _action(
        request, api.enable_webhook, "Endpoint enabled. Held deliveries are being sent."
    )


@routes.post(ROOT + "/{id}/disable")
async def disable_webhook(request: web.Request) -> web.Response:
    """Disable; waiting deliveries are held until it is enabled again."""
    return await _action(
        request, api.disable_webhook, "Endpoint disabled. New events will not be sent to it."
    )


@routes.post(ROOT + "/{id}/ping")
async def ping_webhook(request: web.Request) -> web.Response:
    """Send a ``webhook.ping`` event to this endpoint only."""
    return await _action(
        request, api.ping_webhook, "Ping sent. It appears in the deliveries as webhook.ping."
    )


@routes.post(ROOT + "/{id}/secret/rotate")
async def rotate_secret(request: web.Request) -> web.Response:
    """A new signing secret, shown at once; the old one signs during the grace period."""
    webhook = await load(request)
    await api.rotate_secret(request)
    grace = request.app[SETTINGS].secret_grace_seconds
    until = datetime.now(UTC) + timedelta(seconds=grace)
    message = "Secret rotated. Update your receiver with the new secret below."
    if grace > 0:
        message += f" The previous secret keeps signing until {until:%Y-%m-%d %H:%M} UTC."
    return redirect(request, f"{ROOT}/{webhook['id']}?secret=show", ("success", message))


@routes.post(ROOT + "/{id}/test")
async def send_test_event(request: web.Request) -> web.Response:
    """One event of the chosen type (its first example) to this endpoint only."""
    webhook = await load(request)
    back = f"{ROOT}/{webhook['id']}"
    event_type = text(await request.post(), "event_type")
    try:
        body = SendTestIn.model_validate({"event_type": event_type})
        if not webhook["enabled"]:
            raise Problem(409, "The endpoint is disabled; enable it to send it a test event.")
        stored = await event_type_store.get(request.app[POOL], event_type)
        data = send_test.data_to_send(body, stored)
        answer = await send_test.send(
            request, webhook["id"], event_type, data, webhook["tenant_id"]
        )
    except Problem as problem:
        return redirect(request, back, ("error", problem.detail))
    except ValidationError:
        return redirect(request, back, ("error", "Choose an event type to send."))
    return redirect(
        request,
        back,
        ("success", f"Test {event_type} sent as {answer['id']}; it appears in the deliveries."),
    )


@routes.post(ROOT + "/{id}/replay")
async def replay_failed(request: web.Request) -> web.Response:
    """Queue this endpoint's failed deliveries since a time again."""
    webhook = await load(request)
    back = f"{ROOT}/{webhook['id']}"
    raw = text(await request.post(), "since").strip()
    try:
        since = parse_time(raw) if raw else None
    except ValueError:
        return redirect(
            request, back, ("error", "Enter a date and time, like 2026-11-25 14:00 (UTC).")
        )
    if since is None:
        return redirect(request, back, ("error", "Choose when to replay from."))
    if since > datetime.now(UTC):
        return redirect(request, back, ("error", "Choose a time in the past."))
    async with request.app[POOL].acquire() as conn, conn.transaction():
        count = await delivery_store.replay(
            conn, webhook["id"], "failed", since, scope=request[TENANT].id
        )
        await notify(conn, "wake")
    request.app[SCHEDULER].wake.set()
    noun = "delivery" if count == 1 else "deliveries"
    done = f"{count:,} failed {noun} since {since:%Y-%m-%d %H:%M} UTC queued again."
    if count and not webhook["enabled"]:
        done += " They are held until the endpoint is enabled."
    return redirect(request, f"/portal/deliveries?webhook={webhook['id']}", ("success", done))


@routes.get(ROOT + "/{id}/delete")
async def confirm_delete(request: web.Request) -> web.Response:
    """Ask before deleting, saying what it does."""
    webhook = await load(request)
    unfinished = await store.unfinished(request.app[POOL], request[TENANT].id, webhook["id"])
    back = f"{ROOT}/{webhook['id']}"
    return render(
        request,
        "confirm_delete.html",
        {
            "nav": "webhooks",
            "kind": "endpoint",
            "title": f"Delete endpoint “{webhook['name']}”?",
            "crumbs": [("Endpoints", ROOT), (webhook["name"], back)],
            "action": f"{ROOT}/{webhook['id']}/delete",
            "back": back,
            "consequences": [
                "No more events are sent to this endpoint, starting now.",
                (
                    f"Its {unfinished} unfinished deliver{'y' if unfinished == 1 else 'ies'} "
                    "will be cancelled."
                    if unfinished
                    else "It has no unfinished deliveries."
                ),
                "Its delivery log stays visible until it is cleaned up by retention.",
            ],
            "button": "Delete endpoint",
        },
    )


@routes.post(ROOT + "/{id}/delete")
async def delete_webhook(request: web.Request) -> web.Response:
    """Delete, like ``DELETE /v1/webhooks/{id}``."""
    webhook = await load(request)
    await api.delete_webhook(request)
    return redirect(request, ROOT, ("success", f"Endpoint “{webhook['name']}” deleted."))
