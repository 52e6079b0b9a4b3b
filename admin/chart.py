"""Geometry of the console's charts, drawn by the templates as inline SVG.

Stacked bars per time bucket (successful attempts below, failed above: the overview's last
hour, a webhook's last hour or day) and latency percentile lines per bucket.
Pure functions of the data, so the page needs no JavaScript and no external assets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

WIDTH = 1040
HEIGHT = 220
LEFT = 36  # room for the y-axis labels
RIGHT = 8
TOP = 10
BOTTOM = 24  # room for the x-axis labels


@dataclass(frozen=True, slots=True)
class Bar:
    """One minute."""

    x: float
    width: float
    ok_y: float
    ok_height: float
    failed_y: float
    failed_height: float
    label: str


@dataclass(frozen=True, slots=True)
class Tick:
    """An axis label at a position."""

    pos: float
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    """Everything the template draws."""

    width: int
    height: int
    left: int
    right: float
    top: int
    bottom: float
    bars: list[Bar]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    succeeded: int
    failed: int
    peak: int
    per: str = "minute"
    span: str = "the last hour"

    @property
    def empty(self) -> bool:
        """No attempts at all in the window."""
        return self.succeeded + self.failed == 0

    @property
    def summary(self) -> str:
        """A text alternative for screen readers."""
        return (
            f"Attempts per {self.per} over {self.span}: {self.succeeded} succeeded, "
            f"{self.failed} failed, at most {self.peak} in one minute."
        )


def nice_step(peak: int, ticks: int = 4) -> int:
    """The smallest of 1, 2, 5 x 10^k with ``ticks`` steps reaching ``peak``."""
    need = max(peak / ticks, 1)
    magnitude = 10 ** math.floor(math.log10(need))
    for step in (1, 2, 5, 10):
        if step * magnitude >= need:
            return int(step * magnitude)
    return int(10 * magnitude)  # pragma: no cover


def minute_chart(
    rows: list[tuple[datetime, int, int]], now: datetime | None = None, minutes: int = 60
) -> Chart:
    """Lay out ``(minute, succeeded, failed)`` rows as one bar per minute ending now."""
    return bar_chart(rows, now, slots=minutes, step=timedelta(minutes=1))


def _floor(at: datetime, step: timedelta) -> datetime:
    """``at`` rounded down to a multiple of ``step`` since the epoch (UTC)."""
    seconds = step.total_seconds()
    epoch = at.astimezone(UTC).timestamp()
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


def bar_chart(
    rows: list[tuple[datetime, int, int]],
    now: datetime | None = None,
    *,
    slots: int,
    step: timedelta,
    span: str = "the last hour",
    width: int = WIDTH,
) -> Chart:
    """Lay out ``(bucket start, succeeded, failed)`` rows as ``slots`` bars of ``step`` each,
    the last one holding now."""
    now = _floor(now or datetime.now(UTC), step)
    start = now - step * (slots - 1)
    counts: dict[datetime, tuple[int, int]] = {}
    for at, ok, failed in rows:
        key = _floor(at, step)
        if start <= key <= now:
            before = counts.get(key, (0, 0))
            counts[key] = (before[0] + ok, before[1] + failed)
    peak = max((ok + failed for ok, failed in counts.values()), default=0)
    step_y = nice_step(peak)
    ceiling = step_y * 4
    plot_w = width - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    slot = plot_w / slots
    gap = max(slot * 0.18, 1.0)
    bottom = TOP + plot_h
    per = "minute" if step == timedelta(minutes=1) else _step_text(step)
    bars: list[Bar] = []
    for i in range(slots):
        at = start + step * i
        ok, failed = counts.get(at, (0, 0))
        ok_h = plot_h * ok / ceiling
        failed_h = plot_h * failed / ceiling
        bars.append(
            Bar(
                x=round(LEFT + i * slot + gap / 2, 2),
                width=round(slot - gap, 2),
                ok_y=round(bottom - ok_h, 2),
                ok_height=round(ok_h, 2),
                failed_y=round(bottom - ok_h - failed_h, 2),
                failed_height=round(failed_h, 2),
                label=f"{at:%H:%M} UTC: {ok} succeeded, {failed} failed",
            )
        )
    y_ticks = [Tick(round(bottom - plot_h * i / 4, 2), f"{step_y * i:,}") for i in range(5)]
    every = max(slots // 6, 1)
    x_ticks = [
        Tick(round(LEFT + i * slot + slot / 2, 2), f"{start + step * i:%H:%M}")
        for i in range(0, slots - every // 2, every)
    ] + [Tick(round(LEFT + (slots - 1) * slot + slot / 2, 2), "now")]
    return Chart(
        width=width,
        height=HEIGHT,
        left=LEFT,
        right=width - RIGHT,
        top=TOP,
        bottom=bottom,
        bars=bars,
        y_ticks=y_ticks,
        x_ticks=x_ticks,
        succeeded=sum(ok for ok, _ in counts.values()),
        failed=sum(failed for _, failed in counts.values()),
        peak=peak,
        per=per,
        span=span,
    )


def _step_text(step: timedelta) -> str:
    minutes = int(step.total_seconds() // 60)
    return f"{minutes} minutes" if minutes < 60 else f"{minutes // 60} hours"


@dataclass(frozen=True, slots=True)
class LineChart:
    """Latency percentiles per bucket as SVG polylines (milliseconds on a linear axis)."""

    width: int
    height: int
    left: int
    right: float
    top: int
    bottom: float
    lines: dict[str, str]  # name -> "x,y x,y ..." (gaps where a bucket had no attempts)
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    empty: bool
    summary: str


def latency_chart(
    rows: list[tuple[datetime, float, float]],
    now: datetime | None = None,
    *,
    slots: int,
    step: timedelta,
    span: str = "the last hour",
    width: int = WIDTH,
) -> LineChart:
    """Lay out ``(bucket start, p50 ms, p99 ms)`` rows as two lines over ``slots`` buckets."""
    now = _floor(now or datetime.now(UTC), step)
    start = now - step * (slots - 1)
    found = {_floor(at, step): (p50, p99) for at, p50, p99 in rows}
    peak = max((p99 for _, p99 in found.values()), default=0.0)
    step_y = nice_step(math.ceil(peak))
    ceiling = step_y * 4
    plot_w = width - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    slot = plot_w / slots
    bottom = TOP + plot_h
    lines: dict[str, list[str]] = {"p50": [], "p99": []}
    for i in range(slots):
        value = found.get(start + step * i)
        if value is None:
            continue
        x = round(LEFT + i * slot + slot / 2, 2)
        for name, ms in zip(("p50", "p99"), value, strict=True):
            lines[name].append(f"{x},{round(bottom - plot_h * min(ms, ceiling) / ceiling, 2)}")
    y_ticks = [Tick(round(bottom - plot_h * i / 4, 2), f"{step_y * i:,}") for i in range(5)]
    every = max(slots // 6, 1)
    x_ticks = [
        Tick(round(LEFT + i * slot + slot / 2, 2), f"{start + step * i:%H:%M}")
        for i in range(0, slots - every // 2, every)
    ] + [Tick(round(LEFT + (slots - 1) * slot + slot / 2, 2), "now")]
    return LineChart(
        width=width,
        height=HEIGHT,
        left=LEFT,
        right=width - RIGHT,
        top=TOP,
        bottom=bottom,
        lines={k: " ".join(v) for k, v in lines.items()},
        y_ticks=y_ticks,
        x_ticks=x_ticks,
        empty=not found,
        summary=f"Attempt latency over {span}: p99 at most {peak:,.0f} ms.",
    )
