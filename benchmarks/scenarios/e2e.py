"""e2e: events fanning out to 10 webhooks, from ingestion to every delivery recorded.

Events are published over HTTP in batches of 100 (4 requests at a time); the figure is
deliveries per second from the first request until every delivery is ``success`` in the
database (and, separately, until the receiver had them all). Every attempt is recorded
(``attempts`` rows are counted at the end). CPU per delivery by process (the Dispatcher, the
Postgres server, the receiver) gives the capacity per core; two floors measured right after,
in the same run, bound them: the bare aiohttp client's CPU per request at the e2e's number
of deliveries in flight, and Postgres's CPU per row of a plain batched insert.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from typing import Any

from benchmarks import floors
from benchmarks.measure import Progress, RssSampler, bodies, latency_summary, run_concurrent
from benchmarks.measure import timeline as make_timeline
from benchmarks.scenarios.base import PAYLOAD_BYTES, Context, Result

WEBHOOKS = 10
BATCH = 100
CONCURRENCY = 4


def event_count(ctx: Context) -> int:
    return int(ctx.opts.pick(1000, 6000))


async def load(
    ctx: Context, events: int, after_id: str = "", label: str = "e2e"
) -> tuple[dict[str, Any], dict[str, dict[str, list[float]]]]:
    """Publish ``events`` to the registered ``bench.e2e`` webhooks and wait for every delivery
    to be recorded; the figures and the time series. Deliveries with ids up to ``after_id``
    (history already in the tables) are not counted."""
    env = ctx.env
    total = events * WEBHOOKS
    make = bodies(PAYLOAD_BYTES, "bench.e2e")
    in_flight: list[float] = []

    async def batch(_: int) -> None:
        await env.publish_batch([make() for _ in range(BATCH)])

    async def sample_in_flight() -> None:
        while True:
            await asyncio.sleep(0.5)
            in_flight.append(await env.gauge("dispatcher_in_flight_deliveries"))

    await env.receiver.reset()
    cpu = env.cpu()
    start = time.time()
    t0 = time.perf_counter()
    sampler = asyncio.create_task(sample_in_flight())
    try:
        async with RssSampler(env.dispatcher.pid).running() as rss:
            n = events // BATCH
            await run_concurrent(n, CONCURRENCY, batch, Progress(f"{label} ingest", n, "batches"))
            t_ingested = time.perf_counter()
            t_received = await env.wait_received(total, 300, label)
            t_recorded = await env.wait_recorded(total, 300, label, after_id)
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    cpu.stop()
    stats = await env.receiver.stats()
    busy = [x for x in in_flight if x > 0]
    figures: dict[str, Any] = {
        "deliveries_per_s": total / (t_recorded - t0),
        "received_per_s": total / (t_received - t0),
        "deliveries": total,
        "attempts_recorded": await env.attempts_recorded(after_id),
        "ingest_s": t_ingested - t0,
        "all_recorded_s": t_recorded - t0,
        **latency_summary(stats["latencies"]),
        **cpu.per(total, pct=True),
        "dispatcher_peak_rss_mb": rss.peak_mb,
        "median_in_flight": statistics.median(busy) if busy else float("nan"),
    }
    series = {
        "throughput": make_timeline(stats["arrivals"], stats["latencies"], start),
        "memory": rss.series(),
    }
    return figures, series


async def run(ctx: Context) -> Result:
    env = ctx.env
    await env.reset()
    await env.create_webhooks([f"e2e{i}" for i in range(WEBHOOKS)], "bench.e2e")
    figures, series = await load(ctx, event_count(ctx))
    # The floors, right after and on the same machine state.
    in_flight = figures["median_in_flight"]
    conc = max(1, round(in_flight)) if in_flight == in_flight else 64
    client = await floors.client_cpu_us_per_request(env, conc, int(ctx.opts.pick(5000, 20000)))
    insert = await floors.postgres_cpu_us_per_row(env, int(ctx.opts.pick(50_000, 200_000)))
    figures.update(
        {
            "floor_client_in_flight": conc,
            "floor_client_cpu_us_per_request": client,
            "floor_postgres_cpu_us_per_row": insert,
            "dispatcher_vs_client_floor": figures["dispatcher_cpu_us_per_delivery"] / client,
            "postgres_vs_insert_floor": figures["postgres_cpu_us_per_delivery"] / insert,
        }
    )
    return Result(figures, series)
