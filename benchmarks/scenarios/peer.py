"""peer: the PgQueuer-based dispatcher (benchmarks/peers/) on the same receiver and Postgres.

The same shape as ``e2e`` (10 webhooks, the same number of events of the same size, batches
of 100 events, 4 at a time), but the producer enqueues one job per (event, webhook) straight
into PostgreSQL (no HTTP ingestion) and a PgQueuer worker process delivers them. The figure
is deliveries/s until the receiver has them all and the queue is empty (every job's outcome
logged), next to ours from ``e2e`` in the same run (run here if ``e2e`` was not).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time

import asyncpg

from benchmarks.measure import (
    Progress,
    RssSampler,
    bodies,
    latency_summary,
    run_concurrent,
    timeline,
)
from benchmarks.peers import pgqueuer_dispatcher as peer
from benchmarks.scenarios import e2e
from benchmarks.scenarios.base import PAYLOAD_BYTES, Context, Result
from dispatcher import ids, signing

WEBHOOKS = e2e.WEBHOOKS
BATCH = e2e.BATCH
CONCURRENCY = e2e.CONCURRENCY


async def run(ctx: Context) -> Result:
    env = ctx.env
    if "e2e" not in ctx.results:
        print("  peer: running e2e first, for our figure", file=sys.stderr, flush=True)
        ctx.results["e2e"] = await e2e.run(ctx)
    ours_figures = ctx.results["e2e"].figures
    ours = ours_figures["deliveries_per_s"]
    await env.reset()
    await peer.install(env.db)
    await env.db.execute(f"TRUNCATE {peer.WEBHOOK_TABLE}, pgqueuer, pgqueuer_log")
    await peer.register(
        env.db,
        [
            (
                f"wh_peer{i}",
                f"{env.receiver.url}/hook/peer{i}",
                signing.generate_secret(),
                ["bench.peer"],
            )
            for i in range(WEBHOOKS)
        ],
    )
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.peers.pgqueuer_dispatcher",
        "--dsn",
        env.dsn,
        stdout=asyncio.subprocess.PIPE,
    )
    pool = await asyncpg.create_pool(env.dsn, min_size=1, max_size=CONCURRENCY + 1)
    try:
        assert worker.stdout is not None
        line = await asyncio.wait_for(worker.stdout.readline(), 30)
        if line.strip() != b"ready":
            raise RuntimeError(f"peer worker did not start: {line!r}")
        await asyncio.sleep(0.5)  # let it reach its first dequeue
        producer = peer.Producer(pool, await peer.load_hooks(pool))
        events = e2e.event_count(ctx)
        total = events * WEBHOOKS
        make = bodies(PAYLOAD_BYTES, "bench.peer")

        async def batch(_: int) -> None:
            evs = []
            for _ in range(BATCH):
                e = make()
                e["id"] = ids.event_id()
                evs.append(e)
            await producer.publish(evs)

        await env.receiver.reset()
        cpu = env.cpu(dispatcher=[], worker=[worker.pid])
        start = time.time()
        t0 = time.perf_counter()
        async with RssSampler(worker.pid).running() as rss:
            n = events // BATCH
            await run_concurrent(n, CONCURRENCY, batch, Progress("peer enqueue", n, "batches"))
            t_enqueued = time.perf_counter()
            t_received = await env.wait_received(total, 300, "peer")
            t_done = await wait_queue_empty(env.db, 300)
        cpu.stop()
        logged = await env.db.fetchval(
            "SELECT count(*) FROM pgqueuer_log WHERE status = 'successful'"
        )
        stats = await env.receiver.stats()
    finally:
        if worker.returncode is None:
            worker.terminate()
            try:
                await asyncio.wait_for(worker.wait(), 20)
            except TimeoutError:
                worker.kill()
                await worker.wait()
        await pool.close()
        with contextlib.suppress(asyncpg.PostgresError):
            await peer.uninstall(env.db)
    theirs = total / (t_done - t0)
    figures = {
        "deliveries_per_s": theirs,
        "received_per_s": total / (t_received - t0),
        "deliveries": total,
        "jobs_logged_successful": logged,
        "enqueue_s": t_enqueued - t0,
        **latency_summary(stats["latencies"]),
        **cpu.per(total, pct=True),
        "worker_peak_rss_mb": rss.peak_mb,
        "ours_e2e_deliveries_per_s": ours,
        "ours_vs_peer": ours / theirs,
    }
    for group, peer_group in (("postgres", "postgres"), ("dispatcher", "worker")):
        mine = ours_figures.get(f"{group}_cpu_us_per_delivery", float("nan"))
        figures[f"ours_{group}_cpu_us_per_delivery"] = mine
        figures[f"ours_{group}_vs_peer_{peer_group}"] = (
            mine / figures[f"{peer_group}_cpu_us_per_delivery"]
        )
    return Result(figures, {"throughput": timeline(stats["arrivals"], stats["latencies"], start)})


async def wait_queue_empty(db: asyncpg.Connection, timeout: float) -> float:
    """Wait until no job is left in PgQueuer's queue table (all done and logged)."""
    deadline = time.perf_counter() + timeout
    left = -1
    while time.perf_counter() < deadline:
        left = await db.fetchval("SELECT count(*) FROM pgqueuer")
        if left == 0:
            return time.perf_counter()
        await asyncio.sleep(0.05)
    raise RuntimeError(f"peer: {left} jobs still queued after {timeout:.0f} s")
