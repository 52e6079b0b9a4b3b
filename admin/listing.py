"""What the console's lists share: page size, cursors from the query string, status order."""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiohttp import web

from dispatcher.pagination import decode_cursor
from dispatcher.problems import Problem
from dispatcher.schemas import TENANT_ID_PATTERN

PAGE_SIZE = 25
# Delivery statuses in the order a delivery moves through them.
STATUS_ORDER = ("created", "retrying", "success", "failed", "cancelled")


def cursor_of(request: web.Request) -> str | None:
    """The page cursor in the query string; a bad one means the first page."""
    raw = request.query.get("cursor")
    if not raw:
        return None
    try:
        return decode_cursor(raw)
    except Problem:
        return None


# The ?tenant= value meaning "only the operator's own" (no tenant id can contain parentheses).
OPERATOR = "(operator)"
_TENANT_ID = re.compile(TENANT_ID_PATTERN)


@dataclass(frozen=True, slots=True)
class TenantFilter:
    """A ?tenant= filter: one tenant's rows, the operator's own, or (both unset) any."""

    tenant_id: str | None = None
    operator_only: bool = False
    error: str | None = None


def tenant_filter(raw: str) -> TenantFilter:
    """Parse ?tenant= (a tenant id or :data:`OPERATOR`); a malformed id is reported, not applied."""
    raw = raw.strip()
    if not raw:
        return TenantFilter()
    if raw == OPERATOR:
        return TenantFilter(operator_only=True)
    if not _TENANT_ID.fullmatch(raw):
        return TenantFilter(error="Enter a tenant id (letters, digits, . _ : -).")
    return TenantFilter(tenant_id=raw)
