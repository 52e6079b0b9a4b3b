"""Operational events: an auto-disable, exhausted retries and a 410 Gone are announced to the
webhooks subscribing to ``dispatcher.*`` events (never to the webhook they are about), once."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from dispatcher.app_keys import ENGINE, OPERATIONAL
from tests.helpers import (
    MakeClient,
    answer,
    attempts_of,
    create_webhook,
    eventually,
    get_webhook,
    idle,
    publish,
)
from tests.receiver import Receiver

pytestmark = pytest.mark.timeout(60)

# Breaker settings scaled down so that tests stay short.
BREAKER: dict[str, Any] = {"failures_before_disable": 5, "failure_window_seconds": 2.0}


def ops_events(receiver: Receiver, path: str, type_: str) -> list[dict[str, Any]]:
    """Bodies of ``type_`` events ``path`` received."""
    return [r.json() for r in receiver.at(path) if r.json()["type"] == type_]


async def test_auto_disable_is_announced_to_dispatcher_subscribers_only(
    receiver: Receiver, make_client: MakeClient, db: asyncpg.Connection
) -> None:
    client = await make_client(max_retries=0, **BREAKER)
    receiver.responders["/fail"] = answer(500)
    ops = await create_webhook(client, url=receiver.url("/ops"), event_types=["dispatcher.*"])
    star = await create_webhook(client, url=receiver.url("/star"), event_types=["*"])
    # The failing webhook subscribes to operational events too: it must never get its own.
    failing = await create_webhook(
        client, url=receiver.url("/fail"), event_types=["order.*", "dispatcher.*"]
    )
    sent = await asyncio.gather(*(publish(client, i=i) for i in range(5)))

    async def disabled_announced() -> list[dict[str, Any]] | None:
        return ops_events(receiver, "/ops", "dispatcher.webhook.disabled") or None

    [event] = await eventually(disabled_announced, 10, "the disable to be announced")
    assert event["data"]["webhook_id"] == failing["id"]
    assert event["data"]["reason"] == "auto"
    assert event["data"]["url"] == receiver.url("/fail")
    assert event["data"]["disabled_at"]

    # Each of the five deliveries ran out of retries (max_retries=0): one event each.
    async def failures_announced() -> list[dict[str, Any]] | None:
        found = ops_events(receiver, "/ops", "dispatcher.delivery.failed")
        return found if len(found) >= 5 else None

    failed = await eventually(failures_announced, 10, "the failed deliveries to be announced")
    assert len(failed) == 5
    assert {f["data"]["event_id"] for f in failed} == {s["id"] for s in sent}
    assert {f["data"]["webhook_id"] for f in failed} == {failing["id"]}
    await idle(client)

    # Never to the webhook they are about, never to a "*" subscriber.
    about = await db.fetch(
        "SELECT webhook_id, event_type, count(*) AS n FROM deliveries "
        "WHERE event_type LIKE 'dispatcher.%' GROUP BY webhook_id, event_type"
    )
    # The disable, the five failures, and the start of the failing episode (once).
    assert {(r["webhook_id"], r["event_type"]): r["n"] for r in about} == {
        (ops["id"], "dispatcher.webhook.disabled"): 1,
        (ops["id"], "dispatcher.delivery.failed"): 5,
        (ops["id"], "dispatcher.webhook.failing"): 1,
    }
    assert all(not r.json()["type"].startswith("dispatcher.") for r in receiver.at("/fail"))
    assert all(not r.json()["type"].startswith("dispatcher.") for r in receiver.at("/star"))
    assert len(receiver.at("/star")) == 5
    assert star["id"] not in {r["webhook_id"] for r in about}


async def test_exhausted_retries_are_announced_as_delivery_failed(
    receiver: Receiver, make_client: MakeClient, db: asyncpg.Connection
) -> None:
    client = await make_client(
        max_retries=2,
        retry_base_seconds=0.05,
        retry_max_delay_seconds=0.1,
        failures_before_disable=-1,
    )
    receiver.responders["/fail"] = answer(503)
    ops = await create_webhook(
        client, url=receiver.url("/ops"), event_types=["dispatcher.delivery.failed"]
    )
    await create_webhook(client, url=receiver.url("/star"), event_types=["*"])
    failing = await create_webhook(
        client, url=receiver.url("/fail"), event_types=["order.*", "dispatcher.*"]
    )
    sent = await publish(client)
    assert sent["deliveries"] == 2  # "*" and "order.*"

    [got] = await receiver.wait_for(1, "/ops", timeout=10)
    event = got.json()
    assert event["type"] == "dispatcher.delivery.failed"
    data = event["data"]
    assert data["webhook_id"] == failing["id"]
    assert data["event_id"] == sent["id"]
    assert data["event_type"] == "order.created"
    assert data["attempt_count"] == 3
    assert data["last_status_code"] == 503

    async def recorded_failed() -> asyncpg.Record | None:
        row = await db.fetchrow("SELECT * FROM deliveries WHERE id = $1", data["delivery_id"])
        return row if row is not None and row["status"] == "failed" else None

    delivery = await eventually(recorded_failed, 5, "the delivery to be recorded as failed")
    assert delivery["webhook_id"] == failing["id"]
    assert delivery["attempt_count"] == 3
    await idle(client)
    assert len(receiver.at("/fail")) == 3
    ops_rows = await db.fetch(
        "SELECT webhook_id FROM deliveries WHERE event_type = 'dispatcher.delivery.failed'"
    )
    assert [r["webhook_id"] for r in ops_rows] == [ops["id"]]


class Turnstile:
    """A responder answering ``status``, one request per :meth:`admit`."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.tokens = asyncio.Semaphore(0)
        self.arrived = 0

    def admit(self) -> None:
        self.tokens.release()

    async def __call__(self, _request: web.Request, _n: int) -> web.StreamResponse:
        self.arrived += 1
        await asyncio.wait_for(self.tokens.acquire(), 30)
        return web.Response(status=self.status, text="gone")


