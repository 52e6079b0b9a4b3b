"""growth-history: e2e with millions of finished deliveries already in the tables.

First the e2e load (10 webhooks, events in batches of 100) on empty tables. Then N finished
deliveries (10 million; 200,000 with ``--quick``) with their events (one per 10 deliveries,
for the same 10 webhooks) and one successful attempt each are made in SQL with
generate_series: realistic widths (ULID-length ids, a 256-byte ``data``, the webhook's URL in
each attempt), timestamps rising from 31 days ago to an hour ago, so a day of them is older
than the default retention (30 days). After VACUUM ANALYZE (what autovacuum would have done
by then), the same e2e load again: throughput and latency p99 against the empty tables'
(target: within 10%). The empty tables' figures for that comparison are measured after the
build too, in an empty database on the same server, alternating with the history's (two
rounds each; one with ``--quick``). Compared with a run from before the build, the ratio
followed the machine's state, not the tables': in nine runs the receiver's CPU per delivery,
which no history can touch, moved by -14% to +63% between the two, and the runs where it rose
most were those the ratio fell in. The run before the build is kept as ``before_build_*``.

Then single events are published at 64 in flight (to a type no webhook takes) while
``dispatcher.retention.prune`` removes that day, and the ingestion rate during the prune is
compared with the rate just before and just after it (target: at most 10% slower). The
tables are emptied at the end.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import asyncpg

from benchmarks.measure import Progress, bodies
from benchmarks.scenarios import e2e
from benchmarks.scenarios.base import PAYLOAD_BYTES, Context, Result

RETENTION_DAYS = 30.0  # DISPATCHER_RETENTION_DAYS' default
CHUNK_EVENTS = 100_000  # events per build statement (a million deliveries)


def _ulid_time(ms: str) -> str:
    """SQL for the 10-character time part of a ULID (Crockford base32) of the bigint ``ms``.

    History ids carry their row's time as real ids do: retention narrows its scan by that
    prefix (``ids.time_bound``), so ids that did not would make it read the whole history.
    """
    digits = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    return " || ".join(
        f"substr('{digits}', (({ms} >> {5 * (9 - k)}) & 31)::int + 1, 1)" for k in range(10)
    )


# Event i's time, and the time part of its ids (the events', its deliveries').
_AT = f"""LATERAL (SELECT now() - interval '1 hour'
                     - make_interval(secs => $4 * (1 - i::float8 / $3))) AS ts(t),
     LATERAL (SELECT {_ulid_time("(extract(epoch FROM t) * 1000)::bigint")}) AS u(p)"""

# $1, $2: the first and last event number; $3: the total; $4: the span in seconds. Event i
# is at now() - 1 hour - span * (1 - i / total): rising with i, as ULIDs do.
MAKE_EVENTS = (
    """
INSERT INTO events (id, type, data, occurred_at, created_at)
SELECT 'evt_' || p || lpad(i::text, 16, '0'), 'bench.e2e',
       ('{"sent_at": 0, "order": ' || i || ', "pad": "' || repeat('x', 220) || '"}')::json, t, t
FROM generate_series($1::bigint, $2::bigint) AS i,
     """
    + _AT
)
# $5: the webhooks' ids (one delivery per event and webhook).
MAKE_DELIVERIES = (
    """
INSERT INTO deliveries (id, event_id, webhook_id, event_type, status, attempt_count,
                        created_at, updated_at, last_attempt_at, last_status_code)
SELECT 'dlv_' || p || lpad((i * 100 + k)::text, 16, '0'), 'evt_' || p || lpad(i::text, 16, '0'),
       ($5::text[])[k], 'bench.e2e', 'success', 1,
       t, t + interval '40 ms', t + interval '10 ms', 200
FROM generate_series($1::bigint, $2::bigint) AS i,
     """
    + _AT
    + """,
     generate_series(1, cardinality($5::text[])) AS k
"""
)
# $6: the webhooks' URLs, as the attempts record them.
MAKE_ATTEMPTS = (
    """
INSERT INTO attempts (delivery_id, number, webhook_id, started_at, duration_ms, status_code,
                      response_body, url)
SELECT 'dlv_' || p || lpad((i * 100 + k)::text, 16, '0'), 1, ($5::text[])[k],
       t + interval '10 ms', 2.5 + (i % 17), 200, 'ok', ($6::text[])[k]
FROM generate_series($1::bigint, $2::bigint) AS i,
     """
    + _AT
    + """,
     generate_series(1, cardinality($5::text[])) AS k
