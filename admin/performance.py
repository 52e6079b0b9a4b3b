"""A webhook's delivery performance over the last hour or day, from the attempts log:
attempts (succeeded/failed), success rate and latency p50/p99, per bucket and overall."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from admin.chart import Chart, LineChart, bar_chart, latency_chart
from dispatcher.store import Executor
from dispatcher.store import deliveries as store

# span -> (window, bucket, buckets, words)
SPANS: dict[str, tuple[timedelta, timedelta, int, str]] = {
    "hour": (timedelta(hours=1), timedelta(minutes=1), 60, "the last hour"),
    "day": (timedelta(days=1), timedelta(minutes=30), 48, "the last day"),
}
# At most this many of the newest attempts are read for one chart: a busy webhook's day is
# summarised from its latest attempts instead of scanning millions of rows.
CAP = 100_000
# Two charts side by side: drawn on a canvas about as wide as each is shown, so text stays legible.
CHART_WIDTH = 560


@dataclass(frozen=True, slots=True)
class Performance:
    """What the webhook page's performance section shows."""

    span: str
    words: str
    attempts: int
    succeeded: int
    p50_ms: float | None
    p99_ms: float | None
    capped: bool
    bars: Chart
    latency: LineChart

    @property
    def ratio(self) -> float | None:
        """Share of attempts that succeeded; None without attempts."""
        return self.succeeded / self.attempts if self.attempts else None


async def performance(conn: Executor, webhook_id: str, span: str) -> Performance:
    """The webhook's attempts over ``span`` ('hour' or 'day'; anything else is 'hour')."""
    if span not in SPANS:
        span = "hour"
    window, step, slots, words = SPANS[span]
    buckets = await store.attempt_buckets(
        conn,
        webhook_id,
        window_seconds=window.total_seconds(),
        bucket_seconds=step.total_seconds(),
        cap=CAP,
    )
    total = next((b for b in buckets if b.start is None), None)
    per: list[Any] = [b for b in buckets if b.start is not None]
    attempts = total.attempts if total else 0
    return Performance(
        span=span,
        words=words,
        attempts=attempts,
        succeeded=total.succeeded if total else 0,
        p50_ms=total.p50_ms if total and attempts else None,
        p99_ms=total.p99_ms if total and attempts else None,
        capped=attempts >= CAP,
        bars=bar_chart(
            [(b.start, b.succeeded, b.attempts - b.succeeded) for b in per],
            slots=slots,
            step=step,
            span=words,
            width=CHART_WIDTH,
        ),
        latency=latency_chart(
            [(b.start, b.p50_ms, b.p99_ms) for b in per],
            slots=slots,
            step=step,
            span=words,
            width=CHART_WIDTH,
        ),
    )
