"""e2e: events fanning out to 10 webhooks, from ingestion to every delivery recorded.

Events are published over HTTP in batches of 100 (4 requests at a time); the figure is
deliveries per second from the first request until every delivery is ``success`` in the
database (and, separately, until the receiver had them all). Every attempt is recorded
(``attempts`` rows are counted at the end). The Dispatcher's CPU and, with the embedded
Postgres, the server's (postmaster and backends) give the capacity per core.
"""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks.measure import (
    CpuMeter,
    Progress,
    RssSampler,
    TreeCpuMeter,
    bodies,
    latency_summary,
    run_concurrent,
    timeline,
)
from benchmarks.scenarios.base import PAYLOAD_BYTES, Context, Result

WEBHOOKS = 10
BATCH = 100
CONCURRENCY = 4


def postmaster_pid(workdir: Path) -> int | None:
    """The embedded Postgres server's pid (its postmaster.pid's first line), if there is one."""
    try:
        return int((workdir / "pg" / "pg" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None  # an external server (DISPATCHER_BENCH_DATABASE_URL): not measured


def event_count(ctx: Context) -> int:
    return int(ctx.opts.pick(1000, 6000))


async def run(ctx: Context) -> Result:
    env = ctx.env
    await env.reset()
    await env.create_webhooks([f"e2e{i}" for i in range(WEBHOOKS)], "bench.e2e")
    events = event_count(ctx)
    total = events * WEBHOOKS
    make = bodies(PAYLOAD_BYTES, "bench.e2e")

    async def batch(_: int) -> None:
        await env.publish_batch([make() for _ in range(BATCH)])

    cpu = CpuMeter([env.dispatcher.pid]).start()
    pg_pid = postmaster_pid(env.workdir)
    pg_cpu = TreeCpuMeter(pg_pid).start() if pg_pid is not None else None
    start = time.time()
    t0 = time.perf_counter()
    async with RssSampler(env.dispatcher.pid).running() as rss:
        await run_concurrent(
            events // BATCH, CONCURRENCY, batch, Progress("e2e ingest", events // BATCH, "batches")
        )
        t_ingested = time.perf_counter()
        t_received = await env.wait_received(total, 300, "e2e")
        t_recorded = await env.wait_recorded(total, 300, "e2e")
    cpu_s, cpu_pct = cpu.stop()
    pg_s, pg_pct = pg_cpu.stop() if pg_cpu is not None else (float("nan"), float("nan"))
    stats = await env.receiver.stats()
    figures = {
        "deliveries_per_s": total / (t_recorded - t0),
        "received_per_s": total / (t_received - t0),
        "deliveries": total,
        "attempts_recorded": await env.attempts_recorded(),
        "ingest_s": t_ingested - t0,
        "all_recorded_s": t_recorded - t0,
        **latency_summary(stats["latencies"]),
        "dispatcher_cpu_pct": cpu_pct,
        "dispatcher_cpu_ms_per_1k": 1e6 * cpu_s / total,
        "dispatcher_peak_rss_mb": rss.peak_mb,
        "postgres_cpu_pct": pg_pct,
        "postgres_cpu_ms_per_1k": 1e6 * pg_s / total,
    }
    return Result(
        figures,
        {
            "throughput": timeline(stats["arrivals"], stats["latencies"], start),
            "memory": rss.series(),
        },
    )
