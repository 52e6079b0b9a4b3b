"""What the tenant portal reads, always inside the signed-in tenant.

Each function takes the tenant id and its statement applies it in SQL (see ``portal.sql``);
changes go through the API's own handlers once the object was found here, in the tenant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dispatcher.db import load_queries
from dispatcher.store import Executor
from dispatcher.store import deliveries as delivery_store
from dispatcher.store import webhooks as webhook_store

Q = load_queries(Path(__file__).with_suffix(".sql"))


async def tenant(conn: Executor, tenant_id: str, since: int) -> dict[str, Any] | None:
    """The tenant a session stands for, or None when it was deleted (or replaced)."""
    row = await conn.fetchrow(Q["portal_tenant"], tenant_id, since)
    return dict(row) if row else None


async def tenant_since(conn: Executor, tenant_id: str) -> int | None:
    """The tenant's creation time in microseconds, or None when there is no such tenant."""
    value = await conn.fetchval(Q["tenant_since"], tenant_id)
    return int(value) if value is not None else None


async def webhook(conn: Executor, tenant_id: str, webhook_id: str) -> dict[str, Any] | None:
    """One of the tenant's webhooks, or None (another tenant's is None too)."""
    return await webhook_store.get(conn, webhook_id, scope=tenant_id)


async def webhooks(
    conn: Executor,
    tenant_id: str,
    *,
    after: str | None,
    limit: int,
    enabled: bool | None = None,
    text: str | None = None,
) -> list[dict[str, Any]]:
    """The tenant's webhooks, newest first."""
    rows = await conn.fetch(Q["tenant_webhooks"], tenant_id, after, enabled, text or None, limit)
    return [webhook_store.to_api(r) for r in rows]


async def webhook_counts(conn: Executor, tenant_id: str) -> tuple[int, int]:
    """``(all, enabled)`` webhooks of the tenant."""
    row = await conn.fetchrow(Q["tenant_webhook_counts"], tenant_id)
    return (row["total"], row["active"]) if row else (0, 0)


async def webhook_labels(
    conn: Executor, tenant_id: str, webhook_ids: list[str]
) -> dict[str, dict[str, Any]]:
    """Name and state of those webhooks that are the tenant's and still exist."""
    if not webhook_ids:
        return {}
    rows = await conn.fetch(Q["tenant_webhook_labels"], list(set(webhook_ids)), tenant_id)
    return {r["id"]: {"name": r["name"], "enabled": r["enabled"]} for r in rows}


async def delivery(conn: Executor, tenant_id: str, delivery_id: str) -> dict[str, Any] | None:
    """One of the tenant's deliveries with its attempts, or None."""
    return await delivery_store.get(conn, delivery_id, with_attempts=True, scope=tenant_id)


async def delivery_event(conn: Executor, tenant_id: str, delivery_id: str) -> dict[str, Any] | None:
    """The event one of the tenant's deliveries carries, or None (e.g. pruned)."""
    row = await conn.fetchrow(Q["tenant_delivery_event"], delivery_id, tenant_id)
    return dict(row) if row else None


async def deliveries(
    conn: Executor,
    tenant_id: str,
    *,
    after: str | None,
    limit: int,
    webhook_id: str | None = None,
    status: str | None = None,
) -> list[dict[str, Any]]:
    """The tenant's deliveries, newest first."""
    rows = await conn.fetch(Q["tenant_deliveries"], tenant_id, after, webhook_id, status, limit)
    return [delivery_store.to_api(r) for r in rows]


async def footprint(conn: Executor, tenant_id: str) -> dict[str, int]:
    """How many webhooks, unfinished deliveries and tokens the tenant has."""
    row = await conn.fetchrow(Q["tenant_footprint"], tenant_id)
    return {k: int(v) for k, v in dict(row).items()} if row else {}


async def success_rates(
    conn: Executor, tenant_id: str, webhook_ids: list[str], window_seconds: float
) -> dict[str, tuple[int, int]]:
    """``(attempts, succeeded)`` over the last ``window_seconds`` per webhook among those that
    are the tenant's (webhooks without attempts, and other tenants', are absent)."""
    if not webhook_ids:
        return {}
    rows = await conn.fetch(Q["tenant_success_rates"], tenant_id, webhook_ids, window_seconds)
    return {r["webhook_id"]: (int(r["attempts"]), int(r["succeeded"])) for r in rows}


async def unfinished(conn: Executor, tenant_id: str, webhook_id: str) -> int:
    """How many of the tenant's webhook's deliveries are still to be sent (0 for another's)."""
    return int(await conn.fetchval(Q["tenant_unfinished"], tenant_id, webhook_id) or 0)
