"""Which tenants exist: the registry's reads of the ``tenants`` table.

The table and its changes belong to :mod:`dispatcher.store.tenants`; every create and delete
there NOTIFYs ``{"kind": "tenant", "id": ...}`` so each instance re-reads that id here.
"""

from __future__ import annotations

from pathlib import Path

from dispatcher.db import load_queries
from dispatcher.store import Executor

Q = load_queries(Path(__file__).with_suffix(".sql"))


async def all_ids(conn: Executor) -> list[str]:
    """Every tenant's id."""
    return [r["id"] for r in await conn.fetch(Q["all_tenant_ids"])]


async def exists(conn: Executor, tenant_id: str) -> bool:
    """Is there a tenant with this id?"""
    return bool(await conn.fetchval(Q["tenant_exists"], tenant_id))
