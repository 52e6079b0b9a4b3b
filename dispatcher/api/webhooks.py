"""``/v1/webhooks``: register, list, change, enable/disable, delete, and manage secrets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson
from aiohttp import web

from dispatcher import ids, missed, targets
from dispatcher.api import deliveries as delivery_api
from dispatcher.api.common import json_response, path_id, query_bool, query_str, read_model
from dispatcher.api.scoping import owner_of_new, tenant_filter
from dispatcher.app_keys import ENGINE, INGESTOR, POOL, REGISTRY, SCHEDULER, SETTINGS
from dispatcher.fanout import Routing
from dispatcher.ingest import NewEvent
from dispatcher.matching import name_problem
from dispatcher.openapi import BOOL, NAME, PAGINATION, STATUS, STR, Param, operation
from dispatcher.pagination import page_body, page_from_query
from dispatcher.problems import Problem, invalid, not_found, validation_failed
from dispatcher.schemas import (
    PATCH_NOT_NULL,
    CountOut,
    DeliveryPage,
    EventAccepted,
    ReplayIn,
    SecretOut,
    Webhook,
    WebhookCreate,
    WebhookPage,
    WebhookPatch,
)
from dispatcher.store import deliveries as delivery_store
from dispatcher.store import notify
from dispatcher.store import webhooks as store
from dispatcher.tenancy import scope

routes = web.RouteTableDef()


async def check_target(request: web.Request, url: str) -> None:
    """Refuse private-network targets unless the operator allowed them."""
    if request.app[SETTINGS].allow_private_targets:
        return
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    reason = await targets.forbidden_reason(parts.hostname or "", port)
    if reason:
        raise invalid("url", reason, "The URL points into a private network.")


def in_flight_errors(request: web.Request, value: int | None) -> list[dict[str, str]]:
    """A tenant's ``max_in_flight`` above DISPATCHER_MAX_IN_FLIGHT_PER_WEBHOOK is refused
    (the operator's policy caps a tenant; the operator's own webhooks may go above it)."""
    cap = request.app[SETTINGS].max_in_flight_per_webhook
    if scope(request) is None or value is None or value <= cap:
        return []
    return [{"field": "max_in_flight", "message": f"must be at most {cap} for a tenant"}]


async def changed(request: web.Request, webhook_id: str) -> None:
    """Apply a change to this instance at once (others learn it through NOTIFY)."""
    app = request.app
    await app[REGISTRY].refresh_webhook(app[POOL], webhook_id)
    app[ENGINE].webhook_changed(webhook_id)
    app[SCHEDULER].wake.set()


async def existing(request: web.Request) -> dict[str, Any]:
    """The webhook named in the path (within the caller's scope), or a 404."""
    webhook_id = path_id(request, "Webhook")
    webhook = await store.get(request.app[POOL], webhook_id, scope=scope(request))
    if webhook is None:
        raise not_found("Webhook", webhook_id)
    return webhook


@routes.post("/v1/webhooks")
@operation(
    summary="Register a webhook", tag="webhooks", body=WebhookCreate, responses={201: Webhook}
)
async def create_webhook(request: web.Request) -> web.Response:
    """Register a webhook; the answer includes its signing secret. A tenant token's webhook
    is its tenant's; the operator may name a tenant (``tenant_id``)."""
    body = await read_model(request, WebhookCreate)
    body.tenant_id = await owner_of_new(request, body.tenant_id, "tenant_id")
    if errors := in_flight_errors(request, body.max_in_flight):
        raise validation_failed(errors)
    await check_target(request, body.url)
    async with request.app[POOL].acquire() as conn:
        webhook = await store.create(conn, body)
    await changed(request, webhook["id"])
    return json_response(webhook, status=201)


@routes.get("/v1/webhooks")
@operation(
    summary="List webhooks",
    tag="webhooks",
    responses={200: WebhookPage},
    query=(
        *PAGINATION,
        Param("enabled", BOOL),
        Param("event_type", NAME, "webhooks that receive this type"),
        Param("tenant_id", STR, "only this tenant's"),
    ),
)
async def list_webhooks(request: web.Request) -> web.Response:
    """List webhooks, newest first; ``?enabled=``, ``?event_type=`` and ``?tenant_id=``
    filter."""
    page = page_from_query(request.query)
    event_type = query_str(request, "event_type")
    if event_type is not None and name_problem(event_type):
        raise invalid("event_type", name_problem(event_type) or "")
    rows = await store.list_page(
        request.app[POOL],
        after=page.after,
        limit=page.limit + 1,
        enabled=query_bool(request, "enabled"),
        event_type=event_type,
        scope=scope(request),
        tenant_id=tenant_filter(request),
    )
    return json_response(page_body(rows, page))


@routes.get("/v1/webhooks/{id}")
@operation(summary="A webhook", tag="webhooks", responses={200: Webhook}, problems=(404,))
async def get_webhook(request: web.Request) -> web.Response:
    """One webhook."""
    return json_response(await existing(request))


@routes.patch("/v1/webhooks/{id}")
@operation(
    summary="Change a webhook",
    tag="webhooks",
    body=WebhookPatch,
    responses={200: Webhook},
    problems=(404,),
)
async def patch_webhook(request: web.Request) -> web.Response:
    """Change some fields; null resets a per-webhook override to the global default."""
    webhook_id = path_id(request, "Webhook")
    body = await read_model(request, WebhookPatch)
    changes = {f: getattr(body, f) for f in body.model_fields_set}
    nulls = [
        {"field": f, "message": "must not be null"}
        for f in changes
        if f in PATCH_NOT_NULL and changes[f] is None
    ]
    if nulls:
        raise validation_failed(nulls)
    if errors := in_flight_errors(request, changes.get("max_in_flight")):
        raise validation_failed(errors)
    if changes.get("url"):
        await check_target(request, changes["url"])
    async with request.app[POOL].acquire() as conn:
        webhook = await store.update(conn, webhook_id, changes, scope=scope(request))
    if webhook is None:
        raise not_found("Webhook", webhook_id)
    await changed(request, webhook_id)
    return json_response(webhook)


@routes.delete("/v1/webhooks/{id}")
@operation(
    summary="Delete a webhook (its waiting deliveries are cancelled)",
    tag="webhooks",
    responses={204: None},
    problems=(404,),
)
async def delete_webhook(request: web.Request) -> web.Response:
    """Delete a webhook; its unfinished deliveries become ``cancelled``."""
    webhook_id = path_id(request, "Webhook")
    async with request.app[POOL].acquire() as conn:
        if not await store.delete(conn, webhook_id, scope=scope(request)):
            raise not_found("Webhook", webhook_id)
    await changed(request, webhook_id)
    return web.Response(status=204)


async def _set_enabled(request: web.Request, enabled: bool) -> web.Response:
    webhook_id = path_id(request, "Webhook")
    async with request.app[POOL].acquire() as conn:
        webhook = await store.set_enabled(conn, webhook_id, enabled, "manual", scope=scope(request))
    if webhook is None:
        raise not_found("Webhook", webhook_id)
    await changed(request, webhook_id)
    return json_response(webhook)


@routes.post("/v1/webhooks/{id}/disable")
@operation(summary="Disable a webhook", tag="webhooks", responses={200: Webhook}, problems=(404,))
async def disable_webhook(request: web.Request) -> web.Response:
    """Stop sending to a webhook (``disabled_reason: "manual"``); pending work is held."""
    return await _set_enabled(request, False)


@routes.post("/v1/webhooks/{id}/enable")
@operation(summary="Enable a webhook", tag="webhooks", responses={200: Webhook}, problems=(404,))
async def enable_webhook(request: web.Request) -> web.Response:
    """Resume sending, including deliveries held while it was disabled."""
    return await _set_enabled(request, True)


@routes.get("/v1/webhooks/{id}/secret")
@operation(
    summary="The current signing secret",
    tag="webhooks",
    responses={200: SecretOut},
    problems=(404,),
)
async def get_secret(request: web.Request) -> web.Response:
    """The current signing secret."""
    webhook_id = path_id(request, "Webhook")
    secret = await store.current_secret(request.app[POOL], webhook_id, scope=scope(request))
    if secret is None:
        raise not_found("Webhook", webhook_id)
    return json_response({"secret": secret})


@routes.post("/v1/webhooks/{id}/secret/rotate")
@operation(
    summary="Rotate the signing secret", tag="webhooks", responses={200: SecretOut}, problems=(404,)
)
async def rotate_secret(request: web.Request) -> web.Response:
    """A new secret; the old one keeps signing for ``DISPATCHER_SECRET_GRACE_SECONDS``."""
    webhook_id = path_id(request, "Webhook")
    grace = request.app[SETTINGS].secret_grace_seconds
    async with request.app[POOL].acquire() as conn:
        secret = await store.rotate_secret(conn, webhook_id, grace, scope=scope(request))
    if secret is None:
        raise not_found("Webhook", webhook_id)
    await changed(request, webhook_id)
    return json_response({"secret": secret})


@routes.post("/v1/webhooks/{id}/ping")
@operation(
    summary="Send a webhook.ping to this webhook",
    tag="webhooks",
    responses={202: EventAccepted},
    problems=(404, 409),
)
async def ping_webhook(request: web.Request) -> web.Response:
    """Send a ``webhook.ping`` event to this webhook only."""
    webhook = await existing(request)
    if not webhook["enabled"]:
        raise Problem(409, "The webhook is disabled; enable it to ping it.", slug="conflict")
    event = NewEvent(
        id=ids.event_id(),
        type="webhook.ping",
        data_json=orjson.dumps({"webhook_id": webhook["id"], "message": "ping"}),
        occurred_at=datetime.now(UTC),
        routing=Routing(only=webhook["id"]),
        tenant_id=webhook["tenant_id"],
    )
    [answer] = await request.app[INGESTOR].submit([event])
    return json_response(answer.as_dict(), status=202)


@routes.post("/v1/webhooks/{id}/replay")
@operation(
    summary="Re-queue deliveries by status since a time, or send what was missed",
    tag="webhooks",
    body=ReplayIn,
    responses={202: CountOut},
    problems=(404,),
)
async def replay_webhook(request: web.Request) -> web.Response:
    """Re-queue this webhook's deliveries with ``status`` created since ``since``;
    ``missing`` creates deliveries for matching events it never got."""
    webhook = await existing(request)
    body = await read_model(request, ReplayIn)
    async with request.app[POOL].acquire() as conn:
        if body.status == "missing":
            # Batch by batch, each committed on its own: a long window is no long transaction.
            count = await missed.replay_missing(
                conn,
                webhook["id"],
                webhook["event_types"],
                request.app[REGISTRY].disabled_types,
                body.since,
                scope=scope(request),
            )
            await notify(conn, "wake")
        else:
            async with conn.transaction():
                count = await delivery_store.replay(
                    conn, webhook["id"], body.status, body.since, scope=scope(request)
                )
                await notify(conn, "wake")
    request.app[SCHEDULER].wake.set()
    return json_response({"count": count}, status=202)


@routes.get("/v1/webhooks/{id}/deliveries")
@operation(
    summary="A webhook's deliveries",
    tag="webhooks",
    responses={200: DeliveryPage},
    query=(*PAGINATION, Param("event_id", STR), Param("status", STATUS)),
    problems=(404,),
)
async def webhook_deliveries(request: web.Request) -> web.Response:
    """This webhook's deliveries, newest first (``?status=``, ``?event_id=`` filter)."""
    webhook = await existing(request)
    return await delivery_api.list_response(request, webhook["id"])
