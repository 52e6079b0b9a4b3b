"""latency: a steady stream of single events; producer-to-receiver latency percentiles.

``latency``: ``--rate`` events/s (500) x 2 webhooks for ``--seconds`` (30), each event its
own ``POST /v1/events``. ``latency200``: a lighter variant, 200 events/s x 1 webhook for the
same time. Latency runs from the producer stamping ``data.sent_at`` (just before the POST)
to the receiver reading the request, so it includes ingestion, the commit, the hand-over to
the engine, signing and the HTTP delivery.
"""

from __future__ import annotations

import time

from benchmarks.measure import bodies, latency_summary, paced, timeline
from benchmarks.scenarios.base import PAYLOAD_BYTES, Context, Result


async def steady(ctx: Context, label: str, rate: float, webhooks: int) -> Result:
    env = ctx.env
    seconds = ctx.opts.pick(min(5.0, ctx.opts.seconds), ctx.opts.seconds)
    await env.reset()
    # A fresh process: an earlier scenario's idle keep-alive connections (thousands after
    # concurrency) expiring mid-run, or its garbage, must not land in these percentiles.
    await env.restart_dispatcher()
    event_type = f"bench.{label}"
    await env.create_webhooks([f"{label}{i}" for i in range(webhooks)], event_type)
    make = bodies(PAYLOAD_BYTES, event_type)

    async def send() -> None:
        await env.publish(make())

    start = time.time()
    sent, took = await paced(rate, seconds, send, label)
    await env.wait_received(sent * webhooks, 120, label)
    stats = await env.receiver.stats()
    figures = {
        "target_rate_per_s": rate,
        "achieved_rate_per_s": sent / took,
        "webhooks": webhooks,
        "seconds": seconds,
        "events": sent,
        "deliveries": sent * webhooks,
        **latency_summary(stats["latencies"]),
    }
    result = Result(figures, {"latency": timeline(stats["arrivals"], stats["latencies"], start)})
    if sent / took < 0.95 * rate:
        result.notes.append(
            f"the producer reached {sent / took:.0f} of {rate:.0f} events/s:"
            " the service fell behind"
        )
    return result


async def run(ctx: Context) -> Result:
    return await steady(ctx, "latency", ctx.opts.rate, 2)


async def run200(ctx: Context) -> Result:
    return await steady(ctx, "latency200", 200.0, 1)