async def test_a_webhook_disabled_by_410_is_announced_once(
    receiver: Receiver, make_client: MakeClient, db: asyncpg.Connection
) -> None:
    """Two attempts in flight both get 410 Gone: one disable, one announcement. The second 410
    arrives for a webhook that is already disabled; it must not be announced again."""
    client = await make_client(max_retries=0, failures_before_disable=-1)
    gone = Turnstile(410)
    receiver.responders["/gone"] = gone
    await create_webhook(client, url=receiver.url("/ops"), event_types=["dispatcher.*"])
    hook = await create_webhook(client, url=receiver.url("/gone"))
    await asyncio.gather(publish(client, i=1), publish(client, i=2))

    async def both_in_flight() -> bool:
        return gone.arrived == 2

    await eventually(both_in_flight, 5, "both attempts to be in flight")
    gone.admit()

    async def announced() -> list[dict[str, Any]] | None:
        return ops_events(receiver, "/ops", "dispatcher.webhook.disabled") or None

    [first] = await eventually(announced, 5, "the disable to be announced")
    assert first["data"]["webhook_id"] == hook["id"]
    assert first["data"]["reason"] == "gone"
    disabled = await get_webhook(client, hook["id"])
    assert disabled["disabled_reason"] == "gone"

    gone.admit()  # the second attempt, sent before the disable, also gets 410
    engine = client.app[ENGINE]

    async def settled() -> bool:
        publisher = client.app.get(OPERATIONAL)
        return (
            len(await attempts_of(db, hook["id"])) == 2
            and not engine._gone_tasks
            and (publisher is None or not publisher._tasks)
        )

    await eventually(settled, 5, "the second outcome and its consequences")
    await idle(client)
    count = await db.fetchval(
        "SELECT count(*) FROM events WHERE type = 'dispatcher.webhook.disabled' "
        "AND data->>'webhook_id' = $1",
        hook["id"],
    )
    assert count == 1, f"one disable announced {count} times"
    after = await get_webhook(client, hook["id"])
    assert after["disabled_at"] == disabled["disabled_at"]
