"""Tenant pages: list and search, create, edit, tokens (create, revoke), "open the portal as
this tenant", and delete with its consequences spelt out first.

Changes go through ``dispatcher.store.tenants`` and the same models as ``/v1/tenants``.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from admin.forms import Form, parse_metadata, text, validate
from admin.listing import PAGE_SIZE
from admin.render import pretty_json, redirect, render
from dispatcher import ids
from dispatcher.api.tenants import PORTAL_SIGNIN, tenant_id_of
from dispatcher.api.webhooks import changed as webhook_changed
from dispatcher.app_keys import POOL
from dispatcher.auth import generate_tenant_token
from dispatcher.problems import not_found
from dispatcher.schemas import PORTAL_DEFAULT_EXPIRES_IN, TenantCreate, TenantPatch
from dispatcher.store import portal as portal_store
from dispatcher.store import tenants as store

routes = web.RouteTableDef()

ROOT = "/admin/tenants"
# Token lifetimes offered by the form (seconds; "" lasts until revoked).
LIFETIMES = {"": "Until revoked", "86400": "1 day", "2592000": "30 days", "31536000": "1 year"}


async def load(request: web.Request) -> dict[str, Any]:
    """The tenant named in the path, or a 404 page."""
    tenant_id = tenant_id_of(request)
    tenant = await store.get(request.app[POOL], tenant_id)
    if tenant is None:
        raise not_found("Tenant", tenant_id)
    return tenant


def _values(form: Any) -> dict[str, str]:
    return {name: text(form, name) for name in ("id", "name", "metadata")}


async def _list_page(
    request: web.Request, form: Form[Any] | None = None, status: int = 200
) -> web.Response:
    search = request.query.get("q", "").strip()[:200]
    raw_after = request.query.get("after", "").strip()[:128] or None
    rows = await store.list_page(
        request.app[POOL], after=raw_after, limit=PAGE_SIZE + 1, search=search or None
    )
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return render(
        request,
        "tenants.html",
        {
            "nav": "tenants",
            "tenants": rows,
            "search": search,
            "next_after": rows[-1]["id"] if more and rows else None,
            "paged": raw_after is not None,
            "values": form.values if form else {"id": "", "name": "", "metadata": ""},
            "errors": form.errors if form else {},
        },
        status=status,
    )


@routes.get(ROOT)
async def list_tenants(request: web.Request) -> web.Response:
    """Tenants by id, searched by id or name, with the create form."""
    return await _list_page(request)


@routes.post(ROOT + "/new")
async def create_tenant(request: web.Request) -> web.Response:
    """Create a tenant, validated exactly as ``POST /v1/tenants``."""
    values = _values(await request.post())
    form: Form[TenantCreate] = Form(values=dict(values))
    metadata, problem = parse_metadata(values["metadata"])
    if problem:
        form.errors["metadata"] = problem
    data = {"id": values["id"].strip(), "name": values["name"].strip(), "metadata": metadata}
    validate(TenantCreate, data, form)
    if form.ok:
        assert form.model is not None
        try:
            async with request.app[POOL].acquire() as conn:
                row = await store.create(conn, form.model.id, form.model.name, form.model.metadata)
        except store.LogRemains:
            row = None
            form.errors["id"] = (
                "This id was a deleted tenant's whose events are still kept; choose another."
            )
        if row is None:
            form.errors.setdefault("id", "A tenant with this id exists already.")
        else:
            return redirect(
                request, f"{ROOT}/{row['id']}", ("success", f"Tenant “{row['name']}” created.")
            )
    return await _list_page(request, form, status=422)


async def _details(
    request: web.Request,
    tenant: dict[str, Any],
    *,
    form: Form[Any] | None = None,
    token: dict[str, Any] | None = None,
    status: int = 200,
) -> web.Response:
    pool = request.app[POOL]
    tokens = await store.list_tokens(pool, tenant["id"], after=None, limit=200)
    total, active = await portal_store.webhook_counts(pool, tenant["id"])
    metadata = tenant["metadata"] or {}
    return render(
        request,
        "tenant.html",
        {
            "nav": "tenants",
            "tenant": tenant,
            "tokens": tokens,
            "new_token": token,
            "lifetimes": LIFETIMES,
            "webhook_count": total,
            "active_count": active,
            "now": datetime.now(UTC),
            "values": form.values
            if form
            else {"name": tenant["name"], "metadata": pretty_json(metadata) if metadata else ""},
            "errors": form.errors if form else {},
        },
        status=status,
    )


@routes.get(ROOT + "/{id}")
async def tenant_details(request: web.Request) -> web.Response:
    """One tenant: its settings, webhooks, tokens and portal."""
    return await _details(request, await load(request))


@routes.post(ROOT + "/{id}/edit")
async def save_tenant(request: web.Request) -> web.Response:
    """Change the name and metadata, like ``PATCH /v1/tenants/{id}``."""
    tenant = await load(request)
    values = _values(await request.post())
    form: Form[TenantPatch] = Form(values=dict(values))
    metadata, problem = parse_metadata(values["metadata"])
    if problem:
        form.errors["metadata"] = problem
    validate(TenantPatch, {"name": values["name"].strip(), "metadata": metadata}, form)
    if not form.ok:
        return await _details(request, tenant, form=form, status=422)
    assert form.model is not None
    row = await store.update(
        request.app[POOL], tenant["id"], name=form.model.name, metadata=form.model.metadata
    )
    if row is None:
        raise not_found("Tenant", tenant["id"])
    return redirect(request, f"{ROOT}/{tenant['id']}", ("success", "Changes saved."))


@routes.post(ROOT + "/{id}/tokens")
async def create_token(request: web.Request) -> web.Response:
    """A new tenant token, shown on this page once (it is stored only as a hash)."""
    tenant = await load(request)
    lifetime = text(await request.post(), "expires_in")
    if lifetime not in LIFETIMES:
        lifetime = ""
    expires_at = datetime.now(UTC) + timedelta(seconds=int(lifetime)) if lifetime else None
    token = generate_tenant_token()
    row = await store.create_token(
        request.app[POOL], ids.new_id("tt"), tenant["id"], token, expires_at
    )
    if row is None:
        raise not_found("Tenant", tenant["id"])
    return await _details(request, tenant, token={**row, "token": token})


@routes.post(ROOT + "/{id}/tokens/{token_id}/revoke")
async def revoke_token(request: web.Request) -> web.Response:
    """Revoke a token: it stops working on every instance at the next request."""
    tenant = await load(request)
    token_id = request.match_info["token_id"][:100]
    if not await store.delete_token(request.app[POOL], tenant["id"], token_id):
        raise not_found("Token", token_id)
    return redirect(request, f"{ROOT}/{tenant['id']}", ("success", f"Token {token_id} revoked."))


@routes.post(ROOT + "/{id}/portal")
async def open_portal(request: web.Request) -> web.Response:
    """Create a single-use link and follow it: this browser signs in to the tenant's portal."""
    tenant = await load(request)
    secret = secrets.token_urlsafe(32)
    expires_at = datetime.now(UTC) + timedelta(seconds=PORTAL_DEFAULT_EXPIRES_IN)
    row = await store.create_portal_link(request.app[POOL], tenant["id"], secret, expires_at)
    if row is None:
        raise not_found("Tenant", tenant["id"])
    # Relative, so it opens on the host the operator is using (the link is used at once).
    return web.Response(status=303, headers={"Location": PORTAL_SIGNIN + secret})


