"""Prometheus metrics, all prefixed ``dispatcher_``.

Label cardinality is bounded: delivery metrics carry a ``webhook_id`` label that is empty
(which Prometheus treats as absent) unless ``DISPATCHER_METRICS_PER_WEBHOOK`` is on. With
``DISPATCHER_WORKERS > 1`` every worker writes to ``PROMETHEUS_MULTIPROC_DIR`` and
``/metrics`` aggregates them (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import asyncio
import os
from functools import lru_cache
from typing import TYPE_CHECKING

import asyncpg
import structlog
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client import REGISTRY as DEFAULT_REGISTRY

from dispatcher.db import DB_UNAVAILABLE
from dispatcher.openapi import operation
from dispatcher.store.deliveries import Q

if TYPE_CHECKING:
    from dispatcher.registry import Registry

log = structlog.get_logger(__name__)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)

EVENTS_INGESTED = Counter(
    "dispatcher_events_ingested_total", "Events accepted by ingestion.", ["outcome"]
)
INGEST_BATCH_SIZE = Histogram(
    "dispatcher_ingest_batch_size",
    "Events per group-commit transaction.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
)
DELIVERIES_CREATED = Counter(
    "dispatcher_deliveries_created_total", "Deliveries created by fan-out.", ["webhook_id"]
)
DELIVERIES_FINISHED = Counter(
    "dispatcher_deliveries_finished_total",
    "Deliveries that reached a final status.",
    ["outcome", "webhook_id"],
)
ATTEMPTS = Counter(
    "dispatcher_attempts_total",
    "HTTP attempts by result class (2xx, 3xx, 4xx, 5xx, timeout, connection, blocked).",
    ["result", "webhook_id"],
)
ATTEMPT_DURATION = Histogram(
    "dispatcher_attempt_duration_seconds",
    "Duration of one HTTP attempt.",
    ["webhook_id"],
    buckets=_LATENCY_BUCKETS,
)
DELIVERY_LATENCY = Histogram(
    "dispatcher_delivery_latency_seconds",
    "From acceptance of the event to its successful delivery.",
    ["webhook_id"],
    buckets=_LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    "dispatcher_in_flight_deliveries", "Attempts in flight.", multiprocess_mode="livesum"
)
QUEUED = Gauge(
    "dispatcher_queued_deliveries",
    "Deliveries leased by this process and waiting in its lanes.",
    multiprocess_mode="livesum",
)
LOOP_LAG = Gauge(
    "dispatcher_event_loop_lag_seconds",
    "How late the event loop runs timers (moving average): near 0 idle, rising when CPU-bound.",
    multiprocess_mode="max",
)
QUEUE_DEPTH = Gauge(
    "dispatcher_queue_depth",
    "Unfinished deliveries in the database: due now, scheduled later, held (disabled"
    " webhook), leased (held by an instance, in its lanes or in flight).",
    ["state"],
    multiprocess_mode="max",
)
OLDEST_DUE = Gauge(
    "dispatcher_oldest_due_seconds",
    "Age of the oldest delivery that is due and not yet sent.",
    multiprocess_mode="max",
)
AUTO_DISABLES = Counter(
    "dispatcher_auto_disables_total", "Webhooks disabled by the engine.", ["reason"]
)
WEBHOOKS = Gauge(
    "dispatcher_webhooks", "Registered webhooks by state.", ["state"], multiprocess_mode="max"
)
DB_POOL = Gauge(
    "dispatcher_db_pool_connections",
    "Database pool connections by state.",
    ["state"],
    multiprocess_mode="livesum",
)
LISTEN_RECONNECTS = Counter(
    "dispatcher_listen_reconnects_total", "Times the LISTEN connection was re-established."
)
HTTP_REQUESTS = Counter(
    "dispatcher_http_requests_total", "API requests answered.", ["method", "route", "status"]
)


# Every label value a counter can take, so each series exists at 0 from start-up. A series
# that first appears at 1 is invisible to ``increase()``/``rate()`` (no earlier sample), and
# the shipped alerts and panels are built on those: the first auto-disable would never alert.
INGEST_OUTCOMES = ("accepted", "duplicate")
FINISHED_OUTCOMES = ("success", "failed")
# "error": the attempt broke on our side (sending or classifying raised); retried as usual.
RESULT_CLASSES = ("2xx", "3xx", "4xx", "5xx", "timeout", "connection", "blocked", "error")
DISABLE_REASONS = ("auto", "gone")  # what the engine disables for; "manual" is not counted


def _initialise_series() -> None:
    for outcome in INGEST_OUTCOMES:
        EVENTS_INGESTED.labels(outcome)
    DELIVERIES_CREATED.labels("")
    for outcome in FINISHED_OUTCOMES:
        DELIVERIES_FINISHED.labels(outcome, "")
    for result in RESULT_CLASSES:
        ATTEMPTS.labels(result, "")
    ATTEMPT_DURATION.labels("")
    DELIVERY_LATENCY.labels("")
    for reason in DISABLE_REASONS:
        AUTO_DISABLES.labels(reason)


_initialise_series()


# Labelled children looked up once: ``labels()`` takes a lock and hashes on every call, which
# shows on the per-attempt hot path.
@lru_cache(maxsize=8192)
def attempts(result: str, webhook_id: str) -> Counter:
    """The attempts counter for one result class (and webhook, if labelled)."""
    return ATTEMPTS.labels(result, webhook_id)


@lru_cache(maxsize=8192)
def attempt_duration(webhook_id: str) -> Histogram:
    """The attempt duration histogram child."""
    return ATTEMPT_DURATION.labels(webhook_id)


@lru_cache(maxsize=8192)
def delivery_latency(webhook_id: str) -> Histogram:
    """The producer-to-delivery latency histogram child."""
    return DELIVERY_LATENCY.labels(webhook_id)


@lru_cache(maxsize=8192)
def deliveries_finished(outcome: str, webhook_id: str) -> Counter:
    """The finished-deliveries counter child."""
    return DELIVERIES_FINISHED.labels(outcome, webhook_id)


def result_class(status_code: int | None, error_kind: str | None) -> str:
    """The ``result`` label of an attempt."""
    if status_code is None or error_kind == "error":
        return error_kind or "connection"
    return f"{status_code // 100}xx"


def registry() -> CollectorRegistry:
    """The registry to expose: aggregated across workers in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)  # type: ignore[no-untyped-call]
        return collected
    return DEFAULT_REGISTRY


