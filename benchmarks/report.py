"""The human table, the targets, the JSON file and the PNG charts."""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from benchmarks.scenarios.base import Options, Result

RESULTS = Path(__file__).resolve().parent / "results"

# Figures that are throughputs comparable with raw's requests/s (shown with a "x raw" ratio).
NOT_RATIOS = ("rate_per_s", "target_rate_per_s", "achieved_rate_per_s", "mib_per_s")

Check = Callable[[float, float | None], bool]

# The targets: (scenario, figure) -> (what, check(value, ratio to raw)).
TARGETS: dict[tuple[str, str], tuple[str, Check]] = {
    ("ingest", "single_best_events_per_s"): (
        ">= 0.5x raw",
        lambda v, r: r is not None and r >= 0.5,
    ),
    ("e2e", "deliveries_per_s"): (">= 0.6x raw", lambda v, r: r is not None and r >= 0.6),
    ("e2e", "postgres_cpu_us_per_delivery"): ("<= 50 us", lambda v, r: v <= 50),
    ("e2e", "dispatcher_vs_client_floor"): ("<= 1.3x", lambda v, r: v <= 1.3),
    ("validation", "single_cost_pct"): ("<= 10 %", lambda v, r: v <= 10),
    ("tenants", "single_ratio"): (">= 0.9 of no tenants", lambda v, r: v >= 0.9),
    ("tenants", "e2e_ratio"): (">= 0.9 of no tenants", lambda v, r: v >= 0.9),
    ("tenants", "registry_bytes_per_webhook"): ("<= 2048", lambda v, r: v <= 2048),
    ("validation", "batch100_cost_pct"): ("<= 15 %", lambda v, r: v <= 15),
    ("latency", "p50_ms"): ("<= 10 ms", lambda v, r: v <= 10),
    ("latency", "p99_ms"): ("<= 50 ms", lambda v, r: v <= 50),
    ("concurrency", "completion_s"): ("<= 6 s", lambda v, r: v <= 6),
    ("concurrency", "peak_rss_mb"): ("<= 400 MB", lambda v, r: v <= 400),
    ("failure_mix", "healthy_p99_change_pct"): ("< 20 %", lambda v, r: v < 20),
    ("peer", "ours_vs_peer"): (">= 1.5x", lambda v, r: v >= 1.5),
    ("peer", "ours_postgres_vs_peer_postgres"): ("<= 0.65x", lambda v, r: v <= 0.65),
    ("growth-history", "throughput_ratio"): (">= 0.9 of empty", lambda v, r: v >= 0.9),
    ("growth-history", "p99_ratio"): ("<= 1.1 of empty", lambda v, r: v <= 1.1),
    ("growth-history", "prune_ingest_ratio"): (">= 0.9 of not pruning", lambda v, r: v >= 0.9),
}


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def raw_rate(results: dict[str, Result]) -> float | None:
    raw = results.get("raw")
    return float(raw.figures["requests_per_s"]) if raw is not None else None


def ratio(scenario: str, key: str, value: Any, raw: float | None) -> float | None:
    if raw is None or not isinstance(value, float) or math.isnan(value):
        return None
    if not key.endswith("_per_s") or key.endswith(NOT_RATIOS):
        return None
    if scenario == "raw" and key != "requests_per_s":
        return None
    return value / raw


def _shown(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def table(name: str, result: Result, raw: float | None) -> str:
    """One scenario's block of the table."""
    lines = [f"{'scenario':14} {'figure':36} {'value':>12} {'x raw':>7}  target"]
    for key, value in result.figures.items():
        r = ratio(name, key, value, raw)
        target = ""
        if (name, key) in TARGETS:
            what, check = TARGETS[(name, key)]
            target = f"{what}: {'ok' if check(float(value), r) else 'MISS'}"
        shown_ratio = f"{r:7.2f}" if r is not None else ""
        lines.append(f"{name:14} {key:36} {_shown(value):>12} {shown_ratio:>7}  {target}".rstrip())
    lines.extend(f"{'':14} note: {n}" for n in result.notes)
    return "\n".join(lines)


def targets_summary(results: dict[str, Result]) -> list[dict[str, Any]]:
    raw = raw_rate(results)
    out = []
    for (name, key), (what, check) in TARGETS.items():
        result = results.get(name)
        if result is None or key not in result.figures:
            continue
        value = float(result.figures[key])
        r = ratio(name, key, value, raw)
        out.append(
            {
                "scenario": name,
                "figure": key,
                "value": value,
                "x_raw": r,
                "target": what,
                "met": check(value, r),
            }
        )
    return out


def write_json(
    path: Path, results: dict[str, Result], errors: dict[str, str], opts: Options
) -> None:
    doc = {
        "meta": {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "options": asdict(opts),
            "raw_requests_per_s": raw_rate(results),
        },
        "targets": targets_summary(results),
        "results": {name: asdict(r) for name, r in results.items()},
        "errors": errors,
    }
    RESULTS.mkdir(exist_ok=True)
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2, default=str))


# -- charts ------------------------------------------------------------------------------------

LABELS = {
    "per_s": "requests/s",
    "p50_ms": "latency (ms)",
    "p99_ms": "latency (ms)",
    "rss_mb": "RSS (MiB)",
    "deliveries_per_s": "deliveries/s",
    "peak_rss_mb": "peak RSS (MiB)",
}


def plot(name: str, result: Result, stem: str) -> Path | None:
    """One PNG per scenario: throughput, latency and memory over time (or against size)."""
    if not result.series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: list[tuple[str, dict[str, list[float]], list[str], str]] = []
    for sname, s in result.series.items():
        if "t" in s:
            prefix = "" if sname in ("throughput", "latency", "memory") else f"{sname}: "
            if "per_s" in s:
                panels.append((f"{prefix}requests received per second", s, ["per_s"], "t"))
                panels.append(
                    (f"{prefix}producer-to-receiver latency", s, ["p50_ms", "p99_ms"], "t")
                )
            if "rss_mb" in s:
                panels.append((f"{prefix}process memory (RSS)", s, ["rss_mb"], "t"))
        else:
            x = next(iter(s))
            for key in s:
                if key != x:
                    panels.append((f"{sname}: {key}", s, [key], x))
    if not panels:
        return None
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 2.6 * len(panels)), squeeze=False)
    for ax, (title, s, keys, x) in zip(axes[:, 0], panels, strict=True):
        for key in keys:
            ax.plot(s[x], s[key], label=key, marker="o" if x != "t" else None, linewidth=1.2)
        ax.set_title(f"{name} — {title}", fontsize=10)
        ax.set_xlabel("seconds since start" if x == "t" else x)
        ax.set_ylabel(LABELS.get(keys[0], keys[0]))
        if x == "webhooks":
            ax.set_xscale("log")
        if len(keys) > 1:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = RESULTS / f"{stem}-{name}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
