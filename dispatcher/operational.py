"""Operational events: Dispatcher's own events, delivered like any other.

``dispatcher.webhook.disabled`` (auto, gone), ``dispatcher.webhook.failing`` and
``dispatcher.webhook.recovered`` (once per failing episode, see :mod:`dispatcher.failing`) and
``dispatcher.delivery.failed`` (a delivery that ran out of retries) go to webhooks that
subscribe to them, so operators can be paged by webhook. They never go to the webhook they
are about, and a failed delivery of an operational event publishes nothing, so they cannot
loop. One about a tenant's webhook is that tenant's event: it goes to the operator's
subscribers and to that tenant's own, never to another tenant's.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog

from dispatcher import ids
from dispatcher.db import DB_UNAVAILABLE
from dispatcher.engine import OutcomesWritten, WebhookDisabled
from dispatcher.failing import FailureWatch
from dispatcher.fanout import Routing
from dispatcher.ingest import Ingestor, NewEvent

log = structlog.get_logger(__name__)

WEBHOOK_DISABLED = "dispatcher.webhook.disabled"
DELIVERY_FAILED = "dispatcher.delivery.failed"
PREFIX = "dispatcher."


# Operational events are gathered this long and committed together: under a stream of
# failures each failed delivery would otherwise be a commit of its own.
BATCH_DELAY = 0.1


class Publisher:
    """Publishes operational events in the background, in batches.

    ``ingestor`` is the publisher's own (the app gives it a writer apart from producers').
    """

    def __init__(self, ingestor: Ingestor, failure_window_seconds: float) -> None:
        self.ingestor = ingestor
        self.failure_window_seconds = failure_window_seconds
        self._pending: list[NewEvent] = []
        self._flusher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Sees every committed batch of outcomes (through outcomes_written).
        self.failures = FailureWatch(ingestor.pool, ingestor.registry, self.publish)

    def outcomes_written(self, event: OutcomesWritten) -> None:
        """Watch a committed batch for failing webhooks; announce deliveries that failed.

        Announced once the failure is committed, so the API already says "failed".
        """
        batch = event.outcomes
        self.failures.observe(batch, self.failure_window_seconds)
        for o in batch:
            if o.status == "failed" and not o.event_type.startswith(PREFIX):
                self.publish(
                    DELIVERY_FAILED,
                    {
                        "delivery_id": o.delivery_id,
                        "event_id": o.event_id,
                        "event_type": o.event_type,
                        "webhook_id": o.webhook_id,
                        "attempt_count": o.number,
                        "last_status_code": o.status_code,
                        "last_error": o.error,
                    },
                    o.webhook_id,
                )

    def webhook_disabled(self, event: WebhookDisabled) -> None:
        """Announce a webhook the engine disabled (auto, gone)."""
        self.publish(
            WEBHOOK_DISABLED,
            {
                "webhook_id": event.webhook_id,
                "name": event.name,
                "url": event.url,
                "reason": event.reason,
                "disabled_at": event.disabled_at,
            },
            event.webhook_id,
        )

    def publish(self, event_type: str, data: dict[str, Any], about_webhook: str) -> None:
        """Queue one operational event about ``about_webhook`` (never delivered to it)."""
        # The webhook's tenant from the registry (its tenant never changes); one gone from
        # it meanwhile is not known to belong to any tenant, so only the operator hears.
        spec = self.ingestor.registry.webhooks.get(about_webhook)
        self._pending.append(
            NewEvent(
                id=ids.event_id(),
                type=event_type,
                data_json=orjson.dumps(data),
                occurred_at=datetime.now(UTC),
                routing=Routing(exclude=about_webhook, operator_too=True),
                tenant_id=spec.tenant_id if spec is not None else None,
            )
        )
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        try:
            await asyncio.sleep(BATCH_DELAY)
        finally:
            self._flusher = None
            self._flush()

    def _flush(self) -> None:
        events, self._pending = self._pending, []
        if events:
            task = asyncio.get_running_loop().create_task(self._submit(events))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _submit(self, events: list[NewEvent]) -> None:
        # Keep trying through a database outage (about two minutes) before giving up.
        delay = 0.5
        for _ in range(12):
            try:
                await self.ingestor.submit(events)
                return
            except DB_UNAVAILABLE as exc:
                log.warning("operational_event_retry", count=len(events), error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15.0)
            except Exception:
                # Refused, or ingestion stopped: retrying will not help.
                log.exception("operational_events_dropped", event_ids=[e.id for e in events])
                return
        log.error("operational_events_dropped", event_ids=[e.id for e in events])

    async def drain(self) -> None:
        """Commit what is queued now and wait for queued publications (shutdown)."""
        await self.failures.drain()
        if self._flusher is not None:
            self._flusher.cancel()  # its finally flushes at once
            await asyncio.wait([self._flusher], timeout=1)
        self._flush()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
