"""``POST /v1/webhooks/{id}/replay`` with ``"status": "missing"``: deliveries for past events a
webhook matches now but never got, sent to a real receiver; idempotent and batched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from dispatcher import missed
from dispatcher.matching import Matcher
from dispatcher.store.deliveries import Q
from tests.helpers import ADMIN
from tests.receiver import Receiver
from tests.test_delivery import Client, create_webhook, idle, list_deliveries, publish


async def replay_missing(client: Client, webhook_id: str, since: datetime) -> int:
    """Ask for what was missed since ``since``; assert 202 and return the count."""
    resp = await client.post(
        f"/v1/webhooks/{webhook_id}/replay",
        json={"status": "missing", "since": since.isoformat()},
        headers=ADMIN,
    )
    assert resp.status == 202, await resp.text()
    body: dict[str, Any] = await resp.json()
    assert set(body) == {"count"}
    count: int = body["count"]
    return count


async def test_events_sent_while_disabled_are_sent_after_enabling(
    receiver: Receiver, client: Client
) -> None:
    hook = await create_webhook(client, url=receiver.url())
    since = datetime.now(UTC) - timedelta(seconds=5)
    first = await publish(client)
    await receiver.wait_for(1)
    resp = await client.post(f"/v1/webhooks/{hook['id']}/disable", headers=ADMIN)
    assert resp.status == 200
    while_disabled = [await publish(client) for _ in range(3)]
    assert all(e["deliveries"] == 0 for e in while_disabled)
    resp = await client.post(f"/v1/webhooks/{hook['id']}/enable", headers=ADMIN)
    assert resp.status == 200

    assert await replay_missing(client, hook["id"], since) == 3
    got = await receiver.wait_for(4)
    assert sorted(r.headers["webhook-id"] for r in got[1:]) == sorted(
        e["id"] for e in while_disabled
    )
    assert got[0].headers["webhook-id"] == first["id"]

    # The same window again creates nothing and sends nothing.
    assert await replay_missing(client, hook["id"], since) == 0
    await idle(client)
    assert len(receiver.at()) == 4
    assert len(await list_deliveries(client, f"/v1/webhooks/{hook['id']}/deliveries")) == 4


async def test_missing_follows_the_patterns_the_webhook_has_now(
    receiver: Receiver, client: Client
) -> None:
    hook = await create_webhook(client, url=receiver.url(), event_types=["order.created"])
    old = await publish(client, "order.shipped")
    since = datetime.now(UTC)
    created = await publish(client, "order.created")
    shipped = await publish(client, "order.shipped")
    refunded = await publish(client, "order.item.refunded")
    other = await publish(client, "invoice.paid")
    ping_other = await create_webhook(client, name="other", url=receiver.url("/other"))
    resp = await client.post(f"/v1/webhooks/{ping_other['id']}/ping", headers=ADMIN)
    assert resp.status == 202
    await receiver.wait_for(1)

    resp = await client.patch(
        f"/v1/webhooks/{hook['id']}", json={"event_types": ["order.*"]}, headers=ADMIN
    )
    assert resp.status == 200
    assert await replay_missing(client, hook["id"], since) == 2
    got = await receiver.wait_for(3)
    sent = {r.headers["webhook-id"] for r in got}
    assert sent == {created["id"], shipped["id"], refunded["id"]}
    assert old["id"] not in sent and other["id"] not in sent
    # The other webhook's ping is its own: never "missed" by this one, even under "*".
    resp = await client.patch(
        f"/v1/webhooks/{hook['id']}", json={"event_types": ["*"]}, headers=ADMIN
    )
    assert resp.status == 200
    assert await replay_missing(client, hook["id"], since) == 1  # invoice.paid only
    got = await receiver.wait_for(4)
    assert got[-1].headers["webhook-id"] == other["id"]


async def test_a_test_send_to_another_webhook_is_never_missed(
    receiver: Receiver, client: Client
) -> None:
    """A test send is addressed to one webhook: another subscribed to its type never gets it."""
    since = datetime.now(UTC)
    hook = await create_webhook(client, url=receiver.url(), event_types=["order.*"])
    other = await create_webhook(client, name="other", url=receiver.url("/other"))
    resp = await client.post(
        f"/v1/webhooks/{other['id']}/test",
        json={"event_type": "order.created", "data": {"order": 1}},
        headers=ADMIN,
    )
    assert resp.status == 202, await resp.text()
    sent = await resp.json()
    got = await receiver.wait_for(1, "/other")
    assert got[0].headers["webhook-id"] == sent["id"]

    assert await replay_missing(client, hook["id"], since) == 0
    await idle(client)
    assert receiver.at() == []
    assert await list_deliveries(client, f"/v1/webhooks/{hook['id']}/deliveries") == []


async def test_disabled_event_types_and_operational_events_about_the_webhook_are_skipped(
    receiver: Receiver, client: Client, db: asyncpg.Connection
) -> None:
    since = datetime.now(UTC)
    resp = await client.post(
        "/v1/event-types", json={"name": "order.muted", "enabled": False}, headers=ADMIN
    )
    assert resp.status == 201, await resp.text()
    await publish(client, "order.muted")
    ours = await create_webhook(
        client, url=receiver.url(), event_types=["order.*", "dispatcher.webhook.disabled"]
    )
    # Operational events, as the publisher stores them: one about this webhook, one not.
    for event_id, about in (("evt_about_us", ours["id"]), ("evt_about_other", "wh_other")):
        await db.execute(
            "INSERT INTO events (id, type, data, occurred_at) VALUES ($1, $2, $3, now())",
            event_id,
            "dispatcher.webhook.disabled",
            f'{{"webhook_id": "{about}"}}',
        )
    assert await replay_missing(client, ours["id"], since) == 1
    got = await receiver.wait_for(1)
    assert got[0].headers["webhook-id"] == "evt_about_other"


async def test_a_disabled_webhook_gets_them_held_until_enabled(
    receiver: Receiver, client: Client
) -> None:
    hook = await create_webhook(client, url=receiver.url(), enabled=False)
    since = datetime.now(UTC)
    event = await publish(client)
    assert event["deliveries"] == 0
    assert await replay_missing(client, hook["id"], since) == 1
    await idle(client)
    assert receiver.requests == []
    [row] = await list_deliveries(client, f"/v1/webhooks/{hook['id']}/deliveries")
    assert row["status"] == "created"
    resp = await client.post(f"/v1/webhooks/{hook['id']}/enable", headers=ADMIN)
    assert resp.status == 200
    got = await receiver.wait_for(1)
    assert got[0].headers["webhook-id"] == event["id"]


async def test_a_long_window_runs_in_batches_and_misses_nothing(
    client: Client, db: asyncpg.Connection
) -> None:
    hook = await create_webhook(client, event_types=["order.*"], enabled=False)
    # 25 events sharing one created_at (as a group commit does) and 12 later ones, mixed types.
    await db.execute(
        """INSERT INTO events (id, type, data, occurred_at, created_at)
           SELECT 'evt_a' || lpad(i::text, 3, '0'),
                  CASE WHEN i % 5 = 0 THEN 'invoice.paid' ELSE 'order.created' END,
                  '{}', now(), '2030-01-01T00:00:00Z'
           FROM generate_series(1, 25) i"""
    )
    await db.execute(
        """INSERT INTO events (id, type, data, occurred_at, created_at)
           SELECT 'evt_b' || lpad(i::text, 3, '0'), 'order.created', '[1]', now(),
                  '2030-01-01T00:00:00Z'::timestamptz + make_interval(secs => i)
           FROM generate_series(1, 12) i"""
    )
    since = datetime(2030, 1, 1, tzinfo=UTC)
    seen: list[int] = []

    class Counting:
        """The connection, recording how many rows each batch read brought back."""

        async def fetch(self, query: str, *args: Any) -> Any:
            rows = await db.fetch(query, *args)
            seen.append(len(rows))
            return rows

        async def execute(self, query: str, *args: Any) -> str:
            return await db.execute(query, *args)

    count = await missed.replay_missing(Counting(), hook["id"], ["order.*"], (), since, batch=4)  # type: ignore[arg-type]
    assert count == 20 + 12
    assert max(seen) <= 4 and len(seen) >= 10  # never more than one batch in memory
    assert await missed.replay_missing(db, hook["id"], ["order.*"], (), since, batch=4) == 0
    n = await db.fetchval("SELECT count(*) FROM deliveries WHERE webhook_id = $1", hook["id"])
    assert n == 32


def test_wanted_matches_like_fan_out() -> None:
    matcher = Matcher.compile(["order.*", "dispatcher.webhook.failing"])
    assert missed.wanted("wh_1", matcher, (), "order.created", None)
    assert not missed.wanted("wh_1", matcher, {"order.created"}, "order.created", None)
    assert not missed.wanted("wh_1", matcher, (), "invoice.paid", None)
    assert missed.wanted("wh_1", matcher, (), "dispatcher.webhook.failing", "wh_2")
    assert not missed.wanted("wh_1", matcher, (), "dispatcher.webhook.failing", "wh_1")
    assert not missed.wanted("wh_1", Matcher.compile(["*"]), (), "webhook.ping", None)
    assert not missed.wanted("wh_1", matcher, (), "order.created", None, sent_to="wh_2")
    assert not missed.wanted("wh_1", Matcher.compile(["*"]), (), "dispatcher.delivery.failed", None)


async def test_a_tenants_replay_reads_only_its_events_through_events_tenant(
    db: asyncpg.Connection,
) -> None:
    # Events of 20 tenants and the operator, 300 each, over an hour: the old single statement
    # (a CASE on the webhook's tenant) could only walk events_created and drop the others'.
    await db.execute(
        """INSERT INTO events (id, type, data, occurred_at, created_at, tenant_id)
           SELECT 'evt_t' || lpad(i::text, 6, '0'), 'order.created', '{}', now(),
                  '2030-01-01T00:00:00Z'::timestamptz + make_interval(secs => i % 3600),
                  CASE WHEN i % 21 = 0 THEN NULL ELSE 'ten' || (i % 21) END
           FROM generate_series(1, 6300) i"""
    )
    await db.execute("ANALYZE events")
    since = datetime(2030, 1, 1, tzinfo=UTC)
    plan = "\n".join(
        r[0]
        for r in await db.fetch(
            "EXPLAIN " + Q["events_since_page_tenant"], since, None, None, 1000, "ten7"
        )
    )
    assert "events_tenant" in plan, plan
    assert "events_created" not in plan, plan
    rows = await db.fetch(Q["events_since_page_tenant"], since, None, None, 1000, "ten7")
    assert len(rows) == 300
