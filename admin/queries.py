"""What the console reads that the API does not: one-hour statistics and search.

Everything else (webhooks, deliveries, event types and their changes) goes through
``dispatcher.store`` and the API's own helpers. The statements are kept here rather than in a
``.sql`` file so they ship with the package data as it is declared.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dispatcher.store import Executor
from dispatcher.store import deliveries as delivery_store

WINDOW_SECONDS = 3600.0

# Webhooks whose name or URL contains $3 (case-insensitive; '' matches all), newest first,
# after a cursor, optionally of one tenant ($5) or ($6 true) only the operator's own.
SEARCH_WEBHOOKS = """
SELECT * FROM webhooks
WHERE ($5::text IS NULL OR tenant_id = $5)
  AND (NOT $6::boolean OR tenant_id IS NULL)
  AND ($1::text IS NULL OR id < $1)
  AND ($2::boolean IS NULL OR enabled = $2)
  AND (strpos(lower(name), lower($3)) > 0 OR strpos(lower(url), lower($3)) > 0)
ORDER BY id DESC
LIMIT $4
"""

# Attempts and successful attempts per webhook over the last $2 seconds (one grouped query;
# the (webhook_id, started_at) index serves it).
SUCCESS_RATES = """
SELECT webhook_id, count(*) AS attempts,
       count(*) FILTER (WHERE status_code BETWEEN 200 AND 299) AS succeeded
FROM attempts
WHERE webhook_id = ANY($1::text[]) AND started_at > now() - make_interval(secs => $2)
GROUP BY webhook_id
"""

# Attempts per minute over the last $1 seconds, succeeded vs failed. Joined through webhooks
# so each webhook's slice comes from the (webhook_id, started_at) index, not a full scan.
ATTEMPTS_PER_MINUTE = """
SELECT date_trunc('minute', a.started_at) AS minute,
       count(*) FILTER (WHERE a.status_code BETWEEN 200 AND 299) AS succeeded,
       count(*) FILTER (WHERE a.status_code IS NULL OR a.status_code NOT BETWEEN 200 AND 299)
           AS failed
FROM webhooks w
JOIN attempts a ON a.webhook_id = w.id AND a.started_at > now() - make_interval(secs => $1)
GROUP BY 1
ORDER BY 1
"""

# Events accepted over the last $1 seconds, and their deliveries by status.
EVENTS_SINCE = """
SELECT count(*) FROM events WHERE created_at > now() - make_interval(secs => $1)
"""
DELIVERIES_SINCE = """
SELECT d.status, count(*) AS n
FROM events e JOIN deliveries d ON d.event_id = e.id
WHERE e.created_at > now() - make_interval(secs => $1)
GROUP BY d.status
"""

# A webhook's unfinished deliveries (held while it is disabled).
UNFINISHED = """
SELECT count(*) FROM deliveries WHERE webhook_id = $1 AND status IN ('created', 'retrying')
"""

# Names and states of the webhooks among $1 (for lists of deliveries).
WEBHOOK_NAMES = "SELECT id, name, enabled FROM webhooks WHERE id = ANY($1::text[])"

COUNT_DISABLED = "SELECT count(*) FROM webhooks WHERE NOT enabled"
WEBHOOK_COUNTS = "SELECT count(*) AS total, count(*) FILTER (WHERE enabled) AS active FROM webhooks"


@dataclass(frozen=True, slots=True)
class Rate:
    """Attempts over the window and the share that succeeded."""

    attempts: int
    succeeded: int

    @property
    def ratio(self) -> float | None:
        """Succeeded / attempts; None when there were none."""
        return self.succeeded / self.attempts if self.attempts else None


async def search_webhooks(
    conn: Executor,
    *,
    after: str | None,
    limit: int,
    enabled: bool | None,
    text: str,
    tenant_id: str | None = None,
    operator_only: bool = False,
) -> list[dict[str, Any]]:
    """Webhooks whose name or URL contains ``text`` (of ``tenant_id`` when given, or only the
    operator's own)."""
    rows = await conn.fetch(SEARCH_WEBHOOKS, after, enabled, text, limit, tenant_id, operator_only)
    return [dict(r) for r in rows]


async def success_rates(conn: Executor, webhook_ids: list[str]) -> dict[str, Rate]:
    """Each webhook's attempts over the last hour (webhooks without any are absent)."""
    if not webhook_ids:
        return {}
    rows = await conn.fetch(SUCCESS_RATES, webhook_ids, WINDOW_SECONDS)
    return {r["webhook_id"]: Rate(r["attempts"], r["succeeded"]) for r in rows}


async def webhook_counts(conn: Executor) -> tuple[int, int]:
    """``(all, active)`` webhooks."""
    row = await conn.fetchrow(WEBHOOK_COUNTS)
    return (row["total"], row["active"]) if row else (0, 0)


@dataclass(frozen=True, slots=True)
class WebhookLabel:
    """What a list of deliveries shows about their webhook."""

    name: str
    enabled: bool


async def webhook_labels(conn: Executor, webhook_ids: list[str]) -> dict[str, WebhookLabel]:
    """Name and state of the webhooks that still exist."""
    if not webhook_ids:
        return {}
    rows = await conn.fetch(WEBHOOK_NAMES, list(set(webhook_ids)))
    return {r["id"]: WebhookLabel(r["name"], r["enabled"]) for r in rows}


async def unfinished(conn: Executor, webhook_id: str) -> int:
    """How many of a webhook's deliveries are still to be sent."""
    return int(await conn.fetchval(UNFINISHED, webhook_id) or 0)


@dataclass(frozen=True, slots=True)
class Overview:
    """The landing page's numbers."""

    events: int
    deliveries: dict[str, int]
    rate: Rate
    per_minute: list[tuple[datetime, int, int]]
    due: int
    scheduled: int
    held: int
    leased: int
    oldest_due_seconds: float
    disabled_webhooks: int

    @property
    def delivery_total(self) -> int:
        """Deliveries of the window's events, any status."""
        return sum(self.deliveries.values())


async def overview(conn: Executor) -> Overview:
    """Throughput and failures over the last hour, and the queue right now."""
    events = await conn.fetchval(EVENTS_SINCE, WINDOW_SECONDS)
    by_status = {r["status"]: r["n"] for r in await conn.fetch(DELIVERIES_SINCE, WINDOW_SECONDS)}
    minutes = await conn.fetch(ATTEMPTS_PER_MINUTE, WINDOW_SECONDS)
    per_minute = [(r["minute"], r["succeeded"], r["failed"]) for r in minutes]
    depth = await conn.fetchrow(delivery_store.Q["queue_depth"])
    assert depth is not None
    disabled = await conn.fetchval(COUNT_DISABLED)
    return Overview(
        events=events or 0,
        deliveries=by_status,
        rate=Rate(sum(m[1] + m[2] for m in per_minute), sum(m[1] for m in per_minute)),
        per_minute=per_minute,
        due=depth["due"],
        scheduled=depth["scheduled"],
        held=depth["held"],
        leased=depth["leased"],
        oldest_due_seconds=depth["oldest_due_seconds"],
        disabled_webhooks=disabled or 0,
    )
