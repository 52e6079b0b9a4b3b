"""Operational events: Dispatcher's own events, delivered like any other.

``dispatcher.webhook.disabled`` (auto, gone) and ``dispatcher.delivery.failed`` (a delivery
that ran out of retries) go to webhooks that subscribe to them, so operators can be paged by
webhook. They never go to the webhook they are about, and a failed delivery of an operational
event publishes nothing, so they cannot loop.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog

from dispatcher import ids
from dispatcher.db import DB_UNAVAILABLE
from dispatcher.fanout import Routing
from dispatcher.ingest import Ingestor, NewEvent

log = structlog.get_logger(__name__)

WEBHOOK_DISABLED = "dispatcher.webhook.disabled"
DELIVERY_FAILED = "dispatcher.delivery.failed"
PREFIX = "dispatcher."


class Publisher:
    """Publishes operational events through the ingestor, in the background."""

    def __init__(self, ingestor: Ingestor) -> None:
        self.ingestor = ingestor
        self._tasks: set[asyncio.Task[None]] = set()

    def publish(self, event_type: str, data: dict[str, Any], about_webhook: str) -> None:
        """Queue one operational event about ``about_webhook`` (never delivered to it)."""
        event = NewEvent(
            id=ids.event_id(),
            type=event_type,
            data_json=orjson.dumps(data),
            occurred_at=datetime.now(UTC),
            routing=Routing(exclude=about_webhook),
        )
        task = asyncio.get_running_loop().create_task(self._submit(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _submit(self, event: NewEvent) -> None:
        # Keep trying through a database outage (about two minutes) before giving up.
        delay = 0.5
        for _ in range(12):
            try:
                await self.ingestor.submit([event])
                return
            except DB_UNAVAILABLE as exc:
                log.warning("operational_event_retry", type=event.type, error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15.0)
        log.error("operational_event_dropped", type=event.type, event_id=event.id)

    async def drain(self) -> None:
        """Wait for queued publications (shutdown)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
