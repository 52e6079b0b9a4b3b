"""concurrency: 10,000 deliveries to a receiver that takes 2 s to answer each.

1,000 events x 10 webhooks whose URL carries ``?delay=2``; all events are published at once
(10 batches of 100, concurrently). The webhooks' ``max_in_flight`` is 1,000, above the
default per-webhook cap (DISPATCHER_MAX_IN_FLIGHT_PER_WEBHOOK, 100), so the process-wide
cap (DISPATCHER_MAX_IN_FLIGHT_PER_PROCESS, 7,000) is what binds: 7,000 go at once and the
other 3,000 reuse their connections as the first answers come back. Completion is when all
10,000 are ``success`` in the database; with every delivery in flight at once the floor
would be a little over 2 s, with the default cap a little over 4 s. The Dispatcher
process's resident memory is sampled every 100 ms (psutil) for the peak.

A bare aiohttp client first sends the same 10,000 slow requests to the
same receiver, all at once: its completion time is this machine's floor for the scenario
(opening 10,000 connections is not free), the ``raw`` of this scenario.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from benchmarks.measure import CpuMeter, RssSampler, bodies, rss_mb, timeline
from benchmarks.scenarios.base import PAYLOAD_BYTES, Context, Result
from benchmarks.scenarios.raw import envelope

WEBHOOKS = 10
EVENTS = 1000
DELAY_S = 2.0


async def bare_client(ctx: Context, total: int) -> float:
    """The same 10,000 slow requests from a bare aiohttp client: this machine's floor."""
    env = ctx.env
    body, headers = envelope()
    url = f"{env.receiver.url}/hook/bare?delay={DELAY_S:g}"

    async def post() -> None:
        async with session.post(url, data=body, headers=headers) as resp:
            await resp.read()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(post() for _ in range(total)))
        took = time.perf_counter() - t0
    await env.receiver.reset()
    return took


async def run(ctx: Context) -> Result:
    env = ctx.env
    await env.reset()
    await env.restart_dispatcher()  # its memory must not carry earlier scenarios'
    total = WEBHOOKS * EVENTS
    bare = await bare_client(ctx, total)
    await env.create_webhooks(
        [f"slow{i}" for i in range(WEBHOOKS)],
        "bench.concurrency",
        query=f"?delay={DELAY_S:g}",
        max_in_flight=EVENTS,
    )
    make = bodies(PAYLOAD_BYTES, "bench.concurrency")
    batches = [[make() for _ in range(100)] for _ in range(EVENTS // 100)]
    rss = RssSampler(env.dispatcher.pid)
    await asyncio.sleep(0.3)
    idle_rss = rss_mb(env.dispatcher.pid)
    dispatcher_cpu = CpuMeter([env.dispatcher.pid]).start()
    receiver_cpu = CpuMeter(env.receiver.pids).start()
    start = time.time()
    t0 = time.perf_counter()
    async with rss.running():
        for b in batches:  # restamp just before sending
            for e in b:
                e["data"]["sent_at"] = time.time()
        await asyncio.gather(*(env.publish_batch(b) for b in batches))
        t_ingested = time.perf_counter()
        t_received = await env.wait_received(total, 60, "concurrency")
        t_recorded = await env.wait_recorded(total, 60, "concurrency")
    _, d_pct = dispatcher_cpu.stop()
    _, r_pct = receiver_cpu.stop()
    counts = await env.receiver.counts()
    errors = await env.db.fetch(
        "SELECT coalesce(error, status_code::text) AS what, count(*) AS n FROM attempts"
        " WHERE status_code IS DISTINCT FROM 200 GROUP BY 1 ORDER BY 2 DESC LIMIT 3"
    )
    stats = await env.receiver.stats()
    figures = {
        "deliveries": total,
        "receiver_delay_s": DELAY_S,
        "completion_s": t_recorded - t0,
        "bare_client_completion_s": bare,
        "completion_vs_bare": (t_recorded - t0) / bare,
        "all_received_s": t_received - t0,
        "ingest_s": t_ingested - t0,
        "receiver_peak_concurrent": counts["peak_in_flight"],
        "attempts_recorded": await env.attempts_recorded(),
        "peak_rss_mb": rss.peak_mb,
        "idle_rss_mb": idle_rss,
        "dispatcher_cpu_pct": d_pct,
        "receiver_cpu_pct": r_pct,
    }
    result = Result(
        figures,
        {
            "arrivals": timeline(stats["arrivals"], stats["latencies"], start, step=0.1),
            "memory": rss.series(),
        },
    )
    result.notes.extend(f"{r['n']} attempts failed: {r['what'][:80]}" for r in errors)
    return result
