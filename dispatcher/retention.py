"""Retention: prune finished deliveries, their attempts and events older than
``DISPATCHER_RETENTION_DAYS``, in small batches so the queue never waits on a long delete.

Only one instance prunes at a time (an advisory lock); unfinished deliveries and the events
they belong to are never touched, whatever their age.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import structlog

from dispatcher import ids
from dispatcher.db import DB_UNAVAILABLE, load_queries
from dispatcher.store import Conn
from dispatcher.store import tenants as tenant_store

log = structlog.get_logger(__name__)
Q = load_queries(Path(__file__).with_suffix(".sql"))

LOCK_KEY = 0x72657461696E  # "retain"
BATCH = 1000
# After each batch, a pause this many times as long as the batch took: pruning works at most a
# tenth of the time, so a day of history going does not slow ingestion (which shares the
# database's cores) by more than a few percent. That still prunes ~2,000 deliveries a second.
PAUSE_FACTOR = 9.0


async def _breathe(since: float) -> None:
    """Pause after a batch that started at ``since`` (``time.perf_counter``)."""
    await asyncio.sleep((time.perf_counter() - since) * PAUSE_FACTOR)


async def _prune_deliveries(conn: Conn, days: float, batch: int) -> int:
    """Delete finished deliveries older than ``days`` and their attempts; how many."""
    # A minute of slack for the clocks of this host and the database's: the statement tests
    # updated_at against the database's own clock, the id bound only narrows the scan.
    cutoff_ms = int((time.time() - days * 86400 + 60) * 1000)
    bound = ids.time_bound("dlv", cutoff_ms)
    after, deleted = "", 0
    while True:
        started = time.perf_counter()
        row = await conn.fetchrow(Q["prune_deliveries"], float(days), batch, bound, after)
        assert row is not None
        deleted += int(row["deleted"])
        if row["looked_at"] < batch:
            return deleted
        after = row["last_id"]
        await _breathe(started)


async def prune(pool: asyncpg.Pool, days: float, batch: int = BATCH) -> dict[str, int]:
    """Prune everything that is due, batch by batch; returns counts removed."""
    removed = {"deliveries": 0, "events": 0}
    async with pool.acquire() as conn:
        # The pool does not reset released connections (db.create_pool): a lock this
        # connection may hold but cannot release must not go back to the pool with it.
        try:
            locked = await conn.fetchval(Q["try_lock"], LOCK_KEY)
        except BaseException:
            conn.terminate()
            raise
        if not locked:
            return removed
        try:
            removed["deliveries"] = await _prune_deliveries(conn, days, batch)
            while True:
                started = time.perf_counter()
                result = await conn.execute(Q["prune_events"], float(days), batch)
                n = int(result.split()[-1])
                removed["events"] += n
                if n < batch:
                    break
                await _breathe(started)
            # Used or expired portal sign-in links are of no use once past their expiry.
            await tenant_store.prune_portal_links(conn)
        finally:
            try:
                await conn.execute(Q["unlock"], LOCK_KEY)
            except BaseException:
                conn.terminate()
                raise
    if removed["deliveries"] or removed["events"]:
        log.info("retention_pruned", **removed)
    return removed


async def run(pool: asyncpg.Pool, days: float, interval: float = 600.0) -> None:
    """Prune now and then every ``interval`` seconds, forever."""
    while True:
        try:
            await prune(pool, days)
        except DB_UNAVAILABLE as exc:
            log.warning("retention_failed", error=str(exc))
        await asyncio.sleep(interval)
