"""The tenant portal at ``/portal``: what a tenant's own people see, for that tenant only.

A browser signs in with a single-use link from ``POST /v1/tenants/{id}/portal`` (served at
``/portal/signin/{secret}``). The pages are the console's, narrowed to one tenant: its
endpoints, its delivery log and the event-type catalogue. The portal shares the console's
templates engine and stylesheet; its sessions are its own (another key, ``Path=/portal``).
"""

from __future__ import annotations

from aiohttp import web

from admin.portal import catalogue, deliveries, signin, webhooks
from admin.portal.keys import PORTAL_SIGNER
from admin.portal.middleware import portal_middleware
from admin.portal.session import PortalSigner
from dispatcher.app_keys import TOKENS


def setup(app: web.Application) -> None:
    """Serve the portal at ``/portal`` from ``app`` (after ``admin.setup``)."""
    app[PORTAL_SIGNER] = PortalSigner(app[TOKENS].admin)
    app.middlewares.append(portal_middleware)
    for module in (signin, webhooks, deliveries, catalogue):
        app.add_routes(module.routes)
