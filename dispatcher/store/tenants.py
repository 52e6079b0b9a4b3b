"""Tenants (a team's customers), their bearer tokens and their portal sign-in links.

Token and link secrets are never stored: only their SHA-256 (:func:`secret_hash`), looked up
through a unique index. Revoking a token deletes its row, so a revocation applies on every
instance at the next request. Deleting a tenant takes its webhooks, tokens and links with it
in one transaction; its events and deliveries stay in the log (the operator's to see).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from dispatcher.db import load_queries
from dispatcher.store import Conn, Executor, notify

Q = load_queries(Path(__file__).with_suffix(".sql"))


def secret_hash(secret: str) -> bytes:
    """What is stored of a token or link secret: its SHA-256 digest."""
    return hashlib.sha256(secret.encode()).digest()


class LogRemains(Exception):
    """The id was a deleted tenant's whose events or deliveries are still kept."""


async def create(
    conn: Conn, tenant_id: str, name: str, metadata: dict[str, Any]
) -> dict[str, Any] | None:
    """Register a tenant; None if the id is taken.

    Raises :class:`LogRemains` if a deleted tenant's log under this id is still kept (until
    retention prunes it): a new tenant given the id would see another customer's events.
    """
    async with conn.transaction():
        if await conn.fetchval(Q["tenant_log_remains"], tenant_id):
            raise LogRemains(tenant_id)
        row = await conn.fetchrow(Q["insert_tenant"], tenant_id, name, metadata)
        if row is not None:
            await notify(conn, "tenant", id=tenant_id)
    return dict(row) if row else None


async def get(conn: Executor, tenant_id: str) -> dict[str, Any] | None:
    """One tenant, or None."""
    row = await conn.fetchrow(Q["get_tenant"], tenant_id)
    return dict(row) if row else None


async def list_page(
    conn: Executor, *, after: str | None, limit: int, search: str | None = None
) -> list[dict[str, Any]]:
    """Up to ``limit`` tenants after the id ``after``, by id; ``search`` matches id or name."""
    return [dict(r) for r in await conn.fetch(Q["list_tenants"], after, limit, search)]


async def update(
    conn: Executor, tenant_id: str, *, name: str | None, metadata: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Change the name and/or metadata (None keeps it); None if the tenant does not exist."""
    row = await conn.fetchrow(Q["update_tenant"], tenant_id, name, metadata)
    return dict(row) if row else None


async def delete(conn: Conn, tenant_id: str) -> list[str] | None:
    """Delete a tenant in one transaction; the ids of its deleted webhooks, None if none such.

    Its webhooks are deleted and their unfinished deliveries cancelled, its tokens and portal
    links go with it. Other instances learn of each webhook (and of the tenant) by NOTIFY on
    commit; the caller applies the change to this instance.
    """
    async with conn.transaction():
        if await conn.fetchval(Q["lock_tenant"], tenant_id) is None:
            return None
        webhook_ids = [r["id"] for r in await conn.fetch(Q["delete_tenant_webhooks"], tenant_id)]
        await conn.execute(Q["delete_tenant"], tenant_id)
        for webhook_id in webhook_ids:
            await notify(conn, "webhook", id=webhook_id)
        await notify(conn, "tenant", id=tenant_id)
    return webhook_ids


async def export_all(conn: Executor) -> list[dict[str, Any]]:
    """Every tenant as ``dispatcher export`` writes it, by id."""
    return [dict(r) for r in await conn.fetch(Q["export_tenants"])]


async def import_one(
    conn: Conn,
    tenant_id: str,
    name: str,
    metadata: dict[str, Any],
    created_at: datetime | None = None,
) -> str:
    """Insert or update one tenant from an import (inside the caller's transaction).

    Returns ``"created"``, ``"updated"`` or ``"unchanged"``; the caller NOTIFYs.
    """
    row = await conn.fetchrow(Q["import_tenant"], tenant_id, name, metadata, created_at)
    if row is None:
        return "unchanged"
    return "created" if row["inserted"] else "updated"


# --- tokens -----------------------------------------------------------------------------------


async def create_token(
    conn: Executor, token_id: str, tenant_id: str, token: str, expires_at: datetime | None
) -> dict[str, Any] | None:
    """Store a new token's hash; None if the tenant does not exist (or is being deleted)."""
    try:
        row = await conn.fetchrow(
            Q["insert_token"], token_id, tenant_id, secret_hash(token), expires_at
        )
    except asyncpg.ForeignKeyViolationError:
        # The tenant was deleted between the statement's read and its foreign key check.
        return None
    return dict(row) if row else None


async def list_tokens(
    conn: Executor, tenant_id: str, *, after: str | None, limit: int
) -> list[dict[str, Any]]:
    """A tenant's tokens (never their secrets), newest first."""
    return [dict(r) for r in await conn.fetch(Q["list_tokens"], tenant_id, after, limit)]


async def delete_token(conn: Executor, tenant_id: str, token_id: str) -> bool:
    """Revoke one of a tenant's tokens; False if it has no such token."""
    return await conn.fetchval(Q["delete_token"], tenant_id, token_id) is not None


async def token_principal(conn: Executor, token: str) -> tuple[str, str] | None:
    """``(token_id, tenant_id)`` for a valid, unexpired tenant token; None otherwise."""
    row = await conn.fetchrow(Q["token_principal"], secret_hash(token))
    return (row["id"], row["tenant_id"]) if row else None


# --- portal links -----------------------------------------------------------------------------


async def create_portal_link(
    conn: Executor, tenant_id: str, secret: str, expires_at: datetime
) -> dict[str, Any] | None:
    """Store a sign-in link's hash; None if the tenant does not exist."""
    try:
        row = await conn.fetchrow(
            Q["insert_portal_link"], secret_hash(secret), tenant_id, expires_at
        )
    except asyncpg.ForeignKeyViolationError:
        return None
    return dict(row) if row else None


async def consume_portal_link(conn: Executor, secret: str) -> str | None:
    """Use a sign-in link once: the tenant it signs in to, or None (unknown, used, expired)."""
    tenant_id: str | None = await conn.fetchval(Q["consume_portal_link"], secret_hash(secret))
    return tenant_id


async def portal_link_state(conn: Executor, secret: str) -> str:
    """A link's state for the page that explains it: ``"used"``, ``"expired"``, ``"unknown"``
    or ``"valid"``."""
    row = await conn.fetchrow(Q["portal_link_state"], secret_hash(secret))
    if row is None:
        return "unknown"
    return "used" if row["used"] else "expired" if row["expired"] else "valid"


async def prune_portal_links(conn: Executor) -> None:
    """Forget links that expired more than a day ago."""
    await conn.execute(Q["prune_portal_links"])
