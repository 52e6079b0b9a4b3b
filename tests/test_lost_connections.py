"""A database connection lost in the middle of a transaction (as on a Postgres restart):
ingestion answers 503 rather than a 202 for an event it did not store, and the outcome writer
survives and writes what it had."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.helpers import (
    PUBLISHER,
    Client,
    MakeClient,
    blocked_backend,
    create_webhook,
    eventually,
    publish,
)
from tests.receiver import Receiver

pytestmark = pytest.mark.timeout(60)


async def test_ingestion_answers_503_when_the_connection_drops_mid_commit(
    database_url: str, client: Client, db: asyncpg.Connection
) -> None:
    """The connection is terminated while the group commit waits inside its transaction:
    the event's fate is unknown to the producer, so the answer is 503 (retry), never 500."""
    locker = await asyncpg.connect(database_url)
    try:
        async with locker.transaction():
            await locker.execute("LOCK TABLE events IN EXCLUSIVE MODE")
            request = asyncio.ensure_future(
                client.post(
                    "/v1/events",
                    json={"type": "order.created", "data": {}, "id": "evt_midcommit"},
                    headers=PUBLISHER,
                )
            )
            pid = await blocked_backend(db, "INSERT INTO events")
            assert await db.fetchval("SELECT pg_terminate_backend($1)", pid)
            resp = await asyncio.wait_for(request, 10)
    finally:
        await locker.close()
    assert resp.status == 503, await resp.text()
    # And ingestion still works afterwards.
    assert (await publish(client))["deliveries"] == 0


async def test_outcome_writer_survives_a_connection_dropped_mid_write(
    receiver: Receiver, database_url: str, make_client: MakeClient, db: asyncpg.Connection
) -> None:
    """An attempt's outcome whose write loses its connection is written on the next try;
    the writer must not die (else every delivery is re-sent forever and never recorded)."""
    client = await make_client(lease_seconds=2)
    hook = await create_webhook(client, url=receiver.url())
    locker = await asyncpg.connect(database_url)
    try:
        async with locker.transaction():
            await locker.execute("LOCK TABLE attempts IN EXCLUSIVE MODE")
            sent = await publish(client)
            await receiver.wait_for(1, timeout=5)
            pid = await blocked_backend(db, "INSERT INTO attempts")
            assert await db.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await locker.close()

    async def recorded() -> asyncpg.Record | None:
        row = await db.fetchrow(
            "SELECT * FROM deliveries WHERE event_id = $1 AND webhook_id = $2",
            sent["id"],
            hook["id"],
        )
        return row if row is not None and row["status"] == "success" else None

    try:
        await eventually(recorded, 5, "the outcome to be written after the connection loss")
    finally:
        copies = len(receiver.at())
    # At-least-once: a copy more is tolerable around a failure, a stream of them is not.
    assert copies <= 2, f"the receiver got {copies} copies of one event"
    await publish(client)

    async def next_recorded() -> bool:
        return bool(await db.fetchval("SELECT count(*) FROM attempts") >= 2)

    await eventually(next_recorded, 5, "the next outcome to be written")
