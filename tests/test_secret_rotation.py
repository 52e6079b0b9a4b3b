"""Rotating a signing secret again and again within the grace period keeps the signature
header small: the current secret and at most three previous ones sign (220 rotations made a
9.6 KB header that receivers with 8 KB header limits refuse)."""

from __future__ import annotations

import asyncpg
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.helpers import ADMIN, Client, create_webhook
from tests.receiver import Receiver


async def rotate(client: Client, webhook_id: str) -> str:
    resp = await client.post(f"/v1/webhooks/{webhook_id}/secret/rotate", headers=ADMIN)
    assert resp.status == 200, await resp.text()
    secret: str = (await resp.json())["secret"]
    return secret


async def test_ten_rotations_sign_with_at_most_four_secrets(
    receiver: Receiver, client: Client, db: asyncpg.Connection
) -> None:
    hook = await create_webhook(client, url=receiver.url("/rotated"))
    secrets = [hook["secret"]] + [await rotate(client, hook["id"]) for _ in range(10)]
    resp = await client.post(f"/v1/webhooks/{hook['id']}/ping", headers=ADMIN)
    assert resp.status == 202, await resp.text()
    [got] = await receiver.wait_for(1, "/rotated")

    signatures = got.headers["webhook-signature"].split(" ")
    assert len(signatures) == 4
    # The newest secret and the three before it verify; the older ones were dropped.
    for secret in secrets[-4:]:
        Webhook(secret).verify(got.body, got.headers)
    for secret in secrets[:-4]:
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(got.body, got.headers)
    stored = await db.fetchval(
        "SELECT count(*) FROM webhook_secrets WHERE webhook_id = $1", hook["id"]
    )
    assert stored == 4
