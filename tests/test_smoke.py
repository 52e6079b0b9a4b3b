from __future__ import annotations

from typing import Any

from tests.helpers import ADMIN, webhook_body


async def test_create_and_get_webhook(client: Any) -> None:
    resp = await client.post("/v1/webhooks", json=webhook_body(), headers=ADMIN)
    assert resp.status == 201
    created = await resp.json()
    assert created["secret"].startswith("whsec_")
    resp = await client.get(f"/v1/webhooks/{created['id']}", headers=ADMIN)
    assert resp.status == 200
    assert (await resp.json())["name"] == "orders"