@operation(
    summary="Prometheus metrics",
    tag="operations",
    responses={200: "text/plain; version=0.0.4"},
    auth="none",
)
async def handler(_request: web.Request) -> web.Response:
    """``GET /metrics`` in the Prometheus text format."""
    body = generate_latest(registry())
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def sample(pool: asyncpg.Pool, registry_: Registry) -> None:
    """Refresh the gauges that are read rather than counted."""
    DB_POOL.labels("in_use").set(pool.get_size() - pool.get_idle_size())
    DB_POOL.labels("idle").set(pool.get_idle_size())
    enabled = sum(1 for w in registry_.webhooks.values() if w.enabled)
    WEBHOOKS.labels("enabled").set(enabled)
    WEBHOOKS.labels("disabled").set(len(registry_.webhooks) - enabled)
    row = await pool.fetchrow(Q["queue_depth"])
    if row is not None:
        for state in ("due", "scheduled", "held", "leased"):
            QUEUE_DEPTH.labels(state).set(row[state])
        OLDEST_DUE.set(row["oldest_due_seconds"])


async def sample_forever(pool: asyncpg.Pool, registry_: Registry, interval: float = 5.0) -> None:
    """Keep the sampled gauges fresh."""
    while True:
        try:
            await sample(pool, registry_)
        except DB_UNAVAILABLE as exc:
            log.debug("metrics_sample_failed", error=str(exc))
        await asyncio.sleep(interval)
