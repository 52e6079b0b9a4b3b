from __future__ import annotations

from typing import Any

from standardwebhooks.webhooks import Webhook
from svix.webhooks import Webhook as SvixWebhook

from tests.helpers import ADMIN, PUBLISHER, webhook_body


async def test_event_reaches_receiver_signed(client: Any, receiver: Any) -> None:
    resp = await client.post("/v1/webhooks", json=webhook_body(url=receiver.url()), headers=ADMIN)
    hook = await resp.json()
    resp = await client.post(
        "/v1/events", json={"type": "order.created", "data": {"n": 1}}, headers=PUBLISHER
    )
    assert resp.status == 202, await resp.text()
    answer = await resp.json()
    assert answer["deliveries"] == 1
    [got] = await receiver.wait_for(1)
    Webhook(hook["secret"]).verify(got.body, got.headers)
    SvixWebhook(hook["secret"]).verify(got.body, got.headers)
    assert got.json()["data"] == {"n": 1}
    assert got.headers["webhook-id"] == answer["id"]
