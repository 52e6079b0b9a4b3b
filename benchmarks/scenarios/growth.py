"""growth: throughput and memory as the number of webhooks and the payload size grow.

Webhooks: 1, 10, 100 and 1,000 webhooks subscribed to one type, and the same number of
deliveries in each step (events = deliveries / webhooks, published in batches of 100).
Payloads: 10 webhooks and events whose ``data`` is 1 KiB, 64 KiB and 512 KiB (just under
DISPATCHER_MAX_PAYLOAD_BYTES, 524,288 by default), fewer deliveries for the larger ones.
Each step reports deliveries/s until all are ``success`` in the database, and the Dispatcher
process's peak resident memory during the step (sampled every 100 ms), and CPU per delivery of
the Dispatcher, the Postgres server and the receiver.
"""

from __future__ import annotations

import time

from benchmarks.measure import RssSampler, bodies, latency_summary, rss_mb, run_concurrent
from benchmarks.scenarios.base import Context, Result

WEBHOOK_COUNTS = (1, 10, 100, 1000)
KIB = 1024
PAYLOADS = (("1k", KIB), ("64k", 64 * KIB), ("512k", 512 * KIB - 64))
BATCH_BYTES = 8 * 1024 * KIB
CPU = tuple(f"{g}_cpu_us_per_delivery" for g in ("dispatcher", "postgres", "receiver"))


async def step(ctx: Context, label: str, webhooks: int, events: int, size: int) -> dict[str, float]:
    env = ctx.env
    await env.reset()
    event_type = f"bench.growth.{label}"
    await env.create_webhooks([f"g{i}" for i in range(webhooks)], event_type)
    make = bodies(size, event_type)
    per_batch = max(1, min(100, BATCH_BYTES // size, events))
    batches = -(-events // per_batch)
    total = webhooks * per_batch * batches

    async def batch(_: int) -> None:
        await env.publish_batch([make() for _ in range(per_batch)])

    before = rss_mb(env.dispatcher.pid)
    cpu = env.cpu()
    t0 = time.perf_counter()
    async with RssSampler(env.dispatcher.pid).running() as rss:
        await run_concurrent(batches, 4, batch)
        t_done = await env.wait_recorded(total, 300, f"growth {label}")
    secs = t_done - t0
    cpu.stop()
    stats = await env.receiver.stats()
    return {
        "deliveries_per_s": total / secs,
        "mib_per_s": total * size / secs / 2**20,
        "deliveries": total,
        "peak_rss_mb": rss.peak_mb,
        "rss_added_mb": rss.peak_mb - before,
        **latency_summary(stats["latencies"]),
        **cpu.per(total),
    }


async def run(ctx: Context) -> Result:
    figures: dict[str, float] = {}
    await ctx.env.reset()
    await ctx.env.restart_dispatcher()  # memory figures start from a fresh process
    deliveries = ctx.opts.pick(2000, 10000)
    series: dict[str, list[float]] = {"webhooks": [], "deliveries_per_s": [], "peak_rss_mb": []}
    for n in WEBHOOK_COUNTS:
        out = await step(ctx, f"w{n}", n, max(1, deliveries // n), 1 * KIB)
        for key in ("deliveries_per_s", "peak_rss_mb", "rss_added_mb", "p99_ms", *CPU):
            figures[f"webhooks_{n}_{key}"] = out[key]
        series["webhooks"].append(n)
        series["deliveries_per_s"].append(out["deliveries_per_s"])
        series["peak_rss_mb"].append(out["peak_rss_mb"])
    by_size: dict[str, list[float]] = {"kib": [], "deliveries_per_s": [], "peak_rss_mb": []}
    for name, size in PAYLOADS:
        wanted = {
            "1k": deliveries,
            "64k": ctx.opts.pick(500, 2000),
            "512k": ctx.opts.pick(200, 500),
        }
        out = await step(ctx, f"p{name}", 10, max(1, wanted[name] // 10), size)
        for key in ("deliveries_per_s", "mib_per_s", "peak_rss_mb", "rss_added_mb", *CPU):
            figures[f"payload_{name}_{key}"] = out[key]
        by_size["kib"].append(size / KIB)
        by_size["deliveries_per_s"].append(out["deliveries_per_s"])
        by_size["peak_rss_mb"].append(out["peak_rss_mb"])
    return Result(figures, {"by_webhooks": series, "by_payload": by_size})
