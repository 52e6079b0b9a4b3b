"""ingest: ``POST /v1/events`` one event at a time at increasing concurrency, and batches of 100.

No webhook is registered, so this is ingestion alone: validation, the group-committed insert
and the 202. Each request's round trip is timed too (p50/p99 at each concurrency), and CPU
per event by process at 64 in flight and for the batches.
"""

from __future__ import annotations

import time

from benchmarks.measure import Progress, bodies, pct, run_concurrent
from benchmarks.scenarios.base import PAYLOAD_BYTES, Context, Result

CONCURRENCIES = (1, 16, 64, 256)
BATCH = 100
BATCH_CONCURRENCY = 4


async def run(ctx: Context) -> Result:
    env = ctx.env
    await env.reset()
    make = bodies(PAYLOAD_BYTES, "bench.ingest")
    figures: dict[str, float] = {}
    best = 0.0
    for conc in CONCURRENCIES:
        n = ctx.opts.pick(500, 1000) if conc == 1 else ctx.opts.pick(2000, 6000)
        took: list[float] = []

        async def one(_: int, took: list[float] = took) -> None:
            t0 = time.perf_counter()
            await env.publish(make())
            took.append(time.perf_counter() - t0)

        await run_concurrent(min(n, 2 * conc), conc, one)  # warm-up: connections, caches
        took.clear()
        cpu = env.cpu()
        secs = await run_concurrent(n, conc, one, Progress(f"ingest c={conc}", n, "events"))
        cpu.stop()
        rate = n / secs
        best = max(best, rate)
        figures[f"single_c{conc}_events_per_s"] = rate
        figures[f"single_c{conc}_p50_ms"] = pct(took, 0.5) * 1000
        figures[f"single_c{conc}_p99_ms"] = pct(took, 0.99) * 1000
        if conc == 64:
            per = cpu.per(n, "event")
            figures.update({f"single_c64_{k}": v for k, v in per.items()})
    figures["single_best_events_per_s"] = best
    batches = ctx.opts.pick(50, 200)

    async def batch(_: int) -> None:
        await env.publish_batch([make() for _ in range(BATCH)])

    cpu = env.cpu()
    secs = await run_concurrent(
        batches, BATCH_CONCURRENCY, batch, Progress("ingest batch100", batches, "batches")
    )
    cpu.stop()
    figures["batch100_events_per_s"] = batches * BATCH / secs
    figures.update({f"batch100_{k}": v for k, v in cpu.per(batches * BATCH, "event").items()})
    stored = await env.db.fetchval("SELECT count(*) FROM events")
    result = Result(figures)
    result.notes.append(f"{stored} events stored, no webhooks registered (0 deliveries)")
    return result
