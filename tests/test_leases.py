"""Leases: a live instance keeps the work it claimed, however long an attempt takes; work
leased to an instance that no longer heartbeats is reaped and sent by another, once."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from dispatcher.app_keys import ENGINE, SCHEDULER
from tests.helpers import (
    ADMIN,
    Client,
    Gate,
    MakeClient,
    attempts_of,
    create_webhook,
    deliveries_of,
    eventually,
    header_id,
    idle,
    publish,
    two,
)
from tests.receiver import Receiver

pytestmark = pytest.mark.timeout(60)


async def test_live_instance_keeps_its_leases_on_attempts_longer_than_the_lease(
    receiver: Receiver, make_client: MakeClient, db: asyncpg.Connection
) -> None:
    """Attempts (and queued work) outlast the 2 s lease; A's heartbeat keeps them, so the
    other instance's reaper releases nothing, it takes nothing over, and each event is sent
    exactly once."""
    a, b = await two(make_client, lease_seconds=2)
    gate = Gate()
    receiver.responders["/long"] = gate
    hook = await create_webhook(a, url=receiver.url("/long"), max_in_flight=2)
    sent = [await publish(a, i=i) for i in range(4)]  # two in flight, two queued on A

    async def two_in_flight() -> bool:
        return gate.arrived == 2

    await eventually(two_in_flight, 5, "two attempts in flight")
    owner = a.app[ENGINE].owner

    async def heartbeats_after_two_lease_periods() -> bool:
        # A has beaten well past the 2 s lease since it took all four.
        beat = await db.fetchval(
            "SELECT heartbeat_at - started_at FROM dispatcher_instances WHERE owner = $1", owner
        )
        return beat is not None and beat.total_seconds() > 4.0

    await eventually(heartbeats_after_two_lease_periods, 8, "A to keep beating")
    rows = await deliveries_of(db, hook["id"])
    assert len(rows) == 4 and all(r["lease_owner"] == owner for r in rows)
    assert await b.app[SCHEDULER].reap() == 0
    b.app[SCHEDULER].wake.set()
    await b.app[SCHEDULER].tick()
    assert gate.arrived == 2, "B took over work A still held"
    gate.opened.set()
    got = await receiver.wait_for(4, "/long", timeout=10)
    await idle(a, b)
    assert sorted(header_id(r) for r in got) == sorted(s["id"] for s in sent)
    assert len(receiver.at("/long")) == 4
    assert len(await attempts_of(db, hook["id"])) == 4


async def delivered_once(client: Client, receiver: Receiver, path: str) -> dict[str, Any]:
    """A webhook at ``path`` that has received one event, with its instance idle again."""
    hook = await create_webhook(client, url=receiver.url(path))
    await publish(client)
    await receiver.wait_for(1, path, timeout=5)
    await idle(client)
    return hook


async def pretend_leased(
    db: asyncpg.Connection, webhook_id: str, owner: str, expired_ago: float = 1.0
) -> None:
    """Make a webhook's deliveries unfinished and leased to ``owner``, their own lease run out
    ``expired_ago`` (as after a crash, or a release that failed)."""
    await db.execute(
        "UPDATE deliveries SET status = 'retrying', due_at = NULL, lease_owner = $2, "
        "lease_until = now() - make_interval(secs => $3) WHERE webhook_id = $1",
        webhook_id,
        owner,
        expired_ago,
    )


async def test_work_leased_to_an_instance_without_a_heartbeat_is_reaped_and_sent(
    receiver: Receiver, make_client: MakeClient, db: asyncpg.Connection
) -> None:
    """A delivery leased to an owner that never beat (or stopped beating) is released by the
    reaper and then sent; one leased to the live instance is left alone."""
    client = await make_client(lease_seconds=2)
    hook = await delivered_once(client, receiver, "/reaped")
    await pretend_leased(db, hook["id"], "ghost:1:x")
    scheduler = client.app[SCHEDULER]
    assert await scheduler.reap() == 1
    row = (await deliveries_of(db, hook["id"]))[0]
    assert row["lease_owner"] is None and row["due_at"] is not None
    scheduler.wake.set()
    await receiver.wait_for(2, "/reaped", timeout=5)
    assert await scheduler.reap() == 0


async def test_an_instance_with_a_shorter_lease_does_not_reap_a_live_longer_lease(
    receiver: Receiver, make_client: MakeClient, db: asyncpg.Connection
) -> None:
    """Each heartbeat carries its owner's own expiry: B (1 s lease) reaps nothing of A's
    (30 s lease, beating every 10 s) while A is alive and holding work, even when A's last
    beat is older than B's own lease period."""
    a = await make_client(lease_seconds=30)
    b = await make_client(lease_seconds=1)
    gate = Gate()
    receiver.responders["/held"] = gate
    hook = await create_webhook(a, url=receiver.url("/held"))
    await publish(a)

    async def in_flight() -> bool:
        return gate.arrived == 1

    await eventually(in_flight, 5, "the attempt to be in flight on A")
    owner = a.app[ENGINE].owner
    # As 5 s into A's 10 s beat interval, on a delivery whose own lease ran out long ago: only
    # the heartbeat keeps it, and by B's 1 s clock that heartbeat would look dead.
    await db.execute(
        "UPDATE dispatcher_instances SET heartbeat_at = now() - interval '5 seconds', "
        "expires_at = now() + interval '25 seconds' WHERE owner = $1",
        owner,
    )
    await db.execute(
        "UPDATE deliveries SET lease_until = now() - interval '1 minute' WHERE webhook_id = $1",
        hook["id"],
    )
    assert await b.app[SCHEDULER].reap() == 0
    assert (await deliveries_of(db, hook["id"]))[0]["lease_owner"] == owner
    gate.opened.set()
    await idle(a, b)
    assert len(receiver.at("/held")) == 1


