"""``POST /v1/webhooks/{id}/test`` follows the producers' rules: no ``dispatcher.*`` type (it
would forge an operational event, signed like a real one) and no data over the payload limit.
Either is refused with nothing stored or sent."""

from __future__ import annotations

import asyncpg
import pytest

from tests.helpers import ADMIN, MakeClient, assert_problem, create_webhook
from tests.receiver import Receiver


@pytest.mark.parametrize(
    "event_type", ["dispatcher.webhook.disabled", "dispatcher.delivery.failed", "dispatcher.x"]
)
async def test_a_test_send_of_a_reserved_type_is_422(
    receiver: Receiver, make_client: MakeClient, db: asyncpg.Connection, event_type: str
) -> None:
    client = await make_client()
    hook = await create_webhook(client, url=receiver.url("/t"), event_types=["*"])
    resp = await client.post(
        f"/v1/webhooks/{hook['id']}/test",
        json={"event_type": event_type, "data": {"webhook_id": hook["id"]}},
        headers=ADMIN,
    )
    assert resp.status == 422, await resp.text()
    body = await resp.json()
    assert_problem(body, 422)
    assert [e["field"] for e in body["errors"]] == ["event_type"]
    assert await db.fetchval("SELECT count(*) FROM events") == 0


async def test_a_test_send_with_data_over_the_payload_limit_is_413(
    receiver: Receiver, make_client: MakeClient, db: asyncpg.Connection
) -> None:
    client = await make_client(max_payload_bytes=2048)
    hook = await create_webhook(client, url=receiver.url("/t"))
    url = f"/v1/webhooks/{hook['id']}/test"
    resp = await client.post(
        url, json={"event_type": "order.created", "data": {"pad": "x" * 3000}}, headers=ADMIN
    )
    assert resp.status == 413, await resp.text()
    assert_problem(await resp.json(), 413)
    # An example (up to 256 KiB in the catalogue) sent as the data is held to the limit too.
    example = {"name": "order.big", "examples": [{"pad": "x" * 3000}]}
    resp = await client.post("/v1/event-types", json=example, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    resp = await client.post(url, json={"event_type": "order.big"}, headers=ADMIN)
    assert resp.status == 413, await resp.text()
    assert "data" in (await resp.json())["detail"]
    assert await db.fetchval("SELECT count(*) FROM events") == 0
    # Under the limit it is sent as before.
    resp = await client.post(
        url, json={"event_type": "order.created", "data": {"pad": "x" * 1000}}, headers=ADMIN
    )
    assert resp.status == 202, await resp.text()
    await receiver.wait_for(1, "/t")
