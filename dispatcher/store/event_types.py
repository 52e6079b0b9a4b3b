"""The event-type catalogue. Registering types is optional; disabled types get no deliveries."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from dispatcher import pagination
from dispatcher.db import load_queries
from dispatcher.schemas import EventTypeCreate, EventTypePatch
from dispatcher.store import Conn, Executor, notify

Q = load_queries(Path(__file__).with_suffix(".sql"))


async def create(conn: Conn, body: EventTypeCreate) -> dict[str, Any] | None:
    """Register a type; None if the name already exists."""
    async with conn.transaction():
        row = await conn.fetchrow(
            Q["insert_event_type"],
            body.name,
            body.description,
            body.enabled,
            body.schema_,
            body.examples,
        )
        if row is not None:
            await notify(conn, "event_type", name=body.name)
    return dict(row) if row else None


async def get(conn: Executor, name: str, *, enabled_only: bool = False) -> dict[str, Any] | None:
    """One event type, or None (also when ``enabled_only`` and it is disabled)."""
    row = await conn.fetchrow(Q["get_event_type"], name, enabled_only)
    return dict(row) if row else None


async def list_page(
    conn: Executor, *, after: str | None, limit: int, enabled_only: bool = False
) -> list[dict[str, Any]]:
    """Up to ``limit`` types after ``after``, alphabetically, while their schemas and examples
    fit in :data:`~dispatcher.pagination.MAX_PAGE_BYTES` (each row says how many were
    ``fetched``: :func:`~dispatcher.pagination.page_body` reads it); with ``enabled_only``
    only enabled ones."""
    rows = await conn.fetch(
        Q["list_event_types"], after, limit, pagination.MAX_PAGE_BYTES, enabled_only
    )
    return [dict(r) for r in rows]


async def all_rows(conn: Executor) -> list[asyncpg.Record]:
    """The whole catalogue."""
    return list(await conn.fetch(Q["all_event_types"]))


async def get_for_update(conn: Conn, name: str) -> dict[str, Any] | None:
    """One event type, locked until the caller's transaction ends; None if it does not exist."""
    row = await conn.fetchrow(Q["get_event_type_for_update"], name)
    return dict(row) if row else None


async def update(conn: Conn, name: str, body: EventTypePatch) -> dict[str, Any] | None:
    """Partial update (fields not sent are kept); None if the type does not exist."""
    sent = body.model_fields_set
    async with conn.transaction():
        row = await conn.fetchrow(
            Q["update_event_type"],
            name,
            body.description,
            body.enabled,
            "schema_" in sent,
            body.schema_,
            "examples" in sent and body.examples is not None,
            body.examples,
        )
        if row is not None:
            await notify(conn, "event_type", name=name)
    return dict(row) if row else None


async def registry_rows(conn: Executor) -> list[asyncpg.Record]:
    """Disabled types and types with a schema, for the in-memory registry."""
    return list(await conn.fetch(Q["registry_event_types"]))


async def catalogue_rows(conn: Executor) -> list[dict[str, Any]]:
    """The enabled types with descriptions, schemas and examples, alphabetically."""
    return [dict(r) for r in await conn.fetch(Q["catalogue_event_types"])]


async def delete(conn: Conn, name: str) -> bool:
    """Remove a type; False if it did not exist."""
    async with conn.transaction():
        gone = await conn.fetchval(Q["delete_event_type"], name)
        if gone is not None:
            await notify(conn, "event_type", name=name)
    return gone is not None


async def export_all(conn: Executor) -> list[dict[str, Any]]:
    """The catalogue as ``dispatcher export`` writes it, alphabetically."""
    return [dict(r) for r in await conn.fetch(Q["export_event_types"])]


async def import_one(
    conn: Conn,
    name: str,
    description: str,
    enabled: bool | None,
    created_at: datetime | None = None,
    schema: Any = None,
    examples: list[Any] | None = None,
) -> str:
    """Insert or update one type from an import (inside the caller's transaction).

    ``enabled=None`` keeps an existing type's flag (a new one is enabled). Returns
    ``"created"``, ``"updated"`` or ``"unchanged"``. The caller NOTIFYs once (``event_type``)
    when anything changed: other instances reload the whole catalogue.
    """
    row = await conn.fetchrow(
        Q["import_event_type"], name, description, enabled, created_at, schema, examples or []
    )
    if row is None:
        return "unchanged"
    return "created" if row["inserted"] else "updated"


async def names_with_examples(conn: Executor) -> list[str]:
    """Types that have at least one example, alphabetically."""
    return [r["name"] for r in await conn.fetch(Q["names_with_examples"])]
