"""Retention: finished deliveries, attempts and events older than the retention period are
pruned in batches, and only by one instance at a time."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from dispatcher import db as dispatcher_db
from dispatcher import retention

pytestmark = pytest.mark.timeout(60)


async def insert_event(db: asyncpg.Connection, event_id: str, days_old: float) -> None:
    await db.execute(
        "INSERT INTO events (id, type, data, occurred_at, created_at) "
        "VALUES ($1, 'order.created', '{}', now(), now() - make_interval(days => $2))",
        event_id,
        float(days_old),
    )


async def insert_delivery(
    db: asyncpg.Connection, delivery_id: str, event_id: str, status: str, days_old: float
) -> None:
    await db.execute(
        "INSERT INTO deliveries (id, event_id, webhook_id, event_type, status, attempt_count, "
        "created_at, updated_at, due_at) "
        # One webhook per delivery: an event has at most one delivery per webhook.
        "VALUES ($1, $2, 'wh_retention_' || $1, 'order.created', $3, 1, "
        "now() - make_interval(days => $4), now() - make_interval(days => $4), "
        "CASE WHEN $3 IN ('created', 'retrying') THEN now() + interval '1 hour' END)",
        delivery_id,
        event_id,
        status,
        float(days_old),
    )
    await db.execute(
        "INSERT INTO attempts (delivery_id, number, webhook_id, started_at, duration_ms, "
        "status_code, url) VALUES ($1, 1, 'wh_retention', now() - make_interval(days => $2), "
        "12.5, 500, 'http://example.com/')",
        delivery_id,
        float(days_old),
    )


@pytest.fixture
async def pool(database_url: str, db: asyncpg.Connection) -> Any:
    """A pool on the (emptied) test database, as the service opens it."""
    p = await dispatcher_db.create_pool(database_url)
    try:
        yield p
    finally:
        await p.close()


async def test_retention_prunes_only_old_finished_work(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    # Old event, every delivery finished long ago: goes, with its deliveries and attempts.
    await insert_event(db, "ev_old_done", 40)
    for status in ("success", "failed", "cancelled"):
        await insert_delivery(db, f"dl_old_{status}", "ev_old_done", status, 40)
    # Old event with one unfinished delivery: stays, and so does that delivery; its old
    # finished one goes.
    await insert_event(db, "ev_old_pending", 40)
    await insert_delivery(db, "dl_pending_retrying", "ev_old_pending", "retrying", 40)
    await insert_delivery(db, "dl_pending_done", "ev_old_pending", "success", 40)
    await insert_event(db, "ev_old_created", 40)
    await insert_delivery(db, "dl_old_created", "ev_old_created", "created", 40)
    # Old event whose delivery finished recently: stays.
    await insert_event(db, "ev_old_recent_delivery", 40)
    await insert_delivery(db, "dl_recent_done", "ev_old_recent_delivery", "success", 1)
    # Old event that never had a delivery: goes. A recent one: stays.
    await insert_event(db, "ev_old_alone", 40)
    await insert_event(db, "ev_recent_alone", 1)
    # Just inside the retention period: stays.
    await insert_event(db, "ev_29_days", 29)
    await insert_delivery(db, "dl_29_days", "ev_29_days", "failed", 29)

    removed = await retention.prune(pool, 30)
    assert removed == {"deliveries": 4, "events": 2}

    deliveries = {r["id"]: r["status"] for r in await db.fetch("SELECT id, status FROM deliveries")}
    assert deliveries == {
        "dl_pending_retrying": "retrying",
        "dl_old_created": "created",
        "dl_recent_done": "success",
        "dl_29_days": "failed",
    }
    events = {r["id"] for r in await db.fetch("SELECT id FROM events")}
    assert events == {
        "ev_old_pending",
        "ev_old_created",
        "ev_old_recent_delivery",
        "ev_recent_alone",
        "ev_29_days",
    }
    attempts = {r["delivery_id"] for r in await db.fetch("SELECT delivery_id FROM attempts")}
    assert attempts == set(deliveries)

    # Nothing more to do the second time.
    assert await retention.prune(pool, 30) == {"deliveries": 0, "events": 0}
    # Once the unfinished delivery finishes and ages, its event goes too.
    await db.execute(
        "UPDATE deliveries SET status = 'success', updated_at = now() - interval '31 days' "
        "WHERE id = 'dl_pending_retrying'"
    )
    assert await retention.prune(pool, 30) == {"deliveries": 1, "events": 1}
    assert await db.fetchval("SELECT count(*) FROM events WHERE id = 'ev_old_pending'") == 0


async def test_retention_works_in_batches(pool: asyncpg.Pool, db: asyncpg.Connection) -> None:
    for i in range(7):
        await insert_event(db, f"ev_{i}", 40)
        await insert_delivery(db, f"dl_{i}", f"ev_{i}", "success", 40)
    await insert_delivery(db, "dl_keep", "ev_0", "retrying", 40)
    removed = await retention.prune(pool, 30, batch=2)
    assert removed == {"deliveries": 7, "events": 6}
    assert [r["id"] for r in await db.fetch("SELECT id FROM deliveries")] == ["dl_keep"]
    assert [r["id"] for r in await db.fetch("SELECT id FROM events")] == ["ev_0"]


async def test_retention_pauses_between_batches_so_it_works_a_tenth_of_the_time(
    pool: asyncpg.Pool, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(5):
        await insert_event(db, f"ev_{i}", 40)
        await insert_delivery(db, f"dl_{i}", f"ev_{i}", "success", 40)
    pauses: list[float] = []
    clock = iter(float(i) for i in range(1000))  # every reading of the clock is 1 s later
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(retention.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(retention.asyncio, "sleep", sleep)
    assert await retention.prune(pool, 30, batch=2) == {"deliveries": 5, "events": 5}
    # Two full batches of deliveries, two of events; each "took" 1 s, so each pause is 9 s.
    assert pauses == [retention.PAUSE_FACTOR] * 4


async def test_retention_runs_on_one_instance_at_a_time(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    await insert_event(db, "ev_old", 40)
    await db.execute("SELECT pg_advisory_lock($1)", retention.LOCK_KEY)
    try:
        assert await retention.prune(pool, 30) == {"deliveries": 0, "events": 0}
    finally:
        await db.execute("SELECT pg_advisory_unlock($1)", retention.LOCK_KEY)
    assert await retention.prune(pool, 30) == {"deliveries": 0, "events": 1}


async def test_retention_prunes_portal_links_a_day_past_their_expiry(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    await db.execute("INSERT INTO tenants (id, name) VALUES ('acme', 'Acme')")
    await db.execute(
        "INSERT INTO portal_links (link_hash, tenant_id, expires_at) VALUES "
        "('\\x01', 'acme', now() - interval '2 days'), "
        "('\\x02', 'acme', now() - interval '1 hour'), "
        "('\\x03', 'acme', now() + interval '1 hour')"
    )
    await retention.prune(pool, 30)
    left = [bytes(r["link_hash"]) for r in await db.fetch("SELECT link_hash FROM portal_links")]
    assert sorted(left) == [b"\x02", b"\x03"]
