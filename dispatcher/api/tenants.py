"""``/v1/tenants``: a team's customers, their tokens and their portal sign-in links.

Only the admin token reaches these routes (a tenant token gets 403 from the auth middleware).
Deleting a tenant deletes its webhooks in the same transaction; this instance applies that at
once, the others through NOTIFY.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from dispatcher import ids
from dispatcher.api.common import json_response, path_id, query_str, read_model
from dispatcher.api.webhooks import changed as webhook_changed
from dispatcher.app_keys import POOL, SETTINGS
from dispatcher.auth import generate_tenant_token
from dispatcher.openapi import PAGINATION, STR, Param, operation
from dispatcher.pagination import page_body, page_from_query
from dispatcher.problems import Problem, not_found
from dispatcher.schemas import (
    PortalLinkIn,
    PortalLinkOut,
    Tenant,
    TenantCreate,
    TenantPage,
    TenantPatch,
    TenantTokenCreated,
    TenantTokenIn,
    TenantTokenPage,
)
from dispatcher.store import tenants as store

routes = web.RouteTableDef()
M = TypeVar("M", bound=BaseModel)

_TENANT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}\Z")
# Where a portal link signs in (served by the portal).
PORTAL_SIGNIN = "/portal/signin/"


def tenant_id_of(request: web.Request) -> str:
    """The tenant id in the path; one that cannot exist answers 404 without a query."""
    value = request.match_info["id"]
    if not _TENANT_ID.match(value):
        raise not_found("Tenant", value[:100])
    return value


async def existing(request: web.Request) -> str:
    """The id of the tenant named in the path, or a 404."""
    tenant_id = tenant_id_of(request)
    if await store.get(request.app[POOL], tenant_id) is None:
        raise not_found("Tenant", tenant_id)
    return tenant_id


async def optional_body(request: web.Request, model: type[M]) -> M:
    """A body whose fields are all optional: none at all means the defaults."""
    if not request.body_exists:
        return model()
    return await read_model(request, model)


# A deleted tenant's log is kept until retention prunes it; its id is not handed out again
# before then, or the new tenant would read the old one's events.
REUSED = (
    "Tenant {!r} was deleted, and its events and deliveries are still kept (until retention "
    "prunes them); choose another id."
)


@routes.post("/v1/tenants")
@operation(
    summary="Register a tenant",
    tag="tenants",
    body=TenantCreate,
    responses={201: Tenant},
    problems=(409,),
)
async def create_tenant(request: web.Request) -> web.Response:
    """Register a tenant (409 if the id exists)."""
    body = await read_model(request, TenantCreate)
    try:
        async with request.app[POOL].acquire() as conn:
            row = await store.create(conn, body.id, body.name, body.metadata)
    except store.LogRemains:
        raise Problem(409, REUSED.format(body.id), slug="conflict") from None
    if row is None:
        raise Problem(409, f"Tenant {body.id!r} already exists.", slug="conflict")
    return json_response(row, status=201)


@routes.get("/v1/tenants")
@operation(
    summary="List tenants",
    tag="tenants",
    responses={200: TenantPage},
    query=(*PAGINATION, Param("q", STR, "only tenants whose id or name contains this")),
)
async def list_tenants(request: web.Request) -> web.Response:
    """Tenants by id."""
    page = page_from_query(request.query)
    search = query_str(request, "q")
    rows = await store.list_page(
        request.app[POOL], after=page.after, limit=page.limit + 1, search=search
    )
    return json_response(page_body(rows, page))


@routes.get("/v1/tenants/{id}")
@operation(summary="A tenant", tag="tenants", responses={200: Tenant}, problems=(404,))
async def get_tenant(request: web.Request) -> web.Response:
    """One tenant."""
    tenant_id = tenant_id_of(request)
    row = await store.get(request.app[POOL], tenant_id)
    if row is None:
        raise not_found("Tenant", tenant_id)
    return json_response(row)


@routes.patch("/v1/tenants/{id}")
@operation(
    summary="Change a tenant",
    tag="tenants",
    body=TenantPatch,
    responses={200: Tenant},
    problems=(404,),
)
async def patch_tenant(request: web.Request) -> web.Response:
    """Change the name and/or the metadata."""
    tenant_id = tenant_id_of(request)
    body = await read_model(request, TenantPatch)
    sent = body.model_fields_set
    for field in ("name", "metadata"):
        if field in sent and getattr(body, field) is None:
            raise Problem(
                422,
                "The request body failed validation.",
                slug="validation",
                title="Validation failed",
                errors=[{"field": field, "message": "must not be null"}],
            )
    row = await store.update(request.app[POOL], tenant_id, name=body.name, metadata=body.metadata)
    if row is None:
        raise not_found("Tenant", tenant_id)
    return json_response(row)


@routes.delete("/v1/tenants/{id}")
@operation(summary="Delete a tenant", tag="tenants", responses={204: None}, problems=(404,))
async def delete_tenant(request: web.Request) -> web.Response:
    """Delete a tenant: its webhooks (unfinished deliveries ``cancelled``), tokens and links."""
    tenant_id = tenant_id_of(request)
    async with request.app[POOL].acquire() as conn:
        webhook_ids = await store.delete(conn, tenant_id)
    if webhook_ids is None:
        raise not_found("Tenant", tenant_id)
    for webhook_id in webhook_ids:
        await webhook_changed(request, webhook_id)
    return web.Response(status=204)


def _expiry(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.now(UTC) + timedelta(seconds=seconds)


@routes.post("/v1/tenants/{id}/tokens")
@operation(
    summary="Create a tenant token",
    tag="tenants",
    body=TenantTokenIn,
    body_optional=True,
    responses={201: TenantTokenCreated},
    problems=(404,),
)
async def create_tenant_token(request: web.Request) -> web.Response:
    """A bearer token that acts only inside this tenant; its secret is shown this once."""
    tenant_id = tenant_id_of(request)
    body = await optional_body(request, TenantTokenIn)
    token = generate_tenant_token()
    row = await store.create_token(
        request.app[POOL], ids.new_id("tt"), tenant_id, token, _expiry(body.expires_in)
    )
    if row is None:
        raise not_found("Tenant", tenant_id)
    return json_response({**row, "token": token}, status=201)


@routes.get("/v1/tenants/{id}/tokens")
@operation(
    summary="List a tenant's tokens",
    tag="tenants",
    responses={200: TenantTokenPage},
    query=PAGINATION,
    problems=(404,),
)
async def list_tenant_tokens(request: web.Request) -> web.Response:
    """A tenant's tokens, newest first, without their secrets."""
    page = page_from_query(request.query)
    tenant_id = await existing(request)
    rows = await store.list_tokens(
        request.app[POOL], tenant_id, after=page.after, limit=page.limit + 1
    )
    return json_response(page_body(rows, page))