@routes.get(ROOT + "/{id}/delete")
async def confirm_delete(request: web.Request) -> web.Response:
    """Ask before deleting, saying what goes with the tenant."""
    tenant = await load(request)
    counts = await portal_store.footprint(request.app[POOL], tenant["id"])
    webhooks, unfinished, tokens = counts["webhooks"], counts["unfinished"], counts["tokens"]
    back = f"{ROOT}/{tenant['id']}"
    return render(
        request,
        "confirm_delete.html",
        {
            "nav": "tenants",
            "kind": "tenant",
            "title": f"Delete tenant “{tenant['name']}”?",
            "crumbs": [("Tenants", ROOT), (tenant["name"], back)],
            "action": f"{ROOT}/{tenant['id']}/delete",
            "back": back,
            "consequences": [
                f"Its {webhooks} webhook{'' if webhooks == 1 else 's'} "
                "will be deleted: nothing more is sent to them."
                if webhooks
                else "It has no webhooks.",
                f"Their {unfinished} unfinished deliver{'y' if unfinished == 1 else 'ies'} "
                "will be cancelled."
                if unfinished
                else "There are no unfinished deliveries to cancel.",
                f"Its {tokens} token{' stops' if tokens == 1 else 's stop'} working at once."
                if tokens
                else "It has no tokens.",
                "Its portal links and portal sessions stop working.",
                "Its events and delivery log stay (for you only) until retention removes them.",
            ],
            "button": "Delete tenant",
        },
    )


@routes.post(ROOT + "/{id}/delete")
async def delete_tenant(request: web.Request) -> web.Response:
    """Delete, like ``DELETE /v1/tenants/{id}`` (one transaction)."""
    tenant = await load(request)
    async with request.app[POOL].acquire() as conn:
        webhook_ids = await store.delete(conn, tenant["id"])
    if webhook_ids is None:
        raise not_found("Tenant", tenant["id"])
    for webhook_id in webhook_ids:
        await webhook_changed(request, webhook_id)
    return redirect(request, ROOT, ("success", f"Tenant “{tenant['name']}” deleted."))
