"""Tenants on the data path: tenant_id on webhooks, events and deliveries, fan-out confined to
the event's tenant, the admin's ``?tenant_id=`` filters, operational events about a tenant's
webhook, "send what was missed" per tenant, and the registry's set of tenant ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from dispatcher.app_keys import REGISTRY
from dispatcher.fanout import Routing, targets
from dispatcher.matching import Matcher
from dispatcher.registry import Registry, WebhookSpec
from tests.helpers import (
    ADMIN,
    PUBLISHER,
    Client,
    MakeClient,
    answer,
    assert_problem,
    call,
    create_webhook,
    idle,
    propagated,
    two,
    webhook_body,
)
from tests.receiver import Receiver

pytestmark = pytest.mark.timeout(60)


async def new_tenant(client: Client, tenant_id: str) -> None:
    await call(client, "POST", "/v1/tenants", 201, json={"id": tenant_id, "name": tenant_id})


async def tenant_token(client: Client, tenant_id: str) -> dict[str, str]:
    made = await call(client, "POST", f"/v1/tenants/{tenant_id}/tokens", 201, json={})
    return {"Authorization": f"Bearer {made['token']}"}


async def send(client: Client, body: dict[str, Any], status: int = 202) -> Any:
    resp = await client.post("/v1/events", json=body, headers=PUBLISHER)
    assert resp.status == status, await resp.text()
    return await resp.json(content_type=None)


# --------------------------------------------------------------------------------------------
# fan-out without a database


def spec(webhook_id: str, tenant_id: str | None, patterns: list[str]) -> WebhookSpec:
    return WebhookSpec(
        id=webhook_id,
        url="http://127.0.0.1:9/hook",
        matcher=Matcher.compile(patterns),
        enabled=True,
        headers=(),
        include_payload=True,
        max_retries=None,
        timeout_seconds=None,
        rate_limit_per_second=None,
        max_in_flight=None,
        tenant_id=tenant_id,
    )


def registry_of(*specs: WebhookSpec) -> Registry:
    registry = Registry()
    for s in specs:
        registry.webhooks[s.id] = s
        registry._by_tenant.setdefault(s.tenant_id, {})[s.id] = s
    return registry


def test_fan_out_stays_inside_the_event_tenant() -> None:
    registry = registry_of(
        spec("op", None, ["order.*", "dispatcher.*"]),
        spec("a1", "a", ["order.*", "dispatcher.*"]),
        spec("a2", "a", ["invoice.*"]),
        spec("b1", "b", ["*", "dispatcher.*"]),
    )
    assert [w.id for w in targets(registry, "order.created")] == ["op"]
    assert [w.id for w in targets(registry, "order.created", tenant_id="a")] == ["a1"]
    assert [w.id for w in targets(registry, "order.created", tenant_id="b")] == ["b1"]
    assert targets(registry, "order.created", tenant_id="nobody") == []
    # An operational event about a1: the operator's subscribers and a's, never b's nor a1.
    about_a1 = Routing(exclude="a1", operator_too=True)
    assert [w.id for w in targets(registry, "dispatcher.webhook.disabled", about_a1, "a")] == ["op"]
    about_a2 = Routing(exclude="a2", operator_too=True)
    assert sorted(
        w.id for w in targets(registry, "dispatcher.webhook.disabled", about_a2, "a")
    ) == ["a1", "op"]
    # A ping addressed to a webhook of another tenant than the event's goes nowhere.
    assert targets(registry, "webhook.ping", Routing(only="b1"), "a") == []
    assert [w.id for w in targets(registry, "webhook.ping", Routing(only="b1"), "b")] == ["b1"]


def test_a_changed_webhook_drops_only_its_tenant_cached_answers() -> None:
    registry = registry_of(spec("a1", "a", ["order.*"]), spec("b1", "b", ["order.*"]))
    assert [w.id for w in registry.targets("order.created", "a")] == ["a1"]
    assert [w.id for w in registry.targets("order.created", "b")] == ["b1"]
    registry._forget(registry.webhooks.pop("a1"))
    assert registry.targets("order.created", "a") == []
    assert [w.id for w in registry.targets("order.created", "b")] == ["b1"]


# --------------------------------------------------------------------------------------------
# the API


async def test_webhooks_belong_to_the_tenant_named_or_to_the_tenant_token(
    client: Client,
) -> None:
    await new_tenant(client, "acme")
    await new_tenant(client, "globex")
    mine = await create_webhook(client, tenant_id="acme")
    assert mine["tenant_id"] == "acme"
    operator = await create_webhook(client)
    assert operator["tenant_id"] is None

    resp = await client.post("/v1/webhooks", json=hook(tenant_id="initech"), headers=ADMIN)
    body = await resp.json()
    assert resp.status == 422
    assert_problem(body, 422)
    assert body["errors"] == [{"field": "tenant_id", "message": "no tenant has this id"}]

    token = await tenant_token(client, "acme")
    resp = await client.post("/v1/webhooks", json=hook(), headers=token)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["tenant_id"] == "acme"
    # Naming its own tenant is fine; naming another (existing or not) is not.
    resp = await client.post("/v1/webhooks", json=hook(tenant_id="acme"), headers=token)
    assert resp.status == 201
    for other in ("globex", "initech"):
        resp = await client.post("/v1/webhooks", json=hook(tenant_id=other), headers=token)
        body = await resp.json()
        assert resp.status == 422, body
        assert body["errors"][0]["field"] == "tenant_id"
        assert other not in body["detail"]
    listed = await call(client, "GET", "/v1/webhooks?tenant_id=acme", 200)
    assert {w["tenant_id"] for w in listed["data"]} == {"acme"} and len(listed["data"]) == 3
    assert (await call(client, "GET", "/v1/webhooks?tenant_id=globex", 200))["data"] == []
    assert len((await call(client, "GET", "/v1/webhooks", 200))["data"]) == 4
    resp = await client.get("/v1/webhooks?tenant_id=no%20spaces", headers=ADMIN)
    assert resp.status == 422


def hook(**overrides: Any) -> dict[str, Any]:
    return {"name": "h", "url": "http://127.0.0.1:9/hook", "event_types": ["order.*"], **overrides}


async def test_an_event_reaches_only_its_tenant_webhooks(
    client: Client, receiver: Receiver, db: asyncpg.Connection
) -> None:
    await new_tenant(client, "acme")
    await new_tenant(client, "globex")
    await create_webhook(client, url=receiver.url("/op"), event_types=["*"])
    acme = await create_webhook(client, url=receiver.url("/acme"), tenant_id="acme")
    await create_webhook(
        client, url=receiver.url("/acme-invoices"), tenant_id="acme", event_types=["invoice.*"]
    )
    await create_webhook(client, url=receiver.url("/globex"), tenant_id="globex")

    for_acme = await send(client, {"type": "order.created", "data": {"n": 1}, "tenant_id": "acme"})
    assert for_acme["deliveries"] == 1
    for_operator = await send(client, {"type": "order.created", "data": {"n": 2}})
    assert for_operator["deliveries"] == 1
    await receiver.wait_for(1, "/acme")
    await receiver.wait_for(1, "/op")
    await idle(client)
    assert [r.json()["id"] for r in receiver.at("/acme")] == [for_acme["id"]]
    assert [r.json()["id"] for r in receiver.at("/op")] == [for_operator["id"]]
    assert receiver.at("/globex") == [] and receiver.at("/acme-invoices") == []

    event = await call(client, "GET", f"/v1/events/{for_acme['id']}", 200)
    assert event["tenant_id"] == "acme"
    [delivery] = (await call(client, "GET", f"/v1/deliveries?event_id={for_acme['id']}", 200))[
        "data"
    ]
    assert delivery["tenant_id"] == "acme" and delivery["webhook_id"] == acme["id"]
    events = await call(client, "GET", "/v1/events?tenant_id=acme", 200)
    assert [e["id"] for e in events["data"]] == [for_acme["id"]]
    deliveries = await call(client, "GET", "/v1/deliveries?tenant_id=acme", 200)
    assert [d["id"] for d in deliveries["data"]] == [delivery["id"]]
    assert (await call(client, "GET", "/v1/deliveries?tenant_id=globex", 200))["data"] == []


async def test_an_unknown_tenant_is_refused_and_nothing_is_stored(
    client: Client, db: asyncpg.Connection
) -> None:
    await new_tenant(client, "acme")
    body = await send(client, {"type": "order.created", "data": {}, "tenant_id": "nope"}, 422)
    assert body["errors"] == [{"field": "tenant_id", "message": "no tenant has this id"}]
    resp = await client.post(
        "/v1/events/batch",
        json={
            "events": [
                {"type": "order.created", "data": {}, "tenant_id": "acme"},
                {"type": "order.created", "data": {}, "tenant_id": "nope"},
            ]
        },
        headers=PUBLISHER,
    )
    body = await resp.json()
    assert resp.status == 422, body
    assert body["errors"][0]["field"] == "events[1].tenant_id"
    assert await db.fetchval("SELECT count(*) FROM events") == 0


async def test_a_tenant_created_on_another_instance_is_known_without_asking_the_database(
    make_client: MakeClient,
) -> None:
    a, b = await two(make_client)
    await new_tenant(a, "acme")
    await propagated(lambda: "acme" in b.app[REGISTRY].tenants, "B to know the tenant")
    await call(a, "DELETE", "/v1/tenants/acme", 204)
    await propagated(lambda: "acme" not in b.app[REGISTRY].tenants, "B to forget the tenant")
    body = await send(b, {"type": "order.created", "data": {}, "tenant_id": "acme"}, 422)
    assert body["errors"][0]["field"] == "tenant_id"


async def test_operational_events_about_a_tenant_webhook_reach_the_operator_and_that_tenant(
    make_client: MakeClient, receiver: Receiver
) -> None:
    client = await make_client(max_retries=0)
    await new_tenant(client, "acme")
    await new_tenant(client, "globex")
    receiver.responders["/gone"] = answer(410)
    for path, tenant in (("/op", None), ("/acme-ops", "acme"), ("/globex-ops", "globex")):
        await create_webhook(
            client, url=receiver.url(path), event_types=["dispatcher.*"], tenant_id=tenant
        )
    gone = await create_webhook(client, url=receiver.url("/gone"), tenant_id="acme")
    await send(client, {"type": "order.created", "data": {}, "tenant_id": "acme"})
    # The 410 disables the webhook and fails its delivery: two events, both about it.
    to_operator = await receiver.wait_for(2, "/op")
    to_acme = await receiver.wait_for(2, "/acme-ops")
    for got in (to_operator, to_acme):
        assert sorted(r.json()["type"] for r in got) == [
            "dispatcher.delivery.failed",
            "dispatcher.webhook.disabled",
        ]
        assert {r.json()["data"]["webhook_id"] for r in got} == {gone["id"]}
    await idle(client)
    assert receiver.at("/globex-ops") == []
    assert len(receiver.at("/op")) == 2 and len(receiver.at("/acme-ops")) == 2
    # The tenant sees the event and its own delivery of it, not the operator's.
    token = await tenant_token(client, "acme")
    resp = await client.get(f"/v1/events/{to_acme[0].json()['id']}", headers=token)
    event = await resp.json()
    assert resp.status == 200 and sum(event["deliveries"].values()) == 1


async def test_send_what_was_missed_takes_only_the_webhook_tenant_events(
    client: Client, receiver: Receiver
) -> None:
    await new_tenant(client, "acme")
    await new_tenant(client, "globex")
    since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    acme = await send(client, {"type": "order.created", "data": {}, "tenant_id": "acme"})
    await send(client, {"type": "order.created", "data": {}, "tenant_id": "globex"})
    operator = await send(client, {"type": "order.created", "data": {}})
    late_acme = await create_webhook(client, url=receiver.url("/acme"), tenant_id="acme")
    late_op = await create_webhook(client, url=receiver.url("/op"))
    for webhook, expected in ((late_acme, acme), (late_op, operator)):
        replayed = await call(
            client,
            "POST",
            f"/v1/webhooks/{webhook['id']}/replay",
            202,
            json={"status": "missing", "since": since},
        )
        assert replayed == {"count": 1}
        path = "/acme" if webhook is late_acme else "/op"
        [got] = await receiver.wait_for(1, path)
        assert got.json()["id"] == expected["id"]

    await idle(client)
    assert len(receiver.at("/acme")) == 1 and len(receiver.at("/op")) == 1


async def test_a_tenant_deleted_while_its_webhook_is_created_is_a_422_and_stores_nothing(
    client: Client, db: asyncpg.Connection
) -> None:
    """The tenant passes the check, then is gone when the webhook is written (a race)."""
    await call(client, "POST", "/v1/tenants", 201, json={"id": "gone", "name": "Gone"})
    await call(client, "POST", "/v1/webhooks", 201, json={**webhook_body(), "tenant_id": "gone"})
    # Deleted behind the instance's back (no NOTIFY): its registry still knows the tenant.
    await db.execute("DELETE FROM webhook_secrets; DELETE FROM webhooks; DELETE FROM tenants")
    resp = await client.post(
        "/v1/webhooks", json={**webhook_body(), "tenant_id": "gone"}, headers=ADMIN
    )
    assert resp.status == 422, await resp.text()
    problem = await resp.json(content_type=None)
    assert problem["errors"] == [
        {"field": "tenant_id", "message": "refers to something that no longer exists"}
    ]
    assert await db.fetchval("SELECT count(*) FROM webhooks") == 0
