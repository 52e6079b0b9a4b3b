"""The batched outcome write joins its outcomes to their deliveries by hash, not pairwise.

A nested loop comparing every outcome with every delivery of the batch is quadratic in the
batch size; it once cost 60% of the outcome write's Postgres CPU. The plan is checked both as
a custom plan and as the generic plan a prepared statement falls back to.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from dispatcher import ids
from dispatcher.store import events as event_store
from dispatcher.store.deliveries import Q

BATCH = 200


def nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node of an EXPLAIN (FORMAT JSON) plan."""
    found = [plan]
    for child in plan.get("Plans", []):
        found.extend(nodes(child))
    return found


async def leased_batch(db: asyncpg.Connection, owner: str) -> tuple[list[Any], datetime]:
    """BATCH deliveries leased to ``owner``, and their age origin."""
    await db.execute(
        "INSERT INTO webhooks (id, name, url, event_types) VALUES"
        " ('wh_plan', 'plan', 'https://example.com/h', '{order.created}')"
    )
    now = datetime.now(UTC)
    events = [
        event_store.EventRow(ids.event_id(), "order.created", "{}", now, None, None)
        for _ in range(BATCH)
    ]
    deliveries = [
        event_store.DeliveryRow(ids.delivery_id(), e.id, "wh_plan", e.type, True, None)
        for e in events
    ]
    await event_store.insert_events(
        db, events=events, deliveries=deliveries, owner=owner, lease_seconds=30, created_at=now
    )
    return deliveries, now


@pytest.mark.parametrize("mode", ["force_custom_plan", "force_generic_plan"])
async def test_outcomes_are_joined_to_their_deliveries_without_pairwise_comparison(
    db: asyncpg.Connection, mode: str
) -> None:
    deliveries, now = await leased_batch(db, "plan-owner")
    n = len(deliveries)
    args = [
        "plan-owner",
        [d.id for d in deliveries],
        ["success"] * n,
        [1] * n,
        [now] * n,
        [None] * n,
        [200] * n,
        [None] * n,
        [now] * n,
        [d.webhook_id for d in deliveries],
        [3.0] * n,
        ["ok"] * n,
        ["https://example.com/h"] * n,
        [False] * n,
    ]
    await db.execute(f"SET plan_cache_mode = {mode}")
    raw = await db.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + Q["record_outcomes"], *args)
    updated = await db.fetchval(
        "SELECT count(*) FROM deliveries WHERE id = ANY($1) AND status = 'success'",
        [d.id for d in deliveries],
    )
    plan = json.loads(raw)[0]["Plan"]
    assert updated == n
    pairwise = [node for node in nodes(plan) if node.get("Rows Removed by Join Filter", 0) >= n]
    assert not pairwise, json.dumps(plan, indent=1)
