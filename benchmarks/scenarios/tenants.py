"""tenants: 100,000 tenants holding 2 webhooks each, against the same load without tenants.

Both halves run the same work: single events at concurrency 64, then events in batches of 100
(4 requests at a time), each event fanning out to 2 webhooks, until every delivery is
``success``. Without tenants the events go to 2 operator webhooks; with tenants to one
tenant's 2 webhooks while the other 99,999 tenants' are registered too (the targets compare
these two), and then each to a tenant drawn at random (``spread_*``: nearly every delivery to
a webhook of its own, the registry's cache cold for most). The tenants, their webhooks and
secrets are made in SQL with generate_series, then a fresh Dispatcher loads them; the
registry's memory per webhook is measured with tracemalloc (a Registry loaded here) and as
the Dispatcher's RSS growth.
"""

from __future__ import annotations

import random
import time

from benchmarks.measure import Progress, bodies, run_concurrent
from benchmarks.scenarios.base import PAYLOAD_BYTES, Context, Result

TENANTS = 100_000
PER_TENANT = 2
SINGLE_CONCURRENCY = 64
BATCH = 100
BATCH_CONCURRENCY = 4
TYPE = "bench.tenants"

# Every tenant and its webhooks in three statements (seconds, not the API's minutes).
MAKE_TENANTS = """
INSERT INTO tenants (id, name) SELECT 'bt-' || i, 'Bench tenant ' || i
FROM generate_series(1, $1) AS i
"""
MAKE_WEBHOOKS = """
INSERT INTO webhooks (id, name, url, event_types, tenant_id)
SELECT 'wh_bt_' || i || '_' || j, 'bench', $2 || '/hook/t' || i || '-' || j,
       ARRAY[$3::text], 'bt-' || i
FROM generate_series(1, $1) AS i, generate_series(1, $4) AS j
"""
MAKE_SECRETS = """
INSERT INTO webhook_secrets (webhook_id, secret)
SELECT id, 'whsec_' || md5(id) FROM webhooks WHERE tenant_id LIKE 'bt-%'
"""


def rss_mib(pid: int) -> float:
    import psutil

    return float(psutil.Process(pid).memory_info().rss) / 2**20


async def traced_per_webhook(ctx: Context, webhooks: int) -> float:
    """The registry's own memory per webhook, by tracemalloc: a Registry loaded here, in this
    process, from the same database (what stays allocated once the rows read are freed)."""
    import gc
    import tracemalloc

    import asyncpg

    from dispatcher.db import init_connection
    from dispatcher.registry import Registry

    conn = await asyncpg.connect(ctx.env.dsn)
    try:
        await init_connection(conn)  # the JSON codecs the Dispatcher's pool has
        registry = Registry()
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        await registry.load(conn)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
    finally:
        await conn.close()
    assert len(registry.webhooks) >= webhooks
    return (after - before) / webhooks


async def _load(ctx: Context, events: int, tenant_of: list[str | None]) -> dict[str, float]:
    """Single events at c=64, then batches; each event for ``tenant_of[i % len]``."""
    env = ctx.env
    make = bodies(PAYLOAD_BYTES, TYPE)
    draw = iter(range(10**9))

    def body() -> dict[str, object]:
        event = make()
        tenant = tenant_of[next(draw) % len(tenant_of)]
        if tenant is not None:
            event["tenant_id"] = tenant
        return event

    async def one(_: int) -> None:
        await env.publish(body())

    singles = ctx.opts.pick(2000, 6000)
    await run_concurrent(2 * SINGLE_CONCURRENCY, SINGLE_CONCURRENCY, one)  # warm-up
    await env.quiesce()
    secs = await run_concurrent(
        singles, SINGLE_CONCURRENCY, one, Progress("single", singles, "events")
    )
    single_rate = singles / secs
    await env.quiesce()
    done_before = await env.db.fetchval("SELECT count(*) FROM deliveries WHERE status = 'success'")

    async def batch(_: int) -> None:
        await env.publish_batch([body() for _ in range(BATCH)])

    total = events * PER_TENANT
    cpu = env.cpu()
    t0 = time.perf_counter()
    await run_concurrent(events // BATCH, BATCH_CONCURRENCY, batch)
    await env.wait_recorded(done_before + total, 300, "deliveries")
    took = time.perf_counter() - t0
    cpu.stop()
    return {
        "single_c64_events_per_s": single_rate,
        "deliveries_per_s": total / took,
        **cpu.per(total),
    }


async def run(ctx: Context) -> Result:
    env = ctx.env
    await env.reset()
    await env.db.execute("TRUNCATE tenant_tokens, portal_links, tenants CASCADE")
    events = int(ctx.opts.pick(2000, 10000))
    figures: dict[str, float] = {}

    # Without tenants: 2 operator webhooks.
    await env.restart_dispatcher()
    await env.create_webhooks(["op0", "op1"], TYPE)
    base = await _load(ctx, events, [None])
    figures.update({f"none_{k}": v for k, v in base.items()})

    # With tenants: a fresh process before and after the load, so the difference is the
    # registry's (and the tenant id set's) memory.
    await env.reset()
    await env.restart_dispatcher()
    rss_empty = rss_mib(env.dispatcher.pid)
    t0 = time.perf_counter()
    await env.db.execute(MAKE_TENANTS, TENANTS)
    await env.db.execute(MAKE_WEBHOOKS, TENANTS, env.receiver.url, TYPE, PER_TENANT)
    await env.db.execute(MAKE_SECRETS)
    await env.db.execute("VACUUM ANALYZE")
    figures["build_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    await env.restart_dispatcher()
    figures["dispatcher_start_s"] = time.perf_counter() - t0
    webhooks = TENANTS * PER_TENANT
    rss_loaded = rss_mib(env.dispatcher.pid)
    figures["registry_rss_bytes_per_webhook"] = (rss_loaded - rss_empty) * 2**20 / webhooks
    figures["registry_bytes_per_webhook"] = await traced_per_webhook(ctx, webhooks)
    # The same shape as without tenants (one tenant's 2 webhooks get every event) with the
    # other 99,999 tenants' webhooks registered: what tenancy itself costs.
    loaded = await _load(ctx, events, [f"bt-{TENANTS // 2}"])
    figures.update({f"tenants_{k}": v for k, v in loaded.items()})
    figures["single_ratio"] = loaded["single_c64_events_per_s"] / base["single_c64_events_per_s"]
    figures["e2e_ratio"] = loaded["deliveries_per_s"] / base["deliveries_per_s"]
    # Events spread over tenants drawn at random: nearly every delivery is to a webhook of
    # its own (a lane and connections of its own), the registry's cache cold for each.
    rng = random.Random(15)
    spread: list[str | None] = [f"bt-{rng.randint(1, TENANTS)}" for _ in range(50_000)]
    scattered = await _load(ctx, events, spread)
    figures.update({f"spread_{k}": v for k, v in scattered.items()})

    # Leave nothing behind for the next scenario (deleting 200,000 webhooks one by one
    # through the API would take minutes): empty the tables, then a fresh process.
    await env.db.execute(
        "TRUNCATE attempts, deliveries, events, webhook_secrets, webhooks, tenant_tokens,"
        " portal_links, tenants"
    )
    await env.restart_dispatcher()
    await env.receiver.reset()
    result = Result(figures)
    result.notes.append(
        f"{TENANTS:,} tenants x {PER_TENANT} webhooks; {events:,} events per half, each to 2"
        " webhooks; memory: RSS of a fresh process after loading minus before, per webhook"
    )
    return result
