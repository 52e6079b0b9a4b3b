"""``POST /v1/webhooks/{id}/test``: one event of a type, its first example by default, to one
webhook only; delivered, signed and logged like any other."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient
from standardwebhooks.webhooks import Webhook as StandardWebhook

from tests.helpers import ADMIN, PUBLISHER, webhook_body
from tests.receiver import Receiver

Client = TestClient[Any, Any]

SCHEMA = {"type": "object", "required": ["order"], "properties": {"order": {"type": "integer"}}}
EXAMPLES = [{"order": 1, "note": "first"}, {"order": 2}]


async def webhook(client: Client, receiver: Receiver, path: str = "/hook") -> dict[str, Any]:
    body = webhook_body(url=receiver.url(path), event_types=["order.*"])
    resp = await client.post("/v1/webhooks", json=body, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    created: dict[str, Any] = await resp.json()
    return created


async def register(client: Client, **fields: Any) -> None:
    body = {"name": "order.created", "schema": SCHEMA, "examples": EXAMPLES, **fields}
    resp = await client.post("/v1/event-types", json=body, headers=ADMIN)
    assert resp.status == 201, await resp.text()


async def send(client: Client, webhook_id: str, status: int, **body: Any) -> dict[str, Any]:
    resp = await client.post(f"/v1/webhooks/{webhook_id}/test", json=body, headers=ADMIN)
    assert resp.status == status, await resp.text()
    answer: dict[str, Any] = await resp.json(content_type=None)
    return answer


async def recorded(client: Client, delivery_id: str) -> dict[str, Any]:
    """The delivery once its outcome is written (outcomes are committed in the background)."""
    for _ in range(1000):
        resp = await client.get(f"/v1/deliveries/{delivery_id}", headers=ADMIN)
        detail: dict[str, Any] = await resp.json()
        if detail["attempts"] and detail["status"] != "created":
            return detail
        await asyncio.sleep(0.01)
    raise AssertionError(f"no outcome recorded for {delivery_id}")


async def test_the_first_example_reaches_this_webhook_only_signed_and_logged(
    client: Client, receiver: Receiver, db: asyncpg.Connection
) -> None:
    await register(client)
    target = await webhook(client, receiver, "/target")
    other = await webhook(client, receiver, "/other")  # subscribed to order.* too
    answer = await send(client, target["id"], 202, event_type="order.created")
    assert answer["type"] == "order.created" and answer["deliveries"] == 1
    [got] = await receiver.wait_for(1, "/target")
    body = got.json()
    assert body["type"] == "order.created"
    assert body["id"] == answer["id"]
    assert body["data"] == EXAMPLES[0]
    StandardWebhook(target["secret"]).verify(got.body, got.headers)

    resp = await client.get(f"/v1/webhooks/{target['id']}/deliveries", headers=ADMIN)
    [delivery] = (await resp.json())["data"]
    assert delivery["event_id"] == answer["id"]
    detail = await recorded(client, delivery["id"])
    assert detail["status"] == "success"
    assert [a["status_code"] for a in detail["attempts"]] == [200]

    # A real publish after it reaches the other webhook: had the test gone there, it came first.
    resp = await client.post(
        "/v1/events", json={"type": "order.created", "data": {"order": 9}}, headers=PUBLISHER
    )
    assert resp.status == 202
    [first] = await receiver.wait_for(1, "/other")
    assert first.json()["data"] == {"order": 9}
    assert other["id"] != target["id"]


async def test_given_data_is_sent_instead_of_the_example(
    client: Client, receiver: Receiver
) -> None:
    await register(client)
    target = await webhook(client, receiver)
    await send(client, target["id"], 202, event_type="order.created", data={"order": 7})
    [got] = await receiver.wait_for(1)
    assert got.json()["data"] == {"order": 7}


async def test_an_unregistered_type_needs_data(client: Client, receiver: Receiver) -> None:
    target = await webhook(client, receiver)
    answer = await send(client, target["id"], 422, event_type="order.shipped")
    assert [e["field"] for e in answer["errors"]] == ["data"]
    await send(client, target["id"], 202, event_type="order.shipped", data=None)
    [got] = await receiver.wait_for(1)
    assert got.json()["data"] is None


async def test_a_type_without_examples_needs_data(
    client: Client, receiver: Receiver, db: asyncpg.Connection
) -> None:
    await register(client, examples=[])
    target = await webhook(client, receiver)
    answer = await send(client, target["id"], 422, event_type="order.created")
    assert [e["field"] for e in answer["errors"]] == ["data"]
    assert await db.fetchval("SELECT count(*) FROM events") == 0


async def test_data_breaking_the_schema_is_a_422_and_nothing_is_sent(
    client: Client, receiver: Receiver, db: asyncpg.Connection
) -> None:
    await register(client)
    target = await webhook(client, receiver)
    answer = await send(
        client, target["id"], 422, event_type="order.created", data={"order": "one"}
    )
    message = '"one" is not of type "integer"'
    assert answer["errors"] == [{"field": "data.order", "message": message}]
    assert await db.fetchval("SELECT count(*) FROM events") == 0


async def test_unknown_webhook_is_404_and_a_disabled_one_409(
    client: Client, receiver: Receiver
) -> None:
    await register(client)
    await send(client, "wh_missing", 404, event_type="order.created")
    target = await webhook(client, receiver)
    resp = await client.post(f"/v1/webhooks/{target['id']}/disable", headers=ADMIN)
    assert resp.status == 200
    await send(client, target["id"], 409, event_type="order.created")


async def test_a_bad_body_is_a_422(client: Client, receiver: Receiver) -> None:
    target = await webhook(client, receiver)
    answer = await send(client, target["id"], 422, event_type="not a name")
    assert [e["field"] for e in answer["errors"]] == ["event_type"]
    answer = await send(client, target["id"], 422, event_type="a", extra=1)
    assert [e["field"] for e in answer["errors"]] == ["extra"]
