"""What the console reads that the API does not: one-hour statistics and search.

Everything else (webhooks, deliveries, event types and their changes) goes through
``dispatcher.store`` and the API's own helpers. The statements are named blocks in
``queries.sql`` beside this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from dispatcher.db import load_queries
from dispatcher.store import Executor
from dispatcher.store import deliveries as delivery_store

WINDOW_SECONDS = 3600.0

Q = load_queries(Path(__file__).with_suffix(".sql"))
SEARCH_WEBHOOKS = Q["search_webhooks"]
SUCCESS_RATES = Q["success_rates"]
ATTEMPTS_PER_MINUTE = Q["attempts_per_minute"]
EVENTS_SINCE = Q["events_since"]
DELIVERIES_SINCE = Q["deliveries_since"]
UNFINISHED = Q["unfinished"]
WEBHOOK_NAMES = Q["webhook_names"]
COUNT_DISABLED = Q["count_disabled"]
WEBHOOK_COUNTS = Q["webhook_counts"]


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
