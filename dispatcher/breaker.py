"""Auto-disable: a webhook that fails too often within a sliding window is disabled.

The window is counted in the database (the ``attempts`` log), not per process, so failures
seen by several instances add up. After each batch of outcomes, webhooks that just failed are
checked with one query; those whose failed attempts within the last
``DISPATCHER_FAILURE_WINDOW_SECONDS`` reach ``DISPATCHER_FAILURES_BEFORE_DISABLE`` are
disabled with ``disabled_reason: "auto"``, their waiting deliveries are held, and every
instance is told through NOTIFY.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg

from dispatcher.db import load_queries
from dispatcher.store import deliveries, notify

Q = load_queries(Path(__file__).with_suffix(".sql"))


async def trip(
    pool: asyncpg.Pool, webhook_ids: list[str], threshold: int, window_seconds: float
) -> list[dict[str, Any]]:
    """Disable the webhooks among ``webhook_ids`` that failed too often; return them."""
    if threshold < 0 or not webhook_ids:
        return []
    async with pool.acquire() as conn:
        over = await conn.fetch(Q["failures_in_window"], webhook_ids, window_seconds, threshold)
        if not over:
            return []
        disabled: list[dict[str, Any]] = []
        async with conn.transaction():
            rows = await conn.fetch(Q["auto_disable"], [r["webhook_id"] for r in over])
            for row in rows:
                await deliveries.hold(conn, row["id"])
                await notify(conn, "webhook", id=row["id"])
                disabled.append(dict(row))
        return disabled