"""
)


async def _empty_history(ctx: Context) -> None:
    db = ctx.env.db
    await db.execute("TRUNCATE attempts, deliveries, events")
    await db.execute("VACUUM ANALYZE")
    await db.execute("CHECKPOINT")


async def build(ctx: Context, deliveries: int, hooks: list[tuple[str, str]]) -> dict[str, float]:
    """Make the history; the seconds and gigabytes it took."""
    db = ctx.env.db
    events = deliveries // len(hooks)
    span = (RETENTION_DAYS + 1) * 86400 - 3600
    ids = [h[0] for h in hooks]
    urls = [h[1] for h in hooks]
    size0 = await db.fetchval("SELECT pg_database_size(current_database())")
    progress = Progress("history build", events, "events")
    t0 = time.perf_counter()
    for lo in range(1, events + 1, CHUNK_EVENTS):
        hi = min(events, lo + CHUNK_EVENTS - 1)
        async with db.transaction():
            await db.execute(MAKE_EVENTS, lo, hi, events, span)
            await db.execute(MAKE_DELIVERIES, lo, hi, events, span, ids)
            await db.execute(MAKE_ATTEMPTS, lo, hi, events, span, ids, urls)
        progress.update(hi, force=True)
    t_insert = time.perf_counter() - t0
    await db.execute("VACUUM ANALYZE events, deliveries, attempts")
    await db.execute("CHECKPOINT")
    size1 = await db.fetchval("SELECT pg_database_size(current_database())")
    return {
        "history_deliveries": float(events * len(hooks)),
        "build_insert_s": t_insert,
        "build_s": time.perf_counter() - t0,
        "build_disk_gb": (size1 - size0) / 1e9,
    }


async def prune_while_ingesting(ctx: Context) -> dict[str, float]:
    """Single events at 64 in flight before, during and after pruning a day of history."""
    from dispatcher import retention

    env = ctx.env
    window = float(ctx.opts.pick(3, 8))
    make = bodies(PAYLOAD_BYTES, "bench.history.ingest")  # no webhook takes this type
    done: list[float] = []
    stop = asyncio.Event()

    async def producer() -> None:
        while not stop.is_set():
            await env.publish(make())
            done.append(time.perf_counter())

    tasks = [asyncio.create_task(producer()) for _ in range(64)]
    pool = await asyncpg.create_pool(env.dsn, min_size=1, max_size=1)
    try:
        await asyncio.sleep(1.0)  # warm-up
        t_before = time.perf_counter()
        await asyncio.sleep(window)
        t_start = time.perf_counter()
        removed = await retention.prune(pool, RETENTION_DAYS)
        t_end = time.perf_counter()
        await asyncio.sleep(window)
        t_after = time.perf_counter()
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await pool.close()

    def rate(a: float, b: float) -> float:
        return sum(1 for t in done if a <= t < b) / (b - a) if b > a else float("nan")

    before, during, after = rate(t_before, t_start), rate(t_start, t_end), rate(t_end, t_after)
    return {
        "prune_s": t_end - t_start,
        "pruned_deliveries": float(removed["deliveries"]),
        "pruned_events": float(removed["events"]),
        "ingest_before_events_per_s": before,
        "ingest_during_prune_events_per_s": during,
        "ingest_after_events_per_s": after,
        "prune_ingest_ratio": during / ((before + after) / 2),
    }


async def run(ctx: Context) -> Result:
    env = ctx.env
    await env.reset()
    ids = await env.create_webhooks([f"e2e{i}" for i in range(e2e.WEBHOOKS)], "bench.e2e")
    hooks = [(wid, f"{env.receiver.url}/hook/e2e{i}") for i, wid in enumerate(ids)]
    events = e2e.event_count(ctx)
    figures: dict[str, float] = {}
    keep = (
        "deliveries_per_s",
        "p50_ms",
        "p99_ms",
        "dispatcher_cpu_us_per_delivery",
        "postgres_cpu_us_per_delivery",
        "receiver_cpu_us_per_delivery",
    )
    try:
        before, _ = await e2e.load(ctx, events, label="history: empty")
        figures.update({f"before_build_{k}": before[k] for k in keep})
        await _empty_history(ctx)
        figures.update(await build(ctx, int(ctx.opts.pick(200_000, 10_000_000)), hooks))
        fulls: list[dict[str, Any]] = []
        empties: list[dict[str, Any]] = []
        series: dict[str, dict[str, list[float]]] = {}
        for _ in range(int(ctx.opts.pick(1, 2))):
            # Only this round's deliveries count: the history's and earlier rounds' sort first.
            after_id = await env.db.fetchval("SELECT max(id) FROM deliveries") or ""
            await env.restart_dispatcher()
            full, series = await e2e.load(ctx, events, after_id, label="history: full")
            if full["attempts_recorded"] != full["deliveries"]:
                raise RuntimeError(f"{full['attempts_recorded']} attempts for {full['deliveries']}")
            fulls.append(full)
            async with env.on_database("dispatcher_bench_empty"):
                await env.create_webhooks([f"e2e{i}" for i in range(e2e.WEBHOOKS)], "bench.e2e")
                empty, _ = await e2e.load(ctx, events, label="history: empty, after the build")
                empties.append(empty)
        for k in keep:
            figures[f"empty_{k}"] = statistics.mean(e[k] for e in empties)
            figures[f"history_{k}"] = statistics.mean(f[k] for f in fulls)
        figures["throughput_ratio"] = (
            figures["history_deliveries_per_s"] / figures["empty_deliveries_per_s"]
        )
        figures["p99_ratio"] = figures["history_p99_ms"] / figures["empty_p99_ms"]
        figures.update(await prune_while_ingesting(ctx))
    finally:
        await _empty_history(ctx)  # gigabytes: not left for the next scenario
    result = Result(figures, series)
    result.notes.append(
        f"{figures['history_deliveries']:,.0f} finished deliveries of history built in "
        f"{figures['build_s']:.0f} s ({figures['build_disk_gb']:.2f} GB); e2e of "
        f"{events * e2e.WEBHOOKS:,} deliveries before and after; a day pruned in "
        f"{figures['prune_s']:.1f} s"
    )
    if figures["prune_s"] < 2:
        result.notes.append("the prune took under 2 s: its ingestion window is short, noisy")
    return result
