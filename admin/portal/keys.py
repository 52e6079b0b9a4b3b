"""Typed keys for what the portal keeps on the application and on each request."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from admin.portal.session import PortalSession, PortalSigner


@dataclass(frozen=True, slots=True)
class Tenant:
    """The signed-in tenant, as the pages show it."""

    id: str
    name: str


PORTAL_SIGNER = web.AppKey("portal_signer", PortalSigner)
PORTAL_SESSION = web.RequestKey("portal_session", PortalSession)
TENANT = web.RequestKey("portal_tenant", Tenant)
