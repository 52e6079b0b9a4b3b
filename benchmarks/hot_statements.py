"""Postgres CPU per delivery of the two hot statements alone.

``python -m benchmarks.hot_statements [--events N] [--rounds R] [--variant NAME ...]``:

The ingest insert (``store.events.insert_events``: events and their deliveries, leased at
once) and the outcome write (``store.deliveries.record_outcomes``: the attempts and each
delivery's new state), called as the Dispatcher calls them (100 events x 10 webhooks a
statement, outcomes 200 at a time), from one connection, with nothing else running: the
Postgres server's CPU (its process tree, reaped children included) per delivery, for each.

Each variant runs on a fresh database at the current schema, with a change on top, so a lever
is measured by what it saves: ``current`` (as shipped), and what-ifs (an index or a foreign key
back, or away). Variants alternate over ``--rounds`` rounds; the median is printed. An
embedded PostgreSQL is started in a temporary directory (or ``DISPATCHER_BENCH_DATABASE_URL``,
whose server is then not measured).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from benchmarks.env import fresh_database
from benchmarks.measure import tree_cpu_s
from dispatcher import ids
from dispatcher.embedded import EmbeddedPostgres
from dispatcher.store import deliveries as delivery_store
from dispatcher.store import events as event_store

WEBHOOKS = 10
EVENTS_PER_INSERT = 100
OUTCOMES_PER_WRITE = 200
DATA = '{"order": "' + "x" * 460 + '"}'  # a ~500-byte event, as the e2e's

# The outcome write's fence as it was before the hash join (see record_outcomes).
FENCE_NOW = "THEN d.lease_owner = $1 ELSE false END"
FENCE_BEFORE = "THEN d.lease_owner END = $1"

# What-ifs on top of the shipped schema: the statements run after migrating.
VARIANTS: dict[str, str] = {
    "current": "",
    "the fence of 0009 (pairwise join)": "",
    "with the foreign keys of 0009": (
        "ALTER TABLE attempts ADD FOREIGN KEY (delivery_id) REFERENCES deliveries (id)"
        " ON DELETE CASCADE;"
        " ALTER TABLE deliveries ADD FOREIGN KEY (event_id) REFERENCES events (id)"
        " ON DELETE CASCADE"
    ),
    "with the indexes of 0009": (
        "CREATE INDEX ON deliveries (lease_owner) WHERE lease_owner IS NOT NULL;"
        " CREATE INDEX ON deliveries (updated_at)"
        " WHERE status IN ('success', 'failed', 'cancelled');"
        " CREATE INDEX ON deliveries (status, id)"
    ),
    "with a status index of all but success": (
        "CREATE INDEX ON deliveries (status, id) WHERE status <> 'success'"
    ),
    "without deliveries_event_type": "DROP INDEX deliveries_event_type",
    "deliveries fillfactor 70": "ALTER TABLE deliveries SET (fillfactor = 70)",
}


@dataclass(slots=True)
class Outcome:
    """What record_outcomes reads of an outcome (a success at the first attempt)."""

    delivery_id: str
    webhook_id: str
    started_at: datetime
    age_from: datetime
    status: str = "success"
    number: int = 1
    duration_ms: float = 2.5
    status_code: int | None = 200
    response_body: str | None = "ok"
    error: str | None = None
    url: str = "https://example.com/hook"
    next_attempt_at: datetime | None = None
    failed: bool = False


async def measure(
    server: str, postmaster: int | None, variant: str, events: int
) -> tuple[float, float]:
    """(insert, outcome) Postgres CPU us per delivery on a fresh database for ``variant``."""
    setup = VARIANTS[variant]
    shipped = delivery_store.Q["record_outcomes"]
    if variant.startswith("the fence of 0009"):
        assert FENCE_NOW in shipped
        delivery_store.Q["record_outcomes"] = shipped.replace(FENCE_NOW, FENCE_BEFORE)
    try:
        return await _measure(server, postmaster, setup, events)
    finally:
        delivery_store.Q["record_outcomes"] = shipped


async def _measure(
    server: str, postmaster: int | None, setup: str, events: int
) -> tuple[float, float]:
    dsn = await fresh_database(server, "dispatcher_hot")
    conn = await asyncpg.connect(dsn)
    try:
        if setup:
            await conn.execute(setup)
        hooks = [f"wh_hot{i}" for i in range(WEBHOOKS)]
        for hook in hooks:
            await conn.execute(
                "INSERT INTO webhooks (id, name, url, event_types)"
                " VALUES ($1, $1, 'https://example.com/hook', '{bench.hot}')",
                hook,
            )
        await conn.execute("CHECKPOINT")

        def cpu() -> float:
            return tree_cpu_s(postmaster) if postmaster is not None else float("nan")

        inserting = writing = 0.0
        for _ in range(events // EVENTS_PER_INSERT):
            now = datetime.now(UTC)
            rows = [
                event_store.EventRow(ids.event_id(), "bench.hot", DATA, now, None, None)
                for _ in range(EVENTS_PER_INSERT)
            ]
            batch = [
                event_store.DeliveryRow(ids.delivery_id(), e.id, hook, e.type, True, None)
                for e in rows
                for hook in hooks
            ]
            t = cpu()
            await event_store.insert_events(
                conn, events=rows, deliveries=batch, owner="hot", lease_seconds=30, created_at=now
            )
            inserting += cpu() - t
            outcomes = [Outcome(d.id, d.webhook_id, now, now) for d in batch]
            t = cpu()
            for i in range(0, len(outcomes), OUTCOMES_PER_WRITE):
                await delivery_store.record_outcomes(
                    conn, owner="hot", outcomes=outcomes[i : i + OUTCOMES_PER_WRITE]
                )
            writing += cpu() - t
        done = await conn.fetchval("SELECT count(*) FROM deliveries WHERE status = 'success'")
        total = events * WEBHOOKS
        if done != total:
            raise RuntimeError(f"{done} of {total} deliveries recorded")
        return 1e6 * inserting / total, 1e6 * writing / total
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000, help="per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS))
    opts = parser.parse_args()
    chosen = opts.variant or list(VARIANTS)
    external = os.environ.get("DISPATCHER_BENCH_DATABASE_URL")
    with tempfile.TemporaryDirectory(prefix="dsph-", dir="/tmp") as tmp:
        embedded = None if external else EmbeddedPostgres(Path(tmp))
        if embedded is not None:
            server = await asyncio.to_thread(embedded.start)
        else:
            assert external is not None
            server = external
        try:
            postmaster = None
            if embedded is not None:
                postmaster = int((embedded.pgdata / "postmaster.pid").read_text().split()[0])
            figures: dict[str, list[tuple[float, float]]] = {v: [] for v in chosen}
            for r in range(opts.rounds):
                for variant in chosen:
                    figures[variant].append(await measure(server, postmaster, variant, opts.events))
                    print(f"  round {r + 1}: {variant} done", file=sys.stderr, flush=True)
        finally:
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)
    print(
        f"Postgres CPU us per delivery, median of {opts.rounds} rounds of "
        f"{opts.events * WEBHOOKS:,} deliveries"
    )
    print(f"{'variant':36} {'insert':>8} {'outcome':>8} {'total':>8}")
    for variant, runs in figures.items():
        ins = statistics.median(i for i, _ in runs)
        out = statistics.median(o for _, o in runs)
        tot = statistics.median(i + o for i, o in runs)
        print(f"{variant:36} {ins:8.1f} {out:8.1f} {tot:8.1f}")


if __name__ == "__main__":
    asyncio.run(main())
