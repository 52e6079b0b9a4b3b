"""Batched outcome writes: attempt rows and delivery updates, many per round trip.

:func:`outcome_of` turns an attempt's result into its :class:`Outcome` (a pure function: the
retry rule applied once). Every finished attempt is appended here; a single writer flushes
when the buffer reaches ``max_batch`` or ``max_delay`` after the first item, in one statement.
Until the flush the delivery is still leased to this instance, so a crash in between means the
attempt is made again (at-least-once), never that it is lost.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import structlog

from dispatcher import retry
from dispatcher.db import DB_UNAVAILABLE
from dispatcher.jobs import Job
from dispatcher.registry import WebhookSpec
from dispatcher.retry import Answer, RetryPolicy, Verdict
from dispatcher.sender import AttemptResult
from dispatcher.store import deliveries

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One attempt and the delivery state it led to."""

    delivery_id: str
    webhook_id: str
    status: str  # the delivery's new status
    answer: Answer  # how the attempt's answer reads (retry.classify)
    number: int  # this attempt's number (also the new attempt_count)
    started_at: datetime
    duration_ms: float
    status_code: int | None
    response_body: str | None
    error: str | None
    url: str
    next_attempt_at: datetime | None
    event_id: str = ""
    event_type: str = ""
    # The job's age origin (created_at or requeued_at): an outcome for an older queueing is
    # not applied over a manual retry or replay.
    age_from: datetime | None = None

    @property
    def failed(self) -> bool:
        """Anything but success: counted by the failure window and the failing watch."""
        return self.answer.failed


def outcome_of(
    policy: RetryPolicy,
    webhook: WebhookSpec,
    job: Job,
    result: AttemptResult,
    now: datetime,
    *,
    rng: random.Random | None = None,
) -> Outcome:
    """The outcome of one attempt of ``job`` to ``webhook`` that produced ``result``, at ``now``.

    A result the engine itself broke on (``error_kind`` "error") reads as no answer: nothing
    says the receiver has the event, so it is retried like a connection error.
    """
    status_code = None if result.error_kind == "error" else result.status_code
    answer = retry.classify(status_code)
    decision = retry.decide(
        policy,
        status=status_code,
        retries_done=job.attempt_count - job.attempts_base,
        max_retries=webhook.max_retries,
        age_seconds=(now - job.age_from).total_seconds(),
        # Read only when sent: an engine error's result (retry_after None) is classified
        # without touching what may have broken.
        retry_after=(
            None if result.retry_after is None else retry.parse_retry_after(result.retry_after, now)
        ),
        rng=rng,
    )
    next_at: datetime | None = None
    if decision.verdict is Verdict.SUCCESS:
        status = "success"
    elif decision.verdict is Verdict.RETRY:
        status, next_at = "retrying", now + timedelta(seconds=decision.delay)
    else:
        status = "failed"
    return Outcome(
        delivery_id=job.delivery_id,
        webhook_id=webhook.id,
        status=status,
        answer=answer,
        number=job.attempt_count + 1,
        started_at=result.started_at,
        duration_ms=result.duration_ms,
        status_code=result.status_code,
        response_body=result.response_body,
        error=result.error or (decision.reason if status == "failed" else None),
        url=webhook.url,
        next_attempt_at=next_at,
        event_id=job.payload.id,
        event_type=job.payload.type,
        age_from=job.age_from,
    )


class OutcomeBuffer:
    """Collects outcomes and writes them in batches."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        owner: str,
        *,
        max_batch: int = 1000,
        max_delay: float = 0.01,
        on_flushed: Callable[[list[Outcome]], None] | None = None,
    ) -> None:
        self._pool = pool
        self._owner = owner
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._on_flushed = on_flushed
        self._items: list[Outcome] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        """Start the writer task."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="outcome-writer")

    def add(self, outcome: Outcome) -> None:
        """Queue an outcome for the next flush."""
        self._items.append(outcome)
        self._idle.clear()
        self._wake.set()

    def __len__(self) -> int:
        return len(self._items)

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            await self._wake.wait()
            if not self._closing and len(self._items) < self._max_batch:
                # Let concurrent attempts join this batch.
                await asyncio.sleep(self._max_delay)
            batch = self._items[: self._max_batch]
            if not batch:  # woken with nothing to write (a close when all was flushed)
                self._wake.clear()
                self._idle.set()
                if self._closing:
                    return
                continue
            try:
                await self._write(batch)
            except DB_UNAVAILABLE as exc:
                # Keep the outcomes and try again: the leases keep the deliveries ours.
                log.warning("outcome_write_failed", error=str(exc), pending=len(self._items))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            except Exception:
                # Not an outage: a batch the database refuses would be refused forever. Drop
                # it; its deliveries come due again when their leases end and are re-sent.
                log.exception("outcome_batch_dropped", count=len(batch))
            backoff = 0.1
            del self._items[: len(batch)]
            if self._on_flushed is not None:
                self._on_flushed(batch)
            if not self._items:
                self._wake.clear()
                self._idle.set()
                if self._closing:
                    return

    async def _write(self, batch: list[Outcome]) -> None:
        async with self._pool.acquire() as conn:
            await deliveries.record_outcomes(conn, owner=self._owner, outcomes=batch)

    async def drain(self, timeout: float) -> bool:
        """Wait until everything queued so far is written; False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self, timeout: float = 10.0) -> None:
        """Flush what is left and stop the writer."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                log.error("outcome_writer_timeout", unwritten=len(self._items))
                self._task.cancel()
