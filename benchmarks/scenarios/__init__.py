"""The scenarios, in the order ``make bench`` runs them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from benchmarks.scenarios import (
    concurrency,
    e2e,
    failure_mix,
    growth,
    growth_history,
    ingest,
    latency,
    peer,
    raw,
    tenants,
    validation,
)
from benchmarks.scenarios.base import Context, Options, Result

Scenario = Callable[[Context], Awaitable[Result]]

SCENARIOS: dict[str, Scenario] = {
    "raw": raw.run,
    "ingest": ingest.run,
    "validation": validation.run,
    "e2e": e2e.run,
    "latency": latency.run,
    "latency200": latency.run200,
    "concurrency": concurrency.run,
    "failure_mix": failure_mix.run,
    "growth": growth.run,
    "growth-history": growth_history.run,
    "peer": peer.run,
    "tenants": tenants.run,
}

__all__ = ["SCENARIOS", "Context", "Options", "Result", "Scenario"]
