"""Tenants in the API handlers: the admin's ``?tenant_id=`` filter and "that tenant exists".

The scope itself is :func:`dispatcher.tenancy.scope`; every store call of a tenant-reachable
route passes it on, and the SQL applies it.
"""

from __future__ import annotations

import re

from aiohttp import web

from dispatcher.api.common import query_str
from dispatcher.app_keys import POOL, REGISTRY
from dispatcher.problems import invalid
from dispatcher.schemas import TENANT_ID_PATTERN
from dispatcher.tenancy import scope

_TENANT_ID = re.compile(TENANT_ID_PATTERN.removesuffix("$") + r"\Z")
UNKNOWN = "no tenant has this id"


def tenant_filter(request: web.Request) -> str | None:
    """``?tenant_id=``: only this tenant's (for a tenant token the scope applies anyway, so
    naming another tenant finds nothing). 422 for a value no tenant id can have."""
    value = query_str(request, "tenant_id")
    if value is not None and not _TENANT_ID.match(value):
        raise invalid("tenant_id", "must be 1-128 letters, digits or '._:-'")
    return value


async def known_tenant(request: web.Request, tenant_id: str | None, field: str) -> None:
    """422 unless ``tenant_id`` (when given) is a tenant's: from the registry's set, the
    database only for an id it does not hold yet."""
    if tenant_id is not None and not await request.app[REGISTRY].tenant_exists(
        request.app[POOL], tenant_id
    ):
        raise invalid(field, UNKNOWN, f"There is no tenant {tenant_id!r}.")


async def owner_of_new(request: web.Request, tenant_id: str | None, field: str) -> str | None:
    """The tenant something created now belongs to: a tenant token's own (a body naming
    another tenant: 422), or the one the operator names (which must exist)."""
    own = scope(request)
    if own is not None:
        if tenant_id is not None and tenant_id != own:
            raise invalid(field, "must be your own tenant's id (or left out)")
        return own
    await known_tenant(request, tenant_id, field)
    return tenant_id