@routes.delete("/v1/tenants/{id}/tokens/{token_id}")
@operation(summary="Revoke a tenant token", tag="tenants", responses={204: None}, problems=(404,))
async def delete_tenant_token(request: web.Request) -> web.Response:
    """Revoke a token: it stops working on every instance at once."""
    tenant_id = tenant_id_of(request)
    token_id = path_id(request, "Token", "token_id")
    if not await store.delete_token(request.app[POOL], tenant_id, token_id):
        if await store.get(request.app[POOL], tenant_id) is None:
            raise not_found("Tenant", tenant_id)
        raise not_found("Token", token_id)
    return web.Response(status=204)


@routes.post("/v1/tenants/{id}/portal")
@operation(
    summary="Create a portal sign-in link",
    tag="tenants",
    body=PortalLinkIn,
    body_optional=True,
    responses={201: PortalLinkOut},
    problems=(404,),
)
async def create_portal_link(request: web.Request) -> web.Response:
    """A single-use link that signs a browser in to this tenant's portal."""
    tenant_id = tenant_id_of(request)
    body = await optional_body(request, PortalLinkIn)
    secret = secrets.token_urlsafe(32)
    expires_at = datetime.now(UTC) + timedelta(seconds=body.expires_in)
    row = await store.create_portal_link(request.app[POOL], tenant_id, secret, expires_at)
    if row is None:
        raise not_found("Tenant", tenant_id)
    url = request.app[SETTINGS].public_base_url() + PORTAL_SIGNIN + secret
    out: dict[str, Any] = {"url": url, "expires_at": row["expires_at"]}
    return json_response(out, status=201)
