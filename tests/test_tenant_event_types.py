"""Disabled event types and tenants: a tenant token sees only enabled types (a disabled one is
404 like a missing name), and nobody can test-send a disabled type; pings still go."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from dispatcher.fanout import Routing, targets
from tests.helpers import ADMIN, Client, assert_problem, call, webhook_body
from tests.receiver import Receiver
from tests.test_tenant_routing import registry_of, spec
from tests.test_tenant_tokens import bearer, new_tenant, new_token

pytestmark = pytest.mark.timeout(60)


async def catalogue(client: Client) -> None:
    for name, enabled in (("order.created", True), ("order.secret", False)):
        body = {"name": name, "enabled": enabled, "examples": [{"n": 1}]}
        await call(client, "POST", "/v1/event-types", 201, json=body)


async def test_a_tenant_sees_only_enabled_types(client: Client) -> None:
    await catalogue(client)
    await new_tenant(client)
    tenant = bearer(await new_token(client))

    resp = await client.get("/v1/event-types", headers=tenant)
    assert resp.status == 200
    assert [t["name"] for t in (await resp.json())["data"]] == ["order.created"]
    resp = await client.get("/v1/event-types/order.secret", headers=tenant)
    hidden = await resp.json()
    assert resp.status == 404
    assert_problem(hidden, 404)
    resp = await client.get("/v1/event-types/order.nothing", headers=tenant)
    missing = await resp.json()
    assert resp.status == 404
    assert {k: v for k, v in hidden.items() if k not in ("detail", "instance")} == {
        k: v for k, v in missing.items() if k not in ("detail", "instance")
    }
    resp = await client.get("/v1/event-types/order.created", headers=tenant)
    assert resp.status == 200

    # The operator still sees and reads everything.
    resp = await client.get("/v1/event-types", headers=ADMIN)
    assert [t["name"] for t in (await resp.json())["data"]] == ["order.created", "order.secret"]
    resp = await client.get("/v1/event-types/order.secret", headers=ADMIN)
    assert resp.status == 200


async def test_a_disabled_type_cannot_be_test_sent_but_a_ping_goes(
    client: Client, receiver: Receiver, db: asyncpg.Connection
) -> None:
    await catalogue(client)
    await new_tenant(client)
    tenant = bearer(await new_token(client))
    hook = webhook_body(url=receiver.url("/t"), event_types=["order.*"])
    resp = await client.post("/v1/webhooks", json=hook, headers=tenant)
    assert resp.status == 201, await resp.text()
    webhook_id = (await resp.json())["id"]

    for headers in (tenant, ADMIN):
        resp = await client.post(
            f"/v1/webhooks/{webhook_id}/test", json={"event_type": "order.secret"}, headers=headers
        )
        body: dict[str, Any] = await resp.json()
        assert resp.status == 409, body
        assert_problem(body, 409)
        assert body["type"].endswith("conflict")
        assert "the event type is disabled" in body["detail"].lower()
    assert await db.fetchval("SELECT count(*) FROM events") == 0

    # Even with webhook.ping disabled in the catalogue, a ping is sent.
    body = {"name": "webhook.ping", "enabled": False}
    await call(client, "POST", "/v1/event-types", 201, json=body)
    resp = await client.post(f"/v1/webhooks/{webhook_id}/ping", headers=tenant)
    assert resp.status == 202, await resp.text()
    [got] = await receiver.wait_for(1, "/t")
    assert got.json()["type"] == "webhook.ping"


def test_fan_out_to_one_webhook_skips_a_disabled_type_not_a_ping() -> None:
    registry = registry_of(spec("a1", "a", ["*"]))
    registry.disabled_types = frozenset({"order.secret", "webhook.ping"})
    only = Routing(only="a1")
    assert targets(registry, "order.secret", only, "a") == []
    assert [w.id for w in targets(registry, "order.created", only, "a")] == ["a1"]
    assert [w.id for w in targets(registry, "webhook.ping", only, "a")] == ["a1"]
