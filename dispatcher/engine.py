"""The delivery engine: thousands of concurrent attempts on one event loop.

Work arrives leased to this instance, either in-process from ingestion (no second read) or
from the scheduler's claim query. Each webhook has a lane: a queue plus its own in-flight
count and token bucket, so a slow or rate-limited endpoint only ever waits on itself. A global
cap bounds the total in flight. Outcomes go to the :class:`OutcomeBuffer` (batched writes).
Leases hold while this instance's heartbeat row is fresh (one write per interval, however much
it holds); another instance's reaper releases them when the heartbeat stops.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from dispatcher import breaker, http_client, metrics, retry, sender
from dispatcher.config import Settings
from dispatcher.db import DB_UNAVAILABLE
from dispatcher.jobs import Job
from dispatcher.outcomes import Outcome, OutcomeBuffer, outcome_of
from dispatcher.registry import Registry, WebhookSpec
from dispatcher.retry import Answer
from dispatcher.signals import Signal
from dispatcher.store import deliveries
from dispatcher.store import webhooks as webhook_store

log = structlog.get_logger("dispatcher.delivery")

TUNE_INTERVAL = 0.1
SLOW_ATTEMPT = 0.05
# Adaptive concurrency (see Engine._retune). A lane starts at START_LIMIT attempts in flight
# (or its cap, if lower), and a fast endpoint's lane shrinks back to it while this process is
# CPU-bound. Lower, a burst (a group commit hands over many jobs at once, or the loop catches
# up after a pause) queues behind too few connections: with 4, the p99 of 1,000 deliveries/s
# was 50-130 ms against 15-30 ms with 16 (benchmarks/README.md).
START_LIMIT = 16
# A lane whose attempts time out halves down to MIN_LIMIT: all a hung endpoint is held to.
MIN_LIMIT = 4
# The event loop is "busy" (this process is CPU-bound) when the tuner's tick fires this late.
LOOP_BUSY = 0.005
# An attempt's wait is the endpoint's, not ours, when it exceeds this many loop lags.
OWN_SHARE = 4.0
# No lane takes more than this share of the global in-flight cap: a hung endpoint (every
# attempt waits for its timeout) must leave room for the others.
LANE_SHARE = 4
# A lane's recent attempts (moving average of their share) that time out: above GROWTH_STOP
# it does not grow, above SHRINK_AT it halves toward MIN_LIMIT. Until its endpoint answers
# again, more connections to it only pile up, and its owner sees them as an attack.
TIMEOUTS_GROWTH_STOP = 0.05
TIMEOUTS_SHRINK_AT = 0.5
LANE_QUEUE_LIMIT = 5_000
# A failed release only logs: the stray check (or, after a stop, the reaper) retries it.
_RELEASE_TROUBLE: tuple[type[BaseException], ...] = (asyncpg.PostgresError, *DB_UNAVAILABLE)
# Heartbeats between two looks for stray leases.
STRAY_CHECK_BEATS = 3
CLAIM_BATCH = 1_000


@dataclass(frozen=True, slots=True)
class OutcomesWritten:
    """A batch of outcomes is committed: the API already shows them."""

    outcomes: tuple[Outcome, ...]


@dataclass(frozen=True, slots=True)
class WebhookDisabled:
    """The engine disabled a webhook (``reason`` "auto" or "gone"), committed and applied."""

    webhook_id: str
    name: str | None
    url: str | None
    reason: str
    disabled_at: datetime


def instance_id() -> str:
    """A name for this process, unique enough to own leases."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass
class Lane:
    """One webhook's queue and limits."""

    webhook_id: str
    queue: deque[Job] = field(default_factory=deque)
    in_flight: int = 0
    tokens: float = 1.0
    refilled: float = field(default_factory=time.monotonic)
    timer: asyncio.TimerHandle | None = None
    # Adaptive concurrency: connections open only as jobs need them, so a fast endpoint is
    # served over a few reused ones; the tuner raises it while the endpoint, not this
    # process, is the wait.
    limit: int = START_LIMIT
    completed_at: float = field(default_factory=time.monotonic)
    latency: float = 0.0  # moving average of attempt durations, seconds
    timeouts: float = 0.0  # moving average of the share of attempts that timed out


