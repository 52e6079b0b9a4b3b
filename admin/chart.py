"""Geometry of the overview's bar chart, drawn by the template as inline SVG.

One stacked bar per minute over the last hour: successful attempts below, failed above.
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

    @property
    def empty(self) -> bool:
        """No attempts at all in the window."""
        return self.succeeded + self.failed == 0

    @property
    def summary(self) -> str:
        """A text alternative for screen readers."""
        return (
            f"Attempts per minute over the last hour: {self.succeeded} succeeded, "
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
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(minutes=minutes - 1)
    counts: dict[datetime, tuple[int, int]] = {}
    for minute, ok, failed in rows:
        key = minute.astimezone(UTC).replace(second=0, microsecond=0)
        if start <= key <= now:
            counts[key] = (ok, failed)
    peak = max((ok + failed for ok, failed in counts.values()), default=0)
    step = nice_step(peak)
    ceiling = step * 4
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    slot = plot_w / minutes
    gap = max(slot * 0.18, 1.0)
    bottom = TOP + plot_h
    bars: list[Bar] = []
    for i in range(minutes):
        minute = start + timedelta(minutes=i)
        ok, failed = counts.get(minute, (0, 0))
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
                label=f"{minute:%H:%M} UTC: {ok} succeeded, {failed} failed",
            )
        )
    y_ticks = [Tick(round(bottom - plot_h * i / 4, 2), f"{step * i:,}") for i in range(5)]
    x_ticks = [
        Tick(round(LEFT + i * slot + slot / 2, 2), f"{start + timedelta(minutes=i):%H:%M}")
        for i in range(0, minutes, 10)
    ] + [Tick(round(LEFT + (minutes - 1) * slot + slot / 2, 2), "now")]
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        right=WIDTH - RIGHT,
        top=TOP,
        bottom=bottom,
        bars=bars,
        y_ticks=y_ticks,
        x_ticks=x_ticks,
        succeeded=sum(ok for ok, _ in counts.values()),
        failed=sum(failed for _, failed in counts.values()),
        peak=peak,
    )
