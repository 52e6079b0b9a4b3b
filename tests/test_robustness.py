"""Regressions found in review: poisoned group commits, unrepresentable data, orphaned and
stranded deliveries, a manual retry racing an attempt in flight."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from aiohttp import web

from dispatcher.app_keys import SCHEDULER
from tests.helpers import ADMIN, PUBLISHER, webhook_body


async def eventually(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_one_unstorable_event_does_not_fail_its_neighbours(client: Any) -> None:
    async def good(i: int) -> int:
        resp = await client.post(
            "/v1/events", json={"type": "order.created", "data": {"i": i}}, headers=PUBLISHER
        )
        return int(resp.status)

    # A lone surrogate with a long integer (the stdlib path) cannot be stored as JSON.
    bad_body = b'{"type": "order.created", "data": {"s": "\\ud800", "n": 12345678901234567890123}}'
    infinite = b'{"type": "order.created", "data": {"x": 1e400, "n": 12345678901234567890123}}'

    async def bad(body: bytes) -> int:
        resp = await client.post(
            "/v1/events", data=body, headers={**PUBLISHER, "Content-Type": "application/json"}
        )
        assert resp.headers["Content-Type"].startswith("application/problem+json")
        return int(resp.status)

    results = await asyncio.gather(*(good(i) for i in range(30)), bad(bad_body), bad(infinite))
    assert results[:30] == [202] * 30
    assert all(400 <= s < 500 for s in results[30:]), results[30:]


async def reaches_status(db: asyncpg.Connection, delivery_id: str, status: str) -> None:
    """Wait until delivery ``delivery_id`` has ``status``."""

    async def there() -> bool:
        found = await db.fetchval("SELECT status FROM deliveries WHERE id = $1", delivery_id)
        return bool(found == status)

    await eventually(there)


async def test_deliveries_of_a_deleted_webhook_are_cancelled_not_stuck(
    client: Any, db: asyncpg.Connection
) -> None:
    await db.execute(
        "INSERT INTO events (id, type, data, occurred_at) VALUES ('e1', 'a.b', '{}', now())"
    )
    await db.execute(
        "INSERT INTO deliveries (id, event_id, webhook_id, event_type, next_attempt_at, due_at)"
        " VALUES ('dlv_orphan', 'e1', 'wh_gone', 'a.b', now(), now())"
    )
    client.app[SCHEDULER].wake.set()
    await reaches_status(db, "dlv_orphan", "cancelled")


async def test_a_delivery_whose_event_was_pruned_is_cancelled_not_stuck(
    client: Any, receiver: Any, db: asyncpg.Connection
) -> None:
    # No foreign key holds a delivery to its event (migration 0010): a replay racing the
    # prune of its event leaves such a row. The claim cannot send it (it joins the event).
    hook = await (
        await client.post("/v1/webhooks", json=webhook_body(url=receiver.url()), headers=ADMIN)
    ).json()
    await db.execute(
        "INSERT INTO deliveries (id, event_id, webhook_id, event_type, next_attempt_at, due_at)"
        " VALUES ('dlv_no_event', 'evt_pruned', $1, 'a.b', now(), now())",
        hook["id"],
    )
    client.app[SCHEDULER].wake.set()
    await reaches_status(db, "dlv_no_event", "cancelled")
    assert receiver.at() == []


async def test_held_deliveries_of_an_enabled_webhook_are_rearmed(
    client: Any, receiver: Any, db: asyncpg.Connection
) -> None:
    hook = await (
        await client.post("/v1/webhooks", json=webhook_body(url=receiver.url()), headers=ADMIN)
    ).json()
    await db.execute(
        "INSERT INTO events (id, type, data, occurred_at)"
        " VALUES ('e2', 'order.created', '{}', now())"
    )
    # As a hold that raced an enable would leave it: unfinished, enabled webhook, due_at NULL.
    await db.execute(
        "INSERT INTO deliveries (id, event_id, webhook_id, event_type, status, next_attempt_at)"
        " VALUES ('dlv_stranded', 'e2', $1, 'order.created', 'retrying', now())",
        hook["id"],
    )
    await client.app[SCHEDULER].heal()
    client.app[SCHEDULER].wake.set()
    [got] = await receiver.wait_for(1)
    assert got.headers["webhook-id"] == "e2"


async def test_manual_retry_during_an_attempt_is_not_lost(
    make_client: Any, receiver: Any, db: asyncpg.Connection
) -> None:
    client = await make_client(max_retries=0)
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow_then_ok(_request: web.Request, n: int) -> web.Response:
        if n == 0:
            started.set()
            await asyncio.wait_for(release.wait(), 10)
            return web.Response(status=500)
        return web.Response(status=200)

    receiver.responders["/hook"] = slow_then_ok
    await client.post("/v1/webhooks", json=webhook_body(url=receiver.url()), headers=ADMIN)
    await client.post("/v1/events", json={"type": "order.created", "data": {}}, headers=PUBLISHER)
    await asyncio.wait_for(started.wait(), 10)
    delivery_id = await db.fetchval("SELECT id FROM deliveries")
    resp = await client.post(f"/v1/deliveries/{delivery_id}/retry", headers=ADMIN)
    assert resp.status == 202
    release.set()  # the first attempt now fails with 500 and max_retries=0

    async def succeeded() -> bool:
        return bool(
            await db.fetchval("SELECT status FROM deliveries WHERE id = $1", delivery_id)
            == "success"
        )

    await eventually(succeeded)


@contextlib.asynccontextmanager
async def conflicts(db: asyncpg.Connection, table: str, times: int) -> AsyncIterator[None]:
    """The next ``times`` inserts into ``table`` fail as a deadlock's victim would."""
    await db.execute(
        "CREATE SEQUENCE test_conflicts;"
        "CREATE FUNCTION test_conflict() RETURNS trigger LANGUAGE plpgsql AS $$"
        f" BEGIN IF nextval('test_conflicts') <= {times} THEN"
        "  RAISE EXCEPTION 'deadlock detected (test)' USING ERRCODE = '40P01';"
        " END IF; RETURN NEW; END $$;"
        f"CREATE TRIGGER test_conflict BEFORE INSERT ON {table}"
        " FOR EACH ROW EXECUTE FUNCTION test_conflict();"
    )
    try:
        yield
    finally:
        await db.execute(
            f"DROP TRIGGER test_conflict ON {table};"
            "DROP FUNCTION test_conflict(); DROP SEQUENCE test_conflicts;"
        )


