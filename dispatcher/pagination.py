"""Cursor pagination: ``?limit=`` (default 50, max 500) and an opaque ``?cursor=``.

Every listed resource has ids that sort by creation time; lists are ordered newest first and
the cursor is the last id of the page, so pages never repeat or skip rows while rows are added.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dispatcher.problems import invalid

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# A page of a list that carries payloads (events) stops short of ``limit`` once its rows'
# data would pass this many bytes (it always has at least one row): follow ``next_cursor``.
# Without it one ?limit=500 page of 500 KB events was a 256 MB answer built in memory.
MAX_PAGE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Page:
    """What a list request asks for."""

    limit: int
    after: str | None


def encode_cursor(last_key: str) -> str:
    """Opaque cursor for the row with ``last_key``."""
    return base64.urlsafe_b64encode(last_key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """Inverse of :func:`encode_cursor`; a 422 problem for garbage."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = base64.urlsafe_b64decode(padded.encode("ascii")).decode()
    except (binascii.Error, UnicodeError, ValueError):
        decoded = None
    # The decoder skips characters outside the alphabet; only exact round trips are ours.
    if not decoded or encode_cursor(decoded) != cursor or "\x00" in decoded:
        raise invalid("cursor", "not a cursor returned by this API")
    return decoded


def page_from_query(query: Mapping[str, str]) -> Page:
    """Read ``limit`` and ``cursor`` from a query string."""
    raw = query.get("limit")
    limit = DEFAULT_LIMIT
    if raw is not None:
        try:
            limit = int(raw)
        except ValueError:
            limit = -1
        if not 1 <= limit <= MAX_LIMIT:
            raise invalid("limit", f"must be an integer between 1 and {MAX_LIMIT}")
    cursor = query.get("cursor")
    return Page(limit, decode_cursor(cursor) if cursor is not None else None)


def page_body(rows: Sequence[dict[str, Any]], page: Page, key: str = "id") -> dict[str, Any]:
    """``{"data": rows[:limit], "next_cursor": ...}``; callers fetch ``limit + 1`` rows.

    Rows of a query bounded by bytes carry ``fetched`` (how many it found, more than it
    returned when the byte budget ran out): then there is more as well.
    """
    data = list(rows[: page.limit])
    found = len(rows)
    for row in data:
        found = max(found, int(row.pop("fetched", 0)))
    more = found > len(data)
    return {
        "data": data,
        "next_cursor": encode_cursor(str(data[-1][key])) if more and data else None,
    }
