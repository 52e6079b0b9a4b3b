"""Measuring helpers: percentiles, timelines, progress, pacing, memory and CPU sampling."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil


def pct(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def latency_summary(latencies_s: Sequence[float], prefix: str = "") -> dict[str, float]:
    """p50/p90/p99/max/mean in milliseconds."""
    ms = sorted(x * 1000 for x in latencies_s if x >= 0)
    if not ms:
        return {f"{prefix}p50_ms": float("nan"), f"{prefix}p99_ms": float("nan")}
    return {
        f"{prefix}p50_ms": pct(ms, 0.50),
        f"{prefix}p90_ms": pct(ms, 0.90),
        f"{prefix}p99_ms": pct(ms, 0.99),
        f"{prefix}max_ms": ms[-1],
        f"{prefix}mean_ms": sum(ms) / len(ms),
    }


def timeline(
    arrivals: Sequence[float],
    latencies: Sequence[float],
    start: float,
    step: float = 0.5,
) -> dict[str, list[float]]:
    """Received requests per second and latency p50/p99 per ``step``-second bin.

    ``arrivals`` are unix seconds; ``start`` is the unix time the scenario began.
    """
    if not arrivals:
        return {"t": [], "per_s": [], "p50_ms": [], "p99_ms": []}
    end = max(arrivals)
    bins = min(100_000, int((end - start) / step) + 1)
    lat_bins: list[list[float]] = [[] for _ in range(bins)]
    counts = [0] * bins
    for t, lat in zip(arrivals, latencies, strict=True):
        i = int((t - start) / step)
        if 0 <= i < bins:
            counts[i] += 1
            if lat >= 0:
                lat_bins[i].append(lat * 1000)
    return {
        "t": [round(i * step, 3) for i in range(bins)],
        "per_s": [c / step for c in counts],
        "p50_ms": [pct(b, 0.5) if b else float("nan") for b in lat_bins],
        "p99_ms": [pct(b, 0.99) if b else float("nan") for b in lat_bins],
    }


class Progress:
    """A one-line progress report on stderr, at most once a second."""

    def __init__(self, label: str, total: int | None = None, unit: str = "") -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.t0 = time.perf_counter()
        self._last = 0.0

    def update(self, done: int, extra: str = "", force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._last < 1.0:
            return
        self._last = now
        of = f"/{self.total}" if self.total else ""
        share = f" ({100 * done / self.total:.0f}%)" if self.total else ""
        print(
            f"  {self.label}: {done}{of} {self.unit}{share} {now - self.t0:6.1f}s {extra}".rstrip(),
            file=sys.stderr,
            flush=True,
        )


async def run_concurrent(
    n: int, concurrency: int, fn: Callable[[int], Awaitable[None]], progress: Progress | None = None
) -> float:
    """Call ``fn(i)`` for i in range(n), at most ``concurrency`` at a time; seconds taken."""
    counter = iter(range(n))
    done = 0

    async def worker() -> None:
        nonlocal done
        for i in counter:
            await fn(i)
            done += 1
            if progress is not None:
                progress.update(done)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(n, concurrency))))
    return time.perf_counter() - t0


async def paced(
    rate: float,
    seconds: float,
    send: Callable[[], Awaitable[None]],
    label: str,
    max_pending: int = 2000,
) -> tuple[int, float]:
    """Start ``send()`` ``rate`` times a second for ``seconds`` (open loop, bounded).

    At most ``max_pending`` sends are outstanding; when the service falls that far behind,
    the producer waits rather than piling up. Returns (sent, seconds the sending took).
    """
    total = int(rate * seconds)
    progress = Progress(label, total, "events")
    pending: set[asyncio.Task[None]] = set()
    errors: list[BaseException] = []

    def done(task: asyncio.Task[None]) -> None:
        pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            errors.append(task.exception())  # type: ignore[arg-type]

    sent = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds * 3 + 10
    while sent < total and time.perf_counter() < deadline:
        due = min(total, int((time.perf_counter() - t0) * rate) + 1)
        while sent < due and len(pending) < max_pending:
            task = asyncio.create_task(send())
            pending.add(task)
            task.add_done_callback(done)
            sent += 1
        progress.update(sent, f"{len(pending)} pending")
        if errors:
            break
        await asyncio.sleep(0.001)
    took = time.perf_counter() - t0
    if pending:
        await asyncio.wait(list(pending), timeout=60)
    if errors:
        raise RuntimeError(f"{label}: {len(errors)} sends failed; first: {errors[0]!r}")
    return sent, took


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MiB."""
    return _tree_rss(psutil.Process(pid)) / 2**20