async def publish_one(client: Any) -> Any:
    """POST one event (id ``evt-conflict``); the response."""
    return await client.post(
        "/v1/events",
        json={"type": "order.created", "id": "evt-conflict", "data": {}},
        headers=PUBLISHER,
    )


async def test_an_ingestion_that_loses_a_deadlock_is_tried_again(
    client: Any, db: asyncpg.Connection
) -> None:
    async with conflicts(db, "events", 2):
        resp = await publish_one(client)
        assert resp.status == 202, await resp.text()
        assert not (await resp.json())["duplicate"]
    assert await db.fetchval("SELECT count(*) FROM events WHERE id = 'evt-conflict'") == 1


async def test_an_ingestion_that_keeps_losing_deadlocks_answers_503_and_stores_nothing(
    client: Any, db: asyncpg.Connection
) -> None:
    async with conflicts(db, "events", 1000):
        resp = await publish_one(client)
        assert resp.status == 503, await resp.text()
        assert resp.headers["Content-Type"].startswith("application/problem+json")
        assert resp.headers["Retry-After"] == "1"
        problem = await resp.json()
        assert problem["status"] == 503 and "conflict" in problem["detail"]
    assert await db.fetchval("SELECT count(*) FROM events") == 0


async def test_an_outcome_write_that_loses_a_deadlock_is_written_on_the_next_try(
    client: Any, receiver: Any, db: asyncpg.Connection
) -> None:
    """Not dropped: a dropped batch would leave the delivery leased, unrecorded, and sent
    again only when its lease (30 s here) ran out."""
    await client.post("/v1/webhooks", json=webhook_body(url=receiver.url()), headers=ADMIN)
    async with conflicts(db, "attempts", 2):
        assert (await publish_one(client)).status == 202

        async def recorded() -> bool:
            status = await db.fetchval("SELECT status FROM deliveries")
            return bool(status == "success")

        await eventually(recorded, timeout=10)
    assert await db.fetchval("SELECT count(*) FROM attempts") == 1
    assert len(receiver.at()) == 1
