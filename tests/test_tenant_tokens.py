"""Tenant tokens: what they may call, and that an expired, revoked or orphaned token stops
working at once on every instance (tokens are looked up in Postgres on each request)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from dispatcher.app_keys import REGISTRY
from dispatcher.auth import TENANT_PREFIXES, TENANT_ROUTES, tenant_may_call
from dispatcher.openapi import operations
from tests.helpers import (
    PROPAGATION,
    Client,
    MakeClient,
    assert_problem,
    call,
    create_webhook,
    deliveries_of,
    eventually,
    propagated,
    publish,
    two,
)

pytestmark = pytest.mark.timeout(60)


async def new_tenant(client: Client, tenant_id: str = "acme") -> None:
    await call(client, "POST", "/v1/tenants", 201, json={"id": tenant_id, "name": tenant_id})


async def new_token(client: Client, tenant_id: str = "acme", **body: Any) -> dict[str, Any]:
    made: dict[str, Any] = await call(
        client, "POST", f"/v1/tenants/{tenant_id}/tokens", 201, json=body
    )
    return made


def bearer(token: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token['token']}"}


async def status(client: Client, token: dict[str, Any], path: str = "/v1/webhooks") -> int:
    resp = await client.get(path, headers=bearer(token))
    await resp.read()
    return resp.status


async def refused(resp: Any, code: int) -> dict[str, Any]:
    assert resp.status == code, await resp.text()
    body: dict[str, Any] = await resp.json(content_type=None)
    assert_problem(body, code)
    return body


# --------------------------------------------------------------------------------------------
# the route table


def test_the_route_table_is_what_the_contract_lists() -> None:
    allowed = [
        ("GET", "/v1/webhooks"),
        ("POST", "/v1/webhooks"),
        ("PATCH", "/v1/webhooks/{id}"),
        ("DELETE", "/v1/webhooks/{id}"),
        ("POST", "/v1/webhooks/{id}/secret/rotate"),
        ("GET", "/v1/webhooks/{id}/deliveries"),
        ("GET", "/v1/deliveries"),
        ("GET", "/v1/deliveries/{id}"),
        ("POST", "/v1/deliveries/{id}/retry"),
        ("GET", "/v1/events"),
        ("HEAD", "/v1/events"),
        ("GET", "/v1/events/{id}"),
        ("GET", "/v1/event-types"),
        ("GET", "/v1/event-types/{name}"),
        ("GET", "/v1/catalogue"),
    ]
    refused_routes = [
        ("POST", "/v1/events"),
        ("POST", "/v1/events/batch"),
        ("POST", "/v1/event-types"),
        ("PATCH", "/v1/event-types/{name}"),
        ("DELETE", "/v1/event-types/{name}"),
        ("GET", "/v1/tenants"),
        ("POST", "/v1/tenants"),
        ("GET", "/v1/tenants/{id}"),
        ("POST", "/v1/tenants/{id}/tokens"),
        ("POST", "/v1/tenants/{id}/portal"),
        ("DELETE", "/v1/webhooksX"),
        ("GET", "/v1/webhooks{id}"),
        ("PUT", "/v1/deliveries"),
    ]
    assert all(tenant_may_call(m, r) for m, r in allowed)
    assert not any(tenant_may_call(m, r) for m, r in refused_routes)


async def test_every_route_the_table_names_exists(client: Client) -> None:
    """A renamed route would silently leave tenants locked out of it."""
    served = {(m, p) for m, p, _ in operations(client.app)}
    assert served >= TENANT_ROUTES
    paths = {p for _, p in served}
    assert all(prefix in paths for prefix in TENANT_PREFIXES)


# --------------------------------------------------------------------------------------------
# what a tenant token may call


async def test_a_tenant_token_reads_what_a_tenant_may(client: Client) -> None:
    await new_tenant(client)
    token = await new_token(client)
    for path in ("/v1/webhooks", "/v1/deliveries", "/v1/events", "/v1/event-types"):
        assert await status(client, token, path) == 200, path
    assert await status(client, token, "/v1/catalogue") == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/events", {"type": "order.created", "data": {}}),
        ("POST", "/v1/events/batch", {"events": [{"type": "order.created", "data": {}}]}),
        ("POST", "/v1/event-types", {"name": "order.created"}),
        ("PATCH", "/v1/event-types/order.created", {"description": "x"}),
        ("DELETE", "/v1/event-types/order.created", None),
        ("GET", "/v1/tenants", None),
        ("POST", "/v1/tenants", {"id": "evil", "name": "evil"}),
        ("GET", "/v1/tenants/acme", None),
        ("DELETE", "/v1/tenants/acme", None),
        ("POST", "/v1/tenants/acme/tokens", {}),
        ("GET", "/v1/tenants/acme/tokens", None),
        ("POST", "/v1/tenants/acme/portal", {}),
    ],
)
async def test_a_tenant_token_is_403_elsewhere_and_changes_nothing(
    client: Client, db: asyncpg.Connection, method: str, path: str, body: Any
) -> None:
    await new_tenant(client)
    token = await new_token(client)
    resp = await client.request(method, path, json=body, headers=bearer(token))
    await refused(resp, 403)
    assert await db.fetchval("SELECT count(*) FROM events") == 0
    assert await db.fetchval("SELECT count(*) FROM event_types") == 0
    assert await db.fetchval("SELECT count(*) FROM tenants") == 1
    assert await db.fetchval("SELECT count(*) FROM tenant_tokens") == 1
    assert await db.fetchval("SELECT count(*) FROM portal_links") == 0


async def test_an_unknown_route_is_404_to_a_tenant_token(client: Client) -> None:
    await new_tenant(client)
    token = await new_token(client)
    resp = await client.get("/v1/nothing-here", headers=bearer(token))
    await refused(resp, 404)


@pytest.mark.parametrize(
    "presented",
    [
        "dsp_tenant_" + "A" * 43,
        "dsp_tenant_",
        "dsp_tenant_" + "x" * 500,
        "dsp_tenant_\u00e9",
    ],
    ids=["unknown", "prefix-only", "long", "non-ascii"],
)
async def test_a_made_up_tenant_token_is_401(client: Client, presented: str) -> None:
    resp = await client.get(
        "/v1/webhooks", headers={"Authorization": f"Bearer {presented}".encode().decode("latin-1")}
    )
    body = await refused(resp, 401)
    assert presented not in body["detail"]
    assert "invalid_token" in resp.headers["WWW-Authenticate"]


# --------------------------------------------------------------------------------------------
# expiry, revocation, deletion of the tenant


async def test_an_expired_token_is_401(client: Client, db: asyncpg.Connection) -> None:
    await new_tenant(client)
    token = await new_token(client, expires_in=60)
    assert await status(client, token) == 200
    # An hour passes (moved in the database: the server compares with Postgres's clock).
    await db.execute(
        "UPDATE tenant_tokens SET expires_at = now() - interval '1 second' WHERE id = $1",
        token["id"],
    )
    assert await status(client, token) == 401
    # Expired tokens are still listed (with their expiry), so the operator sees what lapsed.
    listed = await call(client, "GET", "/v1/tenants/acme/tokens", 200)
    assert [t["id"] for t in listed["data"]] == [token["id"]]


async def test_a_token_without_expiry_works_until_revoked(client: Client) -> None:
    await new_tenant(client)
    token = await new_token(client)
    other = await new_token(client)
    assert await status(client, token) == 200
    await call(client, "DELETE", f"/v1/tenants/acme/tokens/{token['id']}", 204)
    assert await status(client, token) == 401
    assert await status(client, other) == 200


async def test_a_revocation_through_one_instance_applies_on_another_within_a_second(
    make_client: MakeClient,
) -> None:
    a, b = await two(make_client)
    await new_tenant(a)
    token = await new_token(a)
    assert await status(b, token) == 200
    await call(a, "DELETE", f"/v1/tenants/acme/tokens/{token['id']}", 204)

    async def refused_on_b() -> bool:
        return await status(b, token) == 401

    await eventually(refused_on_b, PROPAGATION, "B to refuse the revoked token")


async def test_deleting_a_tenant_ends_its_tokens_links_and_webhooks_everywhere(
    make_client: MakeClient, db: asyncpg.Connection
) -> None:
    a, b = await two(make_client)
    await new_tenant(a)
    await new_tenant(a, "other")
    token = await new_token(a)
    kept = await new_token(a, "other")
    await call(a, "POST", "/v1/tenants/acme/portal", 201, json={})
    # A webhook of the tenant's with a delivery unfinished (its URL refuses connections, so it
    # is retried for a long time), and the operator's own webhook, which stays.
    hook = await create_webhook(a, event_types=["order.created"])
    mine = await create_webhook(a, event_types=["other.thing"])
    await publish(a)
    await db.execute("UPDATE webhooks SET tenant_id = 'acme' WHERE id = $1", hook["id"])
    [waiting] = await deliveries_of(db, hook["id"])
    assert waiting["status"] in ("created", "retrying")
    await propagated(lambda: hook["id"] in b.app[REGISTRY].webhooks, "B to learn the webhook")

    await call(a, "DELETE", "/v1/tenants/acme", 204)

    assert await status(a, token) == 401 and await status(b, token) == 401
    assert await status(b, kept) == 200
    await call(a, "GET", "/v1/tenants/acme", 404)
    await call(a, "GET", f"/v1/webhooks/{hook['id']}", 404)
    await call(a, "GET", f"/v1/webhooks/{mine['id']}", 200)
    [cancelled] = await deliveries_of(db, hook["id"])
    assert cancelled["status"] == "cancelled"
    assert await db.fetchval("SELECT count(*) FROM portal_links") == 0
    assert await db.fetchval("SELECT count(*) FROM tenant_tokens") == 1
    assert hook["id"] not in a.app[REGISTRY].webhooks
    await propagated(lambda: hook["id"] not in b.app[REGISTRY].webhooks, "B to drop the webhook")
    # The id may be used again: a new tenant of that id gets none of the old one's things.
    await new_tenant(a)
    assert await status(a, token) == 401
    assert (await call(a, "GET", "/v1/tenants/acme/tokens", 200))["data"] == []