@dataclass
class RssSampler:
    """Samples a process tree's resident memory every ``interval`` seconds."""

    pid: int
    interval: float = 0.1
    samples: list[tuple[float, float]] = field(default_factory=list)  # (seconds, MiB)
    _task: asyncio.Task[None] | None = None

    @property
    def peak_mb(self) -> float:
        return max((mb for _, mb in self.samples), default=float("nan"))

    @property
    def last_mb(self) -> float:
        return self.samples[-1][1] if self.samples else float("nan")

    async def _run(self) -> None:
        proc = psutil.Process(self.pid)
        t0 = time.perf_counter()
        while True:
            rss = _tree_rss(proc)
            self.samples.append((time.perf_counter() - t0, rss / 2**20))
            await asyncio.sleep(self.interval)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[RssSampler]:
        self._task = asyncio.create_task(self._run())
        try:
            await asyncio.sleep(0)
            yield self
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            last = self.samples[-1][0] if self.samples else 0.0
            self.samples.append((last, rss_mb(self.pid)))

    def series(self) -> dict[str, list[float]]:
        return {
            "t": [round(t, 2) for t, _ in self.samples],
            "rss_mb": [mb for _, mb in self.samples],
        }


class CpuMeter:
    """CPU seconds used by some processes between start() and stop()."""

    def __init__(self, pids: Sequence[int]) -> None:
        self.procs = [psutil.Process(p) for p in pids]
        self._t0 = 0.0
        self._cpu0 = 0.0

    def _cpu(self) -> float:
        total = 0.0
        for p in self.procs:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def start(self) -> CpuMeter:
        self._t0 = time.perf_counter()
        self._cpu0 = self._cpu()
        return self

    def stop(self) -> tuple[float, float]:
        """(CPU seconds, percent of one core over the wall time)."""
        cpu = self._cpu() - self._cpu0
        wall = time.perf_counter() - self._t0
        return cpu, 100 * cpu / wall if wall > 0 else float("nan")


def bodies(size: int, event_type: str) -> Callable[[], dict[str, Any]]:
    """A factory of event bodies whose ``data`` JSON is ``size`` bytes, stamped when made."""
    import orjson

    overhead = len(orjson.dumps({"sent_at": time.time(), "pad": ""}))
    pad = "x" * max(0, size - overhead - 8)  # room for a longer timestamp

    def make() -> dict[str, Any]:
        return {"type": event_type, "data": {"sent_at": time.time(), "pad": pad}}

    return make


# -- CPU per delivery, by process ----------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _proc_times(pid: int) -> tuple[float, float]:
    """(utime + stime, cutime + cstime) of one process, seconds, from ``/proc/<pid>/stat``.

    cutime/cstime are what the process has reaped: for the postmaster, every backend that
    exited (with what those had reaped in turn).
    """
    with open(f"/proc/{pid}/stat", "rb") as f:
        raw = f.read()
    fields = raw[raw.rindex(b")") + 2 :].split()  # the name may hold spaces and parentheses
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])  # stat fields 14-17
    return (utime + stime) / _TICK, (cutime + cstime) / _TICK


def tree_cpu_s(pid: int) -> float:
    """CPU seconds a process tree has used so far: every live member's own time plus what
    each has reaped (a child that exited is counted in its parent's cutime/cstime, once)."""
    try:
        root = psutil.Process(pid)
        members = [root.pid, *(p.pid for p in root.children(recursive=True))]
    except psutil.Error:
        return 0.0
    total = 0.0
    for member in members:
        with contextlib.suppress(OSError):
            own, reaped = _proc_times(member)
            total += own + reaped
    return total


class ProcessCpu:
    """CPU seconds of named groups of process trees between start() and stop().

    ``groups`` maps a name (``dispatcher``, ``postgres``, ``receiver``, ``worker``) to root
    pids; each root counts with all its descendants, live or reaped (see :func:`tree_cpu_s`).
    A group with no pids (e.g. an external Postgres) is reported as NaN.
    """

    def __init__(self, groups: dict[str, Sequence[int]]) -> None:
        self.groups = {name: list(pids) for name, pids in groups.items()}
        self._t0 = 0.0
        self._cpu0: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self.wall = float("nan")

    def _cpu(self) -> dict[str, float]:
        return {name: sum(tree_cpu_s(p) for p in pids) for name, pids in self.groups.items()}

    def start(self) -> ProcessCpu:
        self._cpu0 = self._cpu()
        self._t0 = time.perf_counter()
        return self

    def stop(self) -> ProcessCpu:
        self.wall = time.perf_counter() - self._t0
        now = self._cpu()
        self.seconds = {
            name: (now[name] - self._cpu0[name]) if self.groups[name] else float("nan")
            for name in self.groups
        }
        return self

    def per(self, count: int, unit: str = "delivery", pct: bool = False) -> dict[str, float]:
        """``<group>_cpu_us_per_<unit>`` for every group (and ``<group>_cpu_pct`` of one core)."""
        out: dict[str, float] = {}
        for name, secs in self.seconds.items():
            out[f"{name}_cpu_us_per_{unit}"] = 1e6 * secs / count if count else float("nan")
            if pct:
                out[f"{name}_cpu_pct"] = 100 * secs / self.wall if self.wall > 0 else float("nan")
        return out