class Engine:
    """Runs attempts for leased jobs and records their outcomes."""

    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        registry: Registry,
        *,
        owner: str | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.registry = registry
        self.owner = owner or instance_id()
        self.global_in_flight = settings.max_in_flight_per_process
        # A webhook's in-flight cap when its own max_in_flight is null.
        self.webhook_in_flight = settings.max_in_flight_per_webhook
        self.policy = retry.RetryPolicy(
            max_retries=settings.max_retries,
            base_seconds=settings.retry_base_seconds,
            max_delay_seconds=settings.retry_max_delay_seconds,
            max_age_seconds=settings.max_age_seconds,
        )
        self.lanes: dict[str, Lane] = {}
        # Holds per delivery id: its jobs queued, in flight, or awaiting their outcome's
        # write. Counted, because a manual retry can give one id a second job while the
        # first attempt is still in flight.
        self.leased: Counter[str] = Counter()
        self.in_flight = 0
        self.queued = 0
        self.running = False
        # Lanes that have work but found the process cap full, oldest first (an ordered set).
        self._waiting_for_global: dict[str, None] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # The private-address rule is the sender's own, set when it is made.
        self._session: sender.Sender | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._tuner: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self.outcomes = OutcomeBuffer(pool, self.owner, on_flushed=self._flushed)
        self.per_webhook_metrics = settings.metrics_per_webhook
        # What the engine announces; dispatcher/app.py connects the listeners.
        self.written: Signal[OutcomesWritten] = Signal()
        self.disabled: Signal[WebhookDisabled] = Signal()
        self._gone_tasks: set[str] = set()
        self._breaker_pending: set[str] = set()
        self._breaker_task: asyncio.Task[None] | None = None
        # Seconds by which the event loop runs late (EWMA): this process's CPU saturation.
        self.loop_lag = 0.0
        # The clock the token buckets run on (monotonic seconds; a test may set its own).
        self.clock: Callable[[], float] = time.monotonic

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Announce this instance, open the HTTP session and start the background writers."""
        # The heartbeat row must exist before anything is leased to this owner, or another
        # instance's reaper would release the leases as soon as their own lease_until passed.
        delay = 0.2
        while True:
            try:
                await deliveries.heartbeat(
                    self.pool, owner=self.owner, lease_seconds=self.settings.lease_seconds
                )
                break
            except DB_UNAVAILABLE as exc:
                log.warning("heartbeat_failed", error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self._session = http_client.create_sender(self.settings)
        self.outcomes.start()
        loop = asyncio.get_running_loop()
        self._heartbeat = loop.create_task(self._keep_alive(), name="heartbeat")
        self._tuner = loop.create_task(self._tune(), name="lane-tuner")
        self.running = True

    async def stop(self, deadline: float = 10.0) -> None:
        """Stop taking work, let attempts in flight finish until ``deadline``, release the rest."""
        self.running = False
        queued = [job for lane in self.lanes.values() for job in lane.queue]
        for lane in self.lanes.values():
            lane.queue.clear()
            if lane.timer:
                lane.timer.cancel()
        self.queued = 0
        await self.release([j.delivery_id for j in queued])
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=deadline)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2)
        await self.outcomes.close()
        # Anything still leased (attempts cut off at the deadline) goes back to the queue.
        await self.release(list(self.leased))
        self.leased.clear()
        if self._heartbeat:
            self._heartbeat.cancel()
            await asyncio.wait([self._heartbeat], timeout=2)
        # Without our heartbeat row, anything a failed release left leased is reaped at once.
        try:
            await deliveries.instance_stopped(self.pool, owner=self.owner)
        except DB_UNAVAILABLE as exc:
            log.warning("instance_stop_unrecorded", error=str(exc))
        if self._tuner:
            self._tuner.cancel()
        if self._breaker_task is not None:
            await asyncio.wait([self._breaker_task], timeout=5)
        if self._session:
            await self._session.close()

    async def release(self, ids: list[str], *, expired_only: bool = False) -> None:
        """Give leases back so another instance (or a later claim) sends these.

        With ``expired_only``, only rows whose own ``lease_until`` has passed. A release
        that fails is logged: the stray check (or the reaper, after a stop) retries it.
        """
        if not ids:
            return
        try:
            await deliveries.release_leases(
                self.pool, delivery_ids=ids, owner=self.owner, expired_only=expired_only
            )
        except _RELEASE_TROUBLE as exc:
            log.warning("lease_release_failed", error=str(exc), count=len(ids))
        finally:
            self._unhold(ids)

    def _unhold(self, ids: Iterable[str]) -> None:
        held = self.leased
        for delivery_id in ids:
            n = held.get(delivery_id, 0)
            if n > 1:
                held[delivery_id] = n - 1
            else:
                held.pop(delivery_id, None)

    # -- intake ------------------------------------------------------------------------------

    def accepts(self, webhook_id: str) -> bool:
        """Whether ingestion may hand this webhook's new deliveries to us in-process."""
        if not self.running:
            return False
        lane = self.lanes.get(webhook_id)
        return lane is None or len(lane.queue) < LANE_QUEUE_LIMIT

    def saturated_lanes(self) -> list[str]:
        """Webhooks whose queues are full; the scheduler claims nothing for them."""
        return [w for w, lane in self.lanes.items() if len(lane.queue) >= LANE_QUEUE_LIMIT]

    def claim_capacity(self) -> int:
        """How many more jobs the scheduler should claim right now."""
        room = 2 * self.global_in_flight - (self.queued + self.in_flight)
        return max(0, min(CLAIM_BATCH, room))

    def submit(self, jobs: Iterable[Job]) -> None:
        """Take leased jobs and start sending as limits allow."""
        touched: dict[str, Lane] = {}
        for job in jobs:
            lane = self.lanes.get(job.webhook_id)
            if lane is None:
                start = min(START_LIMIT, self._cap(self.registry.webhooks.get(job.webhook_id)))
                lane = Lane(job.webhook_id, refilled=self.clock(), limit=start)
                self.lanes[job.webhook_id] = lane
            lane.queue.append(job)
            self.leased[job.delivery_id] += 1
            self.queued += 1
            touched[job.webhook_id] = lane
        if touched:
            self._idle.clear()
        for lane in touched.values():
            self._pump(lane)

    def forget(self, delivery_id: str) -> None:
        """Drop a queued job (it was cancelled); one already in flight finishes."""
        for lane in self.lanes.values():
            for job in lane.queue:
                if job.delivery_id == delivery_id:
                    lane.queue.remove(job)
                    self.queued -= 1
                    self._unhold((delivery_id,))
                    return

    def webhook_changed(self, webhook_id: str) -> None:
        """Apply a registration change to the lane: pump it, or give back its queue."""
        lane = self.lanes.get(webhook_id)
        if lane is not None:
            self._pump(lane)

    # -- sending -----------------------------------------------------------------------------

    def _pump(self, lane: Lane) -> None:
        if not self.running:
            return
        spec = self.registry.webhooks.get(lane.webhook_id)
        if spec is None or not spec.enabled:
            self._return_queue(lane)
            return
        rate = spec.rate_limit_per_second
        cap = self._cap(spec)
        while lane.queue:
            if self.in_flight >= self.global_in_flight:
                self._waiting_for_global.setdefault(lane.webhook_id)
                return
            if lane.in_flight >= cap:
                return
            if lane.in_flight >= lane.limit:
                return  # the tuner raises the limit if this endpoint is slow
            if rate is not None:
                now = self.clock()
                lane.tokens = min(max(rate, 1.0), lane.tokens + (now - lane.refilled) * rate)
                lane.refilled = now
                if lane.tokens < 1.0:
                    if lane.timer is None:
                        delay = (1.0 - lane.tokens) / rate
                        lane.timer = asyncio.get_running_loop().call_later(
                            delay, self._timer_fired, lane
                        )
                    return
                lane.tokens -= 1.0
            job = lane.queue.popleft()
            self.queued -= 1
            lane.in_flight += 1
            self.in_flight += 1
            task = asyncio.get_running_loop().create_task(self._attempt(lane, spec, job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _cap(self, spec: WebhookSpec | None) -> int:
        """The webhook's in-flight cap: its own ``max_in_flight``, else the setting's."""
        own = spec.max_in_flight if spec is not None else None
        return self.webhook_in_flight if own is None else own

    def _bucket_full(self, lane: Lane) -> bool:
        """Whether forgetting the lane loses nothing: no rate limit, or its bucket refilled.

        A new lane starts with one token, never more than a full bucket holds, so dropping a
        full one keeps the limit; dropping one that is not full would hand out tokens early.
        """
        spec = self.registry.webhooks.get(lane.webhook_id)
        rate = spec.rate_limit_per_second if spec is not None else None
        if rate is None:
            return True
        return lane.tokens + (self.clock() - lane.refilled) * rate >= max(rate, 1.0)

    def _drop_if_idle(self, lane: Lane) -> None:
        # An idle lane is kept while its token bucket refills (the tuner's tick sweeps it
        # later), so a rate limit holds for events that arrive one by one, not only in bursts.
        idle = not lane.queue and lane.in_flight == 0 and lane.timer is None
        if idle and self._bucket_full(lane):
            self.lanes.pop(lane.webhook_id, None)

    def _timer_fired(self, lane: Lane) -> None:
        lane.timer = None
        self._pump(lane)

    def _return_queue(self, lane: Lane) -> None:
        """A disabled or deleted webhook's queued jobs go back to the database."""
        if not lane.queue:
            return
        ids = [j.delivery_id for j in lane.queue]
        self.queued -= len(ids)
        lane.queue.clear()
        task = asyncio.get_running_loop().create_task(self.release(ids))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _finished(self, lane: Lane, duration: float, timed_out: bool) -> None:
        now = time.monotonic()
        lane.latency = duration if lane.latency == 0.0 else 0.8 * lane.latency + 0.2 * duration
        lane.timeouts = 0.8 * lane.timeouts + (0.2 if timed_out else 0.0)
        lane.completed_at = now
        lane.in_flight -= 1
        self.in_flight -= 1
        # A freed slot goes to the lanes waiting for room first, oldest first, then to this
        # one: else the busiest lanes keep every slot and a newcomer waits out their backlogs.
        # A lane the cap stops again goes to the back, so the waiting take turns.
        while self._waiting_for_global and self.in_flight < self.global_in_flight:
            webhook_id = next(iter(self._waiting_for_global))
            del self._waiting_for_global[webhook_id]
            other = self.lanes.get(webhook_id)
            if other is not None:
                self._pump(other)
        self._pump(lane)
        self._drop_if_idle(lane)
        if self.in_flight == 0 and self.queued == 0:
            self._idle.set()

    async def _attempt(self, lane: Lane, spec: WebhookSpec, job: Job) -> None:
        started = time.monotonic()
        timed_out = False
        try:
            timed_out = await self._send(spec, job)
        except Exception as exc:
            # Not log.exception: the exception's text may carry the URL's path or query.
            log.error(
                "attempt_crashed",
                delivery_id=job.delivery_id,
                webhook_id=spec.id,
                error=sender.describe_error(exc, spec.target),
                traceback=sender.scrub("".join(traceback.format_exception(exc)), spec.target),
            )
        finally:
            self._finished(lane, time.monotonic() - started, timed_out)

    async def _tune(self) -> None:
        """Every tick: measure the event loop's lag, publish the gauges, retune the lanes."""
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(TUNE_INTERVAL)
            now = loop.time()
            lag = max(0.0, now - before - TUNE_INTERVAL)
            self.loop_lag = 0.7 * self.loop_lag + 0.3 * lag
            metrics.LOOP_LAG.set(self.loop_lag)
            metrics.IN_FLIGHT.set(self.in_flight)
            metrics.QUEUED.set(self.queued)
            self._retune(time.monotonic())

    def _retune(self, now: float) -> None:
        """Adjust the concurrency of lanes that have work waiting and are at their limit.

        More attempts in flight help only while this process has CPU to spare or the time
        goes to the endpoint: every extra connection costs CPU, and past saturation it buys
        nothing but longer queues. So a lane doubles while the event loop keeps up, or while
        its endpoint is slow (attempts take longer than SLOW_ATTEMPT and several loop lags,
        or nothing finished for a tick). A fast endpoint's lane shrinks back toward
        START_LIMIT when the loop is saturated: then fewer connections deliver more.

        Never past the webhook's in-flight cap; and a lane whose attempts time out does not
        grow (a hung endpoint is "slow" and "stalled" too), and halves toward MIN_LIMIT
        while most do.
        """
        lag = self.loop_lag
        busy = lag > LOOP_BUSY
        lane_share = max(START_LIMIT, self.global_in_flight // LANE_SHARE)
        for lane in list(self.lanes.values()):
            if not lane.queue and lane.in_flight == 0:
                self._drop_if_idle(lane)
                continue
            if lane.timeouts > TIMEOUTS_SHRINK_AT:
                lane.limit = max(MIN_LIMIT, lane.limit // 2)
                continue
            if not lane.queue or lane.in_flight < lane.limit:
                continue
            if lane.timeouts > TIMEOUTS_GROWTH_STOP:
                continue
            stalled = now - lane.completed_at > TUNE_INTERVAL + 2 * lag
            slow = lane.latency > SLOW_ATTEMPT
            if stalled or not busy or (slow and lane.latency > OWN_SHARE * lag):
                cap = min(lane_share, self._cap(self.registry.webhooks.get(lane.webhook_id)))
                if lane.limit < cap:
                    lane.limit = min(lane.limit * 2, cap)
                    self._pump(lane)
            elif not slow and lane.limit > START_LIMIT:
                lane.limit = max(START_LIMIT, lane.limit * 3 // 4)

    async def _send(self, spec: WebhookSpec, job: Job) -> bool:
        """Make one attempt and hand its outcome on; whether it timed out.

        Whatever goes wrong while sending or classifying (a bug, an answer no one foresaw)
        is recorded as a failed attempt and goes through the retry rule: a job is never left
        leased with nothing recorded, which would strand its delivery for good.
        """
        assert self._session is not None
        settings = self.settings
        started_at = datetime.now(UTC)
        t0 = time.perf_counter()
        result: sender.AttemptResult | None = None
        try:
            body = job.payload.envelope(spec.include_payload)
            now = datetime.now(UTC)
            headers = sender.build_headers(
                spec.headers, spec.signing_secrets(now), job.payload.id, now, body
            )
            timeout = spec.timeout_seconds or settings.delivery_timeout_seconds
            result = await self._session.send(
                url=spec.target, headers=headers, body=body, timeout=timeout
            )
            finished_at = datetime.now(UTC)
            outcome = outcome_of(self.policy, spec, job, result, finished_at)
        except Exception as exc:
            # Not log.exception: the exception's text may carry the URL's path or query.
            log.error(
                "attempt_crashed",
                delivery_id=job.delivery_id,
                webhook_id=spec.id,
                error=sender.describe_error(exc, spec.target),
                traceback=sender.scrub("".join(traceback.format_exception(exc)), spec.target),
            )
            # error_kind "error": retried (or failed) like a connection error, as nothing says
            # the receiver has it.
            result = sender.AttemptResult(
                started_at=result.started_at if result is not None else started_at,
                duration_ms=(time.perf_counter() - t0) * 1000,
                status_code=result.status_code if result is not None else None,
                response_body=result.response_body if result is not None else None,
                error=sender.describe_error(exc, spec.target),
                error_kind="error",
                retry_after=None,
            )
            finished_at = datetime.now(UTC)
            outcome = outcome_of(self.policy, spec, job, result, finished_at)
        label = spec.id if self.per_webhook_metrics else ""
        metrics.attempts(metrics.result_class(result.status_code, result.error_kind), label).inc()
        metrics.attempt_duration(label).observe(result.duration_ms / 1000)
        status = outcome.status
        if status != "retrying":
            metrics.deliveries_finished(status, label).inc()
            if status == "success":
                latency = (finished_at - job.age_from).total_seconds()
                metrics.delivery_latency(label).observe(latency)
        self.outcomes.add(outcome)
        fields = {
            "event_id": job.payload.id,
            "delivery_id": job.delivery_id,
            "webhook_id": spec.id,
            "attempt": outcome.number,
            "host": spec.target.host,
            "status_code": result.status_code,
            "error": result.error,
            "duration_ms": round(result.duration_ms, 1),
            "outcome": status,
        }
        answer = outcome.answer
        if answer is Answer.FAIL or answer is Answer.GONE:
            # A receiver's error page may quote the request line ("Cannot POST /hooks/…").
            shown = sender.scrub(result.response_body or "", spec.target)[:1024]
            log.warning("delivery_rejected", response_body=shown, **fields)
        elif status == "failed":
            log.warning("delivery_failed", **fields)
        else:
            log.info("delivery_attempt", **fields)
        if answer is Answer.GONE:
            self._disable_gone(spec.id)
        return result.error_kind == "timeout"

    def _disable_gone(self, webhook_id: str) -> None:
        if webhook_id in self._gone_tasks:
            return
        self._gone_tasks.add(webhook_id)

        async def run() -> None:
            try:
                async with self.pool.acquire() as conn:
                    row = await webhook_store.disable_if_enabled(conn, webhook_id, "gone")
                if row is not None:
                    await self.webhook_disabled(row)
            except DB_UNAVAILABLE as exc:
                log.warning("webhook_disable_failed", webhook_id=webhook_id, error=str(exc))
            finally:
                self._gone_tasks.discard(webhook_id)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def webhook_disabled(self, webhook: dict[str, Any]) -> None:
        """A webhook was disabled by the engine (auto or gone): apply, log, announce."""
        webhook_id = str(webhook["id"])
        reason = str(webhook["disabled_reason"])
        await self.registry.refresh_webhook(self.pool, webhook_id)
        self.webhook_changed(webhook_id)
        log.warning("webhook_disabled", webhook_id=webhook_id, reason=reason)
        metrics.AUTO_DISABLES.labels(reason).inc()
        self.disabled.send(
            WebhookDisabled(
                webhook_id=webhook_id,
                name=webhook.get("name"),
                url=webhook.get("url"),
                reason=reason,
                disabled_at=webhook["disabled_at"],
            )
        )

    def _flushed(self, batch: list[Outcome]) -> None:
        # Only now is the outcome durable: until here the delivery is held (not a stray).
        self._unhold(o.delivery_id for o in batch)
        if self.written:
            self.written.send(OutcomesWritten(tuple(batch)))
        if self.settings.failures_before_disable < 0:
            return
        failing = {o.webhook_id for o in batch if o.failed}
        if failing:
            self._breaker_pending |= failing
            if self._breaker_task is None or self._breaker_task.done():
                self._breaker_task = asyncio.get_running_loop().create_task(self._check_breaker())

    async def _check_breaker(self) -> None:
        while self._breaker_pending:
            ids, self._breaker_pending = list(self._breaker_pending), set()
            try:
                tripped = await breaker.trip(
                    self.pool,
                    ids,
                    self.settings.failures_before_disable,
                    self.settings.failure_window_seconds,
                )
                for webhook in tripped:
                    await self.webhook_disabled(webhook)
            except DB_UNAVAILABLE as exc:
                log.warning("breaker_check_failed", error=str(exc))

    # -- leases -----------------------------------------------------------------------------

    async def _keep_alive(self) -> None:
        """Beat every third of the lease period; now and then, release stray leases.

        A stray is a delivery leased to this instance in the database that the engine no
        longer holds: left by an error path (a release or outcome write that failed for good,
        an ingestion commit whose answer was lost). Without this a live instance would keep
        it forever, as its heartbeat never stops.
        """
        lease = self.settings.lease_seconds
        beats = 0
        while True:
            await asyncio.sleep(lease / 3)
            # Nothing may end this loop but cancellation: without beats, other instances
            # take over (and send again) everything this one holds.
            try:
                await deliveries.heartbeat(self.pool, owner=self.owner, lease_seconds=lease)
                beats += 1
            except Exception as exc:
                log.warning("heartbeat_failed", error=str(exc))
                continue
            if beats % STRAY_CHECK_BEATS == 0:
                try:
                    await self.release_strays()
                except Exception as exc:
                    log.warning("stray_check_failed", error=str(exc))

    async def release_strays(self) -> int:
        """Release deliveries leased to this instance (for over a lease period) it does not hold."""
        leased = await deliveries.leased_to(self.pool, owner=self.owner)
        strays = [delivery_id for delivery_id in leased if delivery_id not in self.leased]
        if strays:
            log.warning("stray_leases_released", count=len(strays))
            # Re-checked in the update: a row re-claimed since the read is not a stray.
            await self.release(strays, expired_only=True)
        return len(strays)

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is queued or in flight (tests, shutdown)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True
