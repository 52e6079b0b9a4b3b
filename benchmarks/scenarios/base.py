"""What every scenario gets and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from benchmarks.env import Env

# The ``data`` size of the events in raw, ingest, e2e, latency, failure_mix and peer (bytes).
PAYLOAD_BYTES = 256


@dataclass
class Options:
    """Command-line choices that scenarios read."""

    quick: bool = False
    rate: float = 500.0
    seconds: float = 30.0
    receiver_workers: int = 2

    def pick(self, quick: Any, full: Any) -> Any:
        return quick if self.quick else full


@dataclass
class Result:
    """A scenario's figures (the table and JSON), its time series (plots), and notes."""

    figures: dict[str, Any] = field(default_factory=dict)
    series: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Context:
    """The environment, the options, and the results of the scenarios run before this one."""

    env: Env
    opts: Options
    results: dict[str, Result]
