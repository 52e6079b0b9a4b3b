"""Database access, one module per table family; each module's SQL sits in a ``.sql`` beside it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import orjson

from dispatcher.db import load_queries

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

# A single connection, whether taken from the pool or opened directly.
Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
# Anything that can run a statement: a connection or the pool itself.
Executor: TypeAlias = "Conn | asyncpg.Pool[asyncpg.Record]"

_NOTIFY = load_queries(Path(__file__).with_name("notify.sql"))["notify"]

# One channel carries every change other instances must apply (registrations, wake-ups).
CHANNEL = "dispatcher"


async def notify(conn: Executor, kind: str, **fields: object) -> None:
    """NOTIFY other instances; inside a transaction it is sent only on commit."""
    payload = orjson.dumps({"kind": kind, **fields}).decode()
    await conn.execute(_NOTIFY, CHANNEL, payload)
