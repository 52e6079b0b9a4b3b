"""What goes over the wire: JSON, event bodies, path segments, query strings, and problems.

The standard library's ``json`` only, so the distribution needs nothing but aiohttp; it is
exact for integers of any size, which the server keeps too.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Any
from urllib.parse import quote

# The server accepts at most this many events per batch request; longer lists are split.
BATCH_LIMIT = 1000


def new_event_id() -> str:
    """A fresh idempotency key for an event (``evt_`` + 32 hex digits of a UUID4)."""
    return "evt_" + uuid.uuid4().hex


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(body: Any) -> bytes:
    """Compact UTF-8 JSON; datetimes as ISO 8601. NaN and infinities are refused (ValueError):
    they are not JSON, and the server would answer 400."""
    return json.dumps(
        body, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default
    ).encode()


def loads(raw: bytes) -> Any:
    """Parse a JSON answer."""
    return json.loads(raw)


def timestamp(value: str | datetime | None) -> str | None:
    """An ISO 8601 string for ``occurred_at``/``since``; a naive datetime is a ValueError."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("occurred_at must be timezone-aware")
        return value.isoformat()
    return value


def event_body(
    type: str,
    data: Any,
    id: str | None,
    occurred_at: str | datetime | None,
    tenant_id: str | None = None,
) -> dict[str, Any]:
    """The body of one event, with an idempotency ``id`` generated when none is given."""
    body: dict[str, Any] = {"type": type, "data": data, "id": id or new_event_id()}
    stamp = timestamp(occurred_at)
    if stamp is not None:
        body["occurred_at"] = stamp
    if tenant_id is not None:
        body["tenant_id"] = tenant_id
    return body


def batch_body(event: Mapping[str, Any]) -> dict[str, Any]:
    """One event of a batch, checked here rather than as a 422 for the whole batch."""
    extra = set(event) - {"type", "data", "id", "occurred_at", "tenant_id"}
    if extra:
        raise ValueError(f"unknown event field(s): {', '.join(sorted(extra))}")
    if "type" not in event or "data" not in event:
        raise ValueError("each event needs 'type' and 'data'")
    return event_body(
        event["type"],
        event["data"],
        event.get("id"),
        event.get("occurred_at"),
        event.get("tenant_id"),
    )


def seg(value: str) -> str:
    """A path segment, percent-encoded."""
    return quote(value, safe="")


def query(**params: object) -> dict[str, str]:
    """Query parameters without the unset ones; booleans as ``true``/``false``."""
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


def problem_of(status: int, reason: str | None, content_type: str, raw: bytes) -> dict[str, Any]:
    """The problem JSON of an error answer, or one made up from a non-JSON body."""
    if "json" in content_type:
        try:
            body = loads(raw)
        except ValueError:
            body = None
        if isinstance(body, dict):
            return body
    return {
        "type": "about:blank",
        "title": reason or "Error",
        "status": status,
        "detail": raw[:500].decode("utf-8", "replace"),
    }
