"""A tenant's webhook never exceeds the operator's per-webhook in-flight cap: the engine's spec
is clamped to DISPATCHER_MAX_IN_FLIGHT_PER_WEBHOOK, and a tenant token asking for more is 422."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from dispatcher.app_keys import POOL, REGISTRY
from tests.helpers import MakeClient, assert_problem, call, webhook_body
from tests.test_portal import make_tenant, sign_in
from tests.test_tenant_tokens import bearer, new_tenant, new_token

pytestmark = pytest.mark.timeout(60)


async def test_a_tenants_webhook_is_held_to_the_cap_the_operators_is_not(
    make_client: MakeClient,
) -> None:
    client = await make_client(max_in_flight_per_webhook=10)
    await new_tenant(client)
    theirs = await call(
        client,
        "POST",
        "/v1/webhooks",
        201,
        json=webhook_body(tenant_id="acme", max_in_flight=1000),
    )
    ours = await call(client, "POST", "/v1/webhooks", 201, json=webhook_body(max_in_flight=1000))
    registry = client.app[REGISTRY]
    assert registry.webhooks[theirs["id"]].max_in_flight == 10
    assert registry.webhooks[ours["id"]].max_in_flight == 1000
    # A full reload (another instance starting, the periodic reload) clamps alike.
    await registry.load(client.app[POOL])
    assert registry.webhooks[theirs["id"]].max_in_flight == 10
    assert registry.webhooks[ours["id"]].max_in_flight == 1000


async def test_a_tenant_token_may_not_ask_for_more_than_the_cap(
    make_client: MakeClient, db: asyncpg.Connection
) -> None:
    client = await make_client(max_in_flight_per_webhook=10)
    await new_tenant(client)
    tenant = bearer(await new_token(client))

    resp = await client.post("/v1/webhooks", json=webhook_body(max_in_flight=11), headers=tenant)
    body: dict[str, Any] = await resp.json()
    assert resp.status == 422, body
    assert_problem(body, 422)
    assert [e["field"] for e in body["errors"]] == ["max_in_flight"]
    assert await db.fetchval("SELECT count(*) FROM webhooks") == 0

    resp = await client.post("/v1/webhooks", json=webhook_body(max_in_flight=10), headers=tenant)
    assert resp.status == 201, await resp.text()
    webhook_id = (await resp.json())["id"]
    resp = await client.patch(
        f"/v1/webhooks/{webhook_id}", json={"max_in_flight": 1000}, headers=tenant
    )
    body = await resp.json()
    assert resp.status == 422, body
    assert [e["field"] for e in body["errors"]] == ["max_in_flight"]
    stored = await db.fetchval("SELECT max_in_flight FROM webhooks WHERE id = $1", webhook_id)
    assert stored == 10


async def test_the_portal_form_refuses_more_than_the_cap(
    make_client: MakeClient, db: asyncpg.Connection
) -> None:
    client = await make_client(max_in_flight_per_webhook=10)
    await make_tenant(client, "acme", "Acme Inc.")
    portal = await sign_in(client, "acme")
    form = {
        "csrf_token": await portal.csrf(),
        "name": "From the portal",
        "url": "http://127.0.0.1:9/hook",
        "event_types": "order.*",
        "include_payload": "on",
        "enabled": "on",
        "max_in_flight": "11",
    }
    answer = await portal.post("/portal/webhooks/new", form)
    assert answer.status == 422
    page = await answer.text()
    assert 'id="max_in_flight-error"' in page, page
    assert await db.fetchval("SELECT count(*) FROM webhooks") == 0

    answer = await portal.post("/portal/webhooks/new", {**form, "max_in_flight": "10"})
    assert answer.status == 303, await answer.text()
    webhook_id = await db.fetchval("SELECT id FROM webhooks")
    answer = await portal.post(
        f"/portal/webhooks/{webhook_id}/edit", {**form, "max_in_flight": "1000"}
    )
    assert answer.status == 422
    stored = await db.fetchval("SELECT max_in_flight FROM webhooks WHERE id = $1", webhook_id)
    assert stored == 10
