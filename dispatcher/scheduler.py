"""The scheduler: claims due work from the database and hands it to the engine.

It claims with leases (``FOR UPDATE SKIP LOCKED``), then sleeps until the earliest due time,
or until woken: by a retry this instance wrote, by another instance's NOTIFY, by a manual
retry, replay or enable. It is also the reaper: deliveries leased to an instance whose
heartbeat stopped (crashed, killed, cut off) are made due again here, then claimed as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from datetime import UTC, datetime

import asyncpg
import structlog

from dispatcher.db import DB_UNAVAILABLE
from dispatcher.engine import Engine, OutcomesWritten
from dispatcher.store import deliveries

log = structlog.get_logger(__name__)

MAX_SLEEP = 5.0  # look again at least this often, whatever the database said
BUSY_SLEEP = 0.2  # work is due but cannot be taken (full lanes, held webhooks)
TIDY_INTERVAL = 2.0  # at most this often: park held work, cancel orphans
HEAL_INTERVAL = 30.0  # re-arm held work of enabled webhooks
# Work due later (retries) is claimed a little after it comes due (a tenth of the wait, at
# most COALESCE), so that what comes due meanwhile is claimed in the same statement: under a
# stream of failures, retries with jittered delays otherwise cost a claim round trip each.
# Short retry schedules stay nearly exact.
COALESCE = 0.05


class Scheduler:
    """The claim loop."""

    def __init__(self, engine: Engine, pool: asyncpg.Pool) -> None:
        self.engine = engine
        self.pool = pool
        self.wake = asyncio.Event()
        # When the loop looks again by itself (monotonic); +inf while it is busy claiming.
        self.next_look = math.inf
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._tidied = 0.0
        self._healed = time.monotonic()
        self._reaped = 0.0
        self.healthy = True

    def start(self) -> None:
        """Start claiming."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="scheduler")

    async def stop(self) -> None:
        """Stop claiming (the engine keeps what it already has)."""
        self._stopping = True
        self.wake.set()
        if self._task is not None:
            # Let a claim in progress hand its rows to the engine (which releases them at
            # stop); cancel only if it does not finish in time.
            done, _ = await asyncio.wait([self._task], timeout=5)
            if not done:
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
                lease = self.engine.settings.lease_seconds
                if time.monotonic() - self._reaped > max(1.0, lease / 3):
                    self._reaped = time.monotonic()
                    if await self.reap():
                        delay = 0.0
                if time.monotonic() - self._healed > HEAL_INTERVAL:
                    self._healed = time.monotonic()
                    await self.heal()
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
                self.next_look = time.monotonic() + delay
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self.wake.wait()
                self.next_look = math.inf
            self.wake.clear()

    def outcomes_written(self, event: OutcomesWritten) -> None:
        """Outcomes are committed: a retry among them may be due before the next look."""
        earliest = min(
            (o.next_attempt_at for o in event.outcomes if o.next_attempt_at), default=None
        )
        if earliest is not None:
            self.retry_written(earliest)

    def retry_written(self, due: datetime) -> None:
        """A retry due at ``due`` is in the database: wake if the loop would look later.

        Under a steady stream of failures nearly every outcome batch holds a retry; waking
        for each (a claim and a due-time query, every ~10 ms) cost CPU that healthy webhooks'
        deliveries then waited for.
        """
        wait = (due - datetime.now(UTC)).total_seconds()
        if time.monotonic() + wait < self.next_look:
            self.wake.set()

    async def tick(self) -> float:
        """Claim what is due; return how long to sleep before looking again."""
        engine = self.engine
        capacity = engine.claim_capacity()
        if capacity > 0 and engine.running:
            jobs = await deliveries.claim_due(
                self.pool,
                owner=engine.owner,
                limit=capacity,
                skip_webhooks=engine.saturated_lanes(),
                lease_seconds=engine.settings.lease_seconds,
            )
            if jobs:
                engine.submit(jobs)
            if len(jobs) == capacity:
                return 0.0
        seconds = await deliveries.seconds_to_next_due(self.pool)
        if seconds is None:
            return MAX_SLEEP
        if seconds <= 0:
            # Due but not claimed: full lanes, or a webhook disabled or deleted under us.
            # Tidy those up now and then, not on every tick while the engine is simply full.
            now = time.monotonic()
            if capacity > 0 and now - self._tidied > TIDY_INTERVAL:
                self._tidied = now
                await deliveries.park_held(self.pool)
                await deliveries.cancel_orphans(self.pool)
            return BUSY_SLEEP
        return min(seconds + min(COALESCE, seconds / 10), MAX_SLEEP)

    async def reap(self) -> int:
        """Make due the work of instances whose heartbeat stopped; how many deliveries."""
        released = await deliveries.reap_leases(self.pool)
        if released:
            log.warning("leases_reaped", count=released)
        return released

    async def heal(self) -> None:
        """Re-arm held deliveries of webhooks that are enabled (a hold racing an enable)."""
        await deliveries.heal_held(self.pool)
