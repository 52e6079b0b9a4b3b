"""Paging without floods: ``dispatcher.webhook.failing`` once when a webhook starts failing,
``dispatcher.webhook.recovered`` at its next success, and nothing in between.

A webhook starts failing when its last :data:`FAILING_AFTER` attempts all failed. The state
is ``webhooks.failing_since`` in Postgres, set and cleared by conditional UPDATEs, so across
instances exactly one publishes each transition. Nothing is written while the state holds:
a batch with failures costs one bounded read, and a success is checked against the
registry's copy of ``failing_since`` (refreshed by NOTIFY on each transition), so a healthy
webhook costs nothing at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import structlog

from dispatcher.db import DB_UNAVAILABLE, load_queries
from dispatcher.outcomes import Outcome
from dispatcher.registry import Registry
from dispatcher.store import notify

log = structlog.get_logger(__name__)

Q = load_queries(Path(__file__).with_suffix(".sql"))

WEBHOOK_FAILING = "dispatcher.webhook.failing"
WEBHOOK_RECOVERED = "dispatcher.webhook.recovered"
# Consecutive failed attempts that make a webhook failing: one timeout is not a page.
FAILING_AFTER = 3

Publish = Callable[[str, dict[str, Any], str], None]


def succeeded(outcome: Outcome) -> bool:
    """The attempt succeeded (its answer read as success by retry.classify)."""
    return not outcome.failed


def transitions(
    batch: Sequence[Outcome], is_failing: Callable[[str], bool]
) -> tuple[set[str], set[str]]:
    """``(maybe_failing, recovered)`` webhook ids of a batch of outcomes, in order.

    A webhook with a failure that is not failing yet may have started (the database decides);
    one whose last outcome in the batch succeeded and that is failing has recovered.
    """
    last: dict[str, bool] = {}
    failed: set[str] = set()
    for o in batch:
        ok = succeeded(o)
        last[o.webhook_id] = ok
        if not ok:
            failed.add(o.webhook_id)
    maybe = {w for w in failed if not last[w] and not is_failing(w)}
    recovered = {w for w, ok in last.items() if ok and is_failing(w)}
    return maybe, recovered


class FailureWatch:
    """Watches flushed outcomes and publishes the failing/recovered transitions."""

    def __init__(self, pool: asyncpg.Pool, registry: Registry, publish: Publish) -> None:
        self.pool = pool
        self.registry = registry
        self.publish = publish
        self._maybe: set[str] = set()
        self._recovered: set[str] = set()
        self._window = 10.0
        self._task: asyncio.Task[None] | None = None

    def _is_failing(self, webhook_id: str) -> bool:
        spec = self.registry.webhooks.get(webhook_id)
        return spec is not None and spec.failing_since is not None

    def observe(self, batch: Sequence[Outcome], window_seconds: float) -> None:
        """Look at a committed batch; any transition is written and published in the background."""
        maybe, recovered = transitions(batch, self._is_failing)
        if not maybe and not recovered:
            return
        self._maybe = (self._maybe | maybe) - recovered
        self._recovered = (self._recovered | recovered) - maybe
        self._window = window_seconds
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._maybe or self._recovered:
            maybe, self._maybe = list(self._maybe), set()
            recovered, self._recovered = list(self._recovered), set()
            try:
                await self._apply(maybe, recovered)
            except DB_UNAVAILABLE as exc:
                # The next failure or success looks again.
                log.warning("failing_check_failed", error=str(exc))

    async def _apply(self, maybe: list[str], recovered: list[str]) -> None:
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                started = (
                    await conn.fetch(Q["start_failing"], maybe, FAILING_AFTER, self._window)
                    if maybe
                    else []
                )
                ended = await conn.fetch(Q["recover"], recovered) if recovered else []
                for row in (*started, *ended):
                    await notify(conn, "webhook", id=row["id"])
            for row in (*started, *ended):
                await self.registry.refresh_webhook(conn, row["id"])
        for row in started:
            log.warning("webhook_failing", webhook_id=row["id"], status_code=row["status_code"])
            self.publish(
                WEBHOOK_FAILING,
                {
                    "webhook_id": row["id"],
                    "name": row["name"],
                    "failing_since": row["failing_since"],
                    "consecutive_failures": FAILING_AFTER,
                    "failures_in_window": row["failures"],
                    "window_seconds": self._window,
                    "last_status_code": row["status_code"],
                    "last_error": row["error"],
                },
                row["id"],
            )
        for row in ended:
            log.info("webhook_recovered", webhook_id=row["id"])
            since: datetime = row["failing_since"]
            self.publish(
                WEBHOOK_RECOVERED,
                {
                    "webhook_id": row["id"],
                    "name": row["name"],
                    "failing_since": since,
                    "recovered_at": row["recovered_at"],
                    "failed_for_seconds": round((row["recovered_at"] - since).total_seconds(), 3),
                },
                row["id"],
            )

    async def drain(self) -> None:
        """Wait for a transition being written (shutdown)."""
        if self._task is not None:
            await asyncio.wait([self._task], timeout=5)
