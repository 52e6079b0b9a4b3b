"""Webhook registrations and their signing secrets."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from dispatcher import ids, signing
from dispatcher.db import load_queries
from dispatcher.schemas import WebhookCreate
from dispatcher.store import Conn, Executor, deliveries, notify

Q = load_queries(Path(__file__).with_suffix(".sql"))

# Columns a PATCH may set, in a fixed order (the statement is built only from these names).
PATCHABLE = (
    "name",
    "url",
    "event_types",
    "description",
    "headers",
    "metadata",
    "include_payload",
    "max_retries",
    "timeout_seconds",
    "rate_limit_per_second",
    "max_in_flight",
)


# Engine state kept on the row, not part of the webhook as the API shows it.
INTERNAL = ("failing_since",)


def to_api(row: asyncpg.Record) -> dict[str, Any]:
    """A webhook row as the API shows it."""
    return {k: v for k, v in row.items() if k not in INTERNAL}


async def create(conn: Conn, body: WebhookCreate) -> dict[str, Any]:
    """Insert a webhook (of ``body.tenant_id``, which must exist) and its first secret;
    returns the webhook including ``secret``."""
    secret = body.secret or signing.generate_secret()
    async with conn.transaction():
        row = await conn.fetchrow(
            Q["insert_webhook"],
            ids.webhook_id(),
            body.name,
            body.url,
            body.event_types,
            body.enabled,
            body.description,
            body.headers,
            body.metadata,
            body.include_payload,
            body.max_retries,
            body.timeout_seconds,
            body.rate_limit_per_second,
            body.max_in_flight,
            body.tenant_id,
        )
        assert row is not None
        await conn.execute(Q["insert_secret"], row["id"], secret)
        await notify(conn, "webhook", id=row["id"])
    out = to_api(row)
    out["secret"] = secret
    return out


async def get(
    conn: Executor, webhook_id: str, *, scope: str | None = None
) -> dict[str, Any] | None:
    """One webhook within ``scope`` (a tenant's id; None: any), or None."""
    row = await conn.fetchrow(Q["get_webhook"], webhook_id, scope)
    return to_api(row) if row else None


async def list_page(
    conn: Executor,
    *,
    after: str | None,
    limit: int,
    enabled: bool | None = None,
    event_type: str | None = None,
    scope: str | None = None,
    tenant_id: str | None = None,
) -> list[dict[str, Any]]:
    """Up to ``limit`` webhooks older than ``after``, newest first, within ``scope`` and of
    ``tenant_id`` (the operator's filter) when given."""
    rows = await conn.fetch(Q["list_webhooks"], after, enabled, event_type, limit, scope, tenant_id)
    return [to_api(r) for r in rows]


async def all_rows(conn: Executor) -> list[asyncpg.Record]:
    """Every webhook row."""
    return list(await conn.fetch(Q["all_webhooks"]))


async def update(
    conn: Conn, webhook_id: str, changes: dict[str, Any], *, scope: str | None = None
) -> dict[str, Any] | None:
    """Apply a partial update; ``enabled`` is handled as enable/disable. None if missing
    (or outside ``scope``)."""
    async with conn.transaction():
        row = await conn.fetchrow(Q["lock_webhook"], webhook_id, scope)
        if row is None:
            return None
        cols = [c for c in PATCHABLE if c in changes]
        if cols:
            row = await conn.fetchrow(
                Q["patch_webhook"],
                webhook_id,
                scope,
                cols,
                *(changes.get(c) for c in PATCHABLE),
            )
        assert row is not None
        if "enabled" in changes and changes["enabled"] != row["enabled"]:
            row = await conn.fetchrow(
                Q["set_enabled"], webhook_id, changes["enabled"], "manual", scope
            )
            await (deliveries.resume if changes["enabled"] else deliveries.hold)(conn, webhook_id)
        await notify(conn, "webhook", id=webhook_id)
    assert row is not None
    return to_api(row)


async def set_enabled(
    conn: Conn,
    webhook_id: str,
    enabled: bool,
    reason: str = "manual",
    *,
    scope: str | None = None,
) -> dict[str, Any] | None:
    """Enable or disable (with ``reason``); None if the webhook does not exist (in scope)."""
    async with conn.transaction():
        row = await conn.fetchrow(Q["set_enabled"], webhook_id, enabled, reason, scope)
        if row is not None:
            await (deliveries.resume if enabled else deliveries.hold)(conn, webhook_id)
            await notify(conn, "webhook", id=webhook_id)
    return to_api(row) if row else None


async def disable_if_enabled(conn: Conn, webhook_id: str, reason: str) -> dict[str, Any] | None:
    """Disable an enabled webhook; None when it was already disabled (or is gone)."""
    async with conn.transaction():
        row = await conn.fetchrow(Q["disable_if_enabled"], webhook_id, reason)
        if row is not None:
            await deliveries.hold(conn, webhook_id)
            await notify(conn, "webhook", id=webhook_id)
    return to_api(row) if row else None


async def delete(conn: Conn, webhook_id: str, *, scope: str | None = None) -> bool:
    """Delete a webhook and cancel its unfinished deliveries; False if it did not exist
    (in scope)."""
    async with conn.transaction():
        gone = await conn.fetchval(Q["delete_webhook"], webhook_id, scope)
        if gone is None:
            return False
        await conn.execute(Q["cancel_unfinished"], webhook_id)
        await notify(conn, "webhook", id=webhook_id)
    return True


async def current_secret(
    conn: Executor, webhook_id: str, *, scope: str | None = None
) -> str | None:
    """The current signing secret, or None if the webhook does not exist (in scope)."""
    value: str | None = await conn.fetchval(Q["current_secret"], webhook_id, scope)
    return value


# Previous secrets that still sign after a rotation (within their grace period): the oldest
# beyond these is dropped at the next one, so a signature header holds at most four.
PREVIOUS_SECRETS = 3


async def rotate_secret(
    conn: Conn, webhook_id: str, grace_seconds: float, *, scope: str | None = None
) -> str | None:
    """Make a new current secret; the old one signs for ``grace_seconds`` more. None if the
    webhook does not exist (in scope)."""
    secret = signing.generate_secret()
    async with conn.transaction():
        if await conn.fetchval(Q["lock_webhook"], webhook_id, scope) is None:
            return None
        await conn.execute(Q["retire_secret"], webhook_id, float(grace_seconds))
        await conn.execute(Q["prune_secrets"], webhook_id, PREVIOUS_SECRETS)
        await conn.execute(Q["insert_secret"], webhook_id, secret)
        await notify(conn, "webhook", id=webhook_id)
    return secret


async def signing_secrets(conn: Executor, webhook_id: str) -> list[str]:
    """Every secret currently valid for signing, newest first."""
    return [r["secret"] for r in await conn.fetch(Q["signing_secrets"], webhook_id)]


# Columns `dispatcher export` writes and `dispatcher import` reads, besides ``secret``.
EXPORTED = (
    "id",
    "name",
    "url",
    "event_types",
    "enabled",
    "disabled_reason",
    "disabled_at",
    "description",
    "headers",
    "metadata",
    "include_payload",
    "max_retries",
    "timeout_seconds",
    "rate_limit_per_second",
    "max_in_flight",
    "tenant_id",
    "created_at",
)


async def export_all(conn: Executor) -> list[dict[str, Any]]:
    """Every webhook with its current ``secret``, oldest first, as ``dispatcher export`` has it."""
    rows = await conn.fetch(Q["export_webhooks"])
    return [{**{k: r[k] for k in EXPORTED}, "secret": r["secret"]} for r in rows]


async def import_one(
    conn: Conn, values: dict[str, Any], secret: str | None, grace_seconds: float
) -> str:
    """Insert or update one webhook from an import; ``values`` has the :data:`EXPORTED` keys.

    Must run inside the caller's transaction. A changed ``secret`` becomes the current one
    (the previous one signs for ``grace_seconds`` more, as after a rotation); None keeps it
    (or generates one for a new webhook). Returns ``"created"``, ``"updated"`` or
    ``"unchanged"``; every change is NOTIFYed to the other instances on commit.
    """
    webhook_id = values["id"]
    before = await conn.fetchrow(Q["lock_webhook"], webhook_id, None)
    row = await conn.fetchrow(
        Q["import_webhook"],
        webhook_id,
        values["name"],
        values["url"],
        values["event_types"],
        values["enabled"],
        None if values["enabled"] else values.get("disabled_reason") or "manual",
        values.get("disabled_at"),
        values["description"],
        values["headers"],
        values["metadata"],
        values["include_payload"],
        values["max_retries"],
        values["timeout_seconds"],
        values["rate_limit_per_second"],
        values["max_in_flight"],
        values.get("created_at"),
        values.get("tenant_id"),
    )
    outcome = "unchanged" if row is None else "created" if row["inserted"] else "updated"
    if before is not None and row is not None and before["enabled"] != row["enabled"]:
        await (deliveries.resume if row["enabled"] else deliveries.hold)(conn, webhook_id)
    current = await current_secret(conn, webhook_id)
    if current is None:
        await conn.execute(Q["insert_secret"], webhook_id, secret or signing.generate_secret())
        outcome = "updated" if outcome == "unchanged" else outcome
    elif secret is not None and secret != current:
        await conn.execute(Q["retire_secret"], webhook_id, float(grace_seconds))
        await conn.execute(Q["prune_secrets"], webhook_id, PREVIOUS_SECRETS)
        await conn.execute(Q["insert_secret"], webhook_id, secret)
        outcome = "updated" if outcome == "unchanged" else outcome
    if outcome != "unchanged":
        await notify(conn, "webhook", id=webhook_id)
    return outcome


async def secrets_on_record(
    conn: Executor, webhook_id: str
) -> list[tuple[str, datetime, datetime | None]]:
    """``(secret, created_at, expires_at)`` of every stored secret, newest first."""
    rows = await conn.fetch(Q["secrets_on_record"], webhook_id)
    return [(r["secret"], r["created_at"], r["expires_at"]) for r in rows]
