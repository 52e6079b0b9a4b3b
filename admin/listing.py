"""What the console's lists share: page size, cursors from the query string, status order."""

from __future__ import annotations

from aiohttp import web

from dispatcher.pagination import decode_cursor
from dispatcher.problems import Problem

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
