"""Floors measured in the same run as the figures they bound.

- The bare aiohttp client's CPU per request: this process posting the envelope a receiver
  gets from Dispatcher to the same receiver, at a given number of requests in flight (the
  e2e's). Dispatcher cannot send a delivery for less than this with the same HTTP client.
- Postgres's CPU per row for a plain batched insert of a delivery-sized row: ``unnest`` of 10
  arrays like a ``deliveries`` row's columns into a scratch table with only a primary key,
  1,000 rows a statement. Writing a delivery (and its outcome and attempt) cannot cost
  Postgres less than writing one such row.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psutil

from benchmarks.env import Env
from benchmarks.measure import CpuMeter, Progress, run_concurrent

SCRATCH = "bench_floor_rows"
BATCH = 1000


async def client_cpu_us_per_request(env: Env, concurrency: int, requests: int) -> float:
    """The bare aiohttp client's CPU (this process) per request at ``concurrency`` in flight."""
    from benchmarks.scenarios.raw import envelope

    body, headers = envelope()
    url = env.receiver.url + "/hook/floor"
    session = env.session

    async def post(_: int) -> None:
        async with session.post(url, data=body, headers=headers) as resp:
            await resp.read()

    await run_concurrent(2 * concurrency, concurrency, post)  # connections open
    cpu = CpuMeter([psutil.Process().pid]).start()
    await run_concurrent(requests, concurrency, post, Progress("floor: client", requests))
    cpu_s, _ = cpu.stop()
    await env.receiver.reset()
    return 1e6 * cpu_s / requests


async def postgres_cpu_us_per_row(env: Env, rows: int) -> float:
    """Postgres's CPU (the whole server) per row of a batched ``unnest`` insert."""
    db = env.db
    await db.execute(f"DROP TABLE IF EXISTS {SCRATCH}")
    await db.execute(
        f"CREATE TABLE {SCRATCH} (id text PRIMARY KEY, event_id text NOT NULL,"
        " webhook_id text NOT NULL, event_type text NOT NULL, status text NOT NULL,"
        " attempt_count integer NOT NULL, created_at timestamptz NOT NULL,"
        " updated_at timestamptz NOT NULL, due_at timestamptz, last_status_code integer)"
    )
    insert = (
        f"INSERT INTO {SCRATCH} SELECT * FROM unnest($1::text[], $2::text[], $3::text[],"
        " $4::text[], $5::text[], $6::int[], $7::timestamptz[], $8::timestamptz[],"
        " $9::timestamptz[], $10::int[])"
    )
    now = datetime.now(UTC)
    batches = []
    for b in range(rows // BATCH):
        # ULID-like ids (26 characters after the prefix), increasing like real ones.
        n = range(b * BATCH, (b + 1) * BATCH)
        batches.append(
            (
                [f"dlv_01FLOOR{i:019d}" for i in n],
                [f"evt_01FLOOR{i // 10:019d}" for i in n],
                [f"wh_01FLOORWEBHOOK{i % 10:013d}" for i in n],
                ["bench.e2e"] * BATCH,
                ["created"] * BATCH,
                [0] * BATCH,
                [now] * BATCH,
                [now] * BATCH,
                [now + timedelta(seconds=1)] * BATCH,
                [None] * BATCH,
            )
        )
    try:
        await db.execute(insert, *batches[0])  # the plan and the caches warm
        await db.execute(f"TRUNCATE {SCRATCH}")
        cpu = env.cpu(dispatcher=[], receiver=[])
        for batch in batches:
            await db.execute(insert, *batch)
        cpu.stop()
    finally:
        await db.execute(f"DROP TABLE IF EXISTS {SCRATCH}")
    return cpu.per(len(batches) * BATCH, "row")["postgres_cpu_us_per_row"]
