"""Signing in with a portal link (once), and signing out."""

from __future__ import annotations

from aiohttp import web

from admin.portal.keys import PORTAL_SESSION, PORTAL_SIGNER
from admin.portal.middleware import SIGNED_OUT, SIGNIN, signed_out_page
from admin.portal.render import delete_cookie, redirect, render, set_cookie
from admin.portal.session import SESSION_COOKIE, SESSION_SECONDS
from dispatcher.app_keys import POOL
from dispatcher.store import console_sessions
from dispatcher.store import portal as portal_store
from dispatcher.store import tenants as tenant_store

routes = web.RouteTableDef()

# A link's secret is token_urlsafe(32): 43 characters. Anything far off is not a link.
MAX_SECRET = 200

WHY = {
    "used": (
        "This sign-in link has already been used",
        "Each link signs in once. Ask for a new link to open the portal again.",
    ),
    "expired": (
        "This sign-in link has expired",
        "Links are valid for a limited time. Ask for a new link to open the portal.",
    ),
    "unknown": (
        "This sign-in link is not valid",
        "Check that the whole link was copied, or ask for a new one.",
    ),
}


@routes.get(SIGNIN + "{secret}")
async def signin(request: web.Request) -> web.Response:
    """Consume the link (atomically: one browser only) and start a session in its tenant."""
    secret = request.match_info["secret"]
    pool = request.app[POOL]
    tenant_id = None
    if 0 < len(secret) <= MAX_SECRET:
        tenant_id = await tenant_store.consume_portal_link(pool, secret)
    since = await portal_store.tenant_since(pool, tenant_id) if tenant_id else None
    if tenant_id is None or since is None:
        state = "unknown"
        if 0 < len(secret) <= MAX_SECRET:
            state = await tenant_store.portal_link_state(pool, secret)
        title, detail = WHY.get(state, WHY["unknown"])
        status = 410 if state in ("used", "expired") else 404
        return render(
            request, "link_refused.html", {"title": title, "detail": detail}, status=status
        )
    cookie, _session = request.app[PORTAL_SIGNER].issue_for(tenant_id, since)
    response = redirect(request, "/portal/")
    set_cookie(response, request, SESSION_COOKIE, cookie, max_age=SESSION_SECONDS)
    return response


@routes.post("/portal/signout")
async def signout(request: web.Request) -> web.Response:
    """End the session everywhere (the middleware checked the CSRF token)."""
    session = request[PORTAL_SESSION]
    await console_sessions.revoke(request.app[POOL], session.nonce, session.expires)
    response = redirect(request, SIGNED_OUT)
    delete_cookie(response, request, SESSION_COOKIE)
    return response


@routes.get(SIGNED_OUT)
async def signed_out(request: web.Request) -> web.Response:
    """After signing out: how to get back in."""
    return signed_out_page(request, status=200)
