"""The scheduler: claims due work from the database and hands it to the engine.

It claims with leases (``FOR UPDATE SKIP LOCKED``), then sleeps until the earliest due time,
or until woken: by a retry this instance wrote, by another instance's NOTIFY, by a manual
retry, replay or enable. A crashed instance's work comes due by itself when its leases end.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import structlog

from dispatcher.db import DB_UNAVAILABLE
from dispatcher.engine import Engine, job_from_row
from dispatcher.store.deliveries import Q

log = structlog.get_logger(__name__)

MAX_SLEEP = 5.0  # look again at least this often, whatever the database said
BUSY_SLEEP = 0.2  # work is due but cannot be taken (full lanes, held webhooks)


class Scheduler:
    """The claim loop."""

    def __init__(self, engine: Engine, pool: asyncpg.Pool) -> None:
        self.engine = engine
        self.pool = pool
        self.wake = asyncio.Event()
        engine.wake_scheduler = self.wake
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.healthy = True

    def start(self) -> None:
        """Start claiming."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="scheduler")

    async def stop(self) -> None:
        """Stop claiming (the engine keeps what it already has)."""
        self._stopping = True
        self.wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        backoff = 0.5
        # The flag, not only cancellation, ends the loop: on Python 3.11 a cancel that lands as
        # the wake event fires can be swallowed by a wait_for.
        while not self._stopping:
            try:
                delay = await self.tick()
                self.healthy = True
                backoff = 0.5
            except DB_UNAVAILABLE as exc:
                if self.healthy:
                    log.warning("scheduler_database_unavailable", error=str(exc))
                self.healthy = False
                delay = backoff
                backoff = min(backoff * 2, 10.0)
            except asyncpg.PostgresError:
                log.exception("scheduler_error")
                delay = 1.0
            if delay > 0 and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self.wake.wait()
            self.wake.clear()

    async def tick(self) -> float:
        """Claim what is due; return how long to sleep before looking again."""
        engine = self.engine
        capacity = engine.claim_capacity()
        if capacity > 0 and engine.running:
            rows = await self.pool.fetch(
                Q["claim_due"],
                engine.owner,
                capacity,
                engine.saturated_lanes(),
                engine.settings.lease_seconds,
            )
            if rows:
                engine.submit(job_from_row(r) for r in rows)
            if len(rows) == capacity:
                return 0.0
        seconds = await self.pool.fetchval(Q["next_due"])
        if seconds is None:
            return MAX_SLEEP
        if seconds <= 0:
            # Due but not claimed: full lanes or a webhook disabled under us. Park the held.
            await self.pool.execute(Q["park_held"])
            return BUSY_SLEEP
        return min(float(seconds), MAX_SLEEP)