async def test_a_leased_delivery_of_a_deleted_webhook_is_reaped_and_cancelled(
    receiver: Receiver, make_client: MakeClient, db: asyncpg.Connection
) -> None:
    """A delivery leased by an instance that died, for a webhook deleted meanwhile, must not
    stay leased forever: the reaper makes it due and the orphan clean-up cancels it."""
    client = await make_client(lease_seconds=2)
    hook = await delivered_once(client, receiver, "/gone")
    resp = await client.delete(f"/v1/webhooks/{hook['id']}", headers=ADMIN)
    assert resp.status == 204
    await pretend_leased(db, hook["id"], "ghost:2:y")
    scheduler = client.app[SCHEDULER]
    assert await scheduler.reap() == 1

    async def cancelled() -> bool:
        scheduler.wake.set()
        rows = await deliveries_of(db, hook["id"])
        return [r["status"] for r in rows] == ["cancelled"]

    await eventually(cancelled, 10, "the orphaned delivery to be cancelled")


async def test_a_live_instance_releases_stray_leases_it_does_not_hold(
    receiver: Receiver, make_client: MakeClient, db: asyncpg.Connection
) -> None:
    """A delivery leased to this instance in the database that its engine does not hold (a
    release that failed for good) would never be sent while the heartbeat goes on: the
    engine's stray check gives it back, and it is sent."""
    client = await make_client(lease_seconds=1)
    engine = client.app[ENGINE]
    hook = await delivered_once(client, receiver, "/stray")
    await pretend_leased(db, hook["id"], engine.owner, 5.0)
    # The heartbeat alone keeps it leased: the reaper sees a live owner.
    assert await client.app[SCHEDULER].reap() == 0
    assert await engine.release_strays() == 1
    client.app[SCHEDULER].wake.set()
    await receiver.wait_for(2, "/stray", timeout=5)
    await idle(client)
    assert [r["status"] for r in await deliveries_of(db, hook["id"])] == ["success"]
