"""``/v1/tenants``: tenants, their tokens and portal links, as the admin token manages them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from dispatcher.app_keys import SETTINGS
from tests.helpers import ADMIN, PUBLISHER, Client, assert_problem, call


async def problem(resp: Any, status: int) -> dict[str, Any]:
    text = await resp.text()
    assert resp.status == status, text
    assert resp.content_type == "application/problem+json", text
    body: dict[str, Any] = await resp.json(content_type=None)
    assert_problem(body, status)
    return body


async def test_create_get_list_update_a_tenant(client: Client) -> None:
    made = await call(client, "POST", "/v1/tenants", 201, json={"id": "acme", "name": "Acme Inc."})
    assert made["id"] == "acme" and made["name"] == "Acme Inc." and made["metadata"] == {}
    assert made["created_at"] and made["updated_at"]
    assert await call(client, "GET", "/v1/tenants/acme", 200) == made
    await call(
        client, "POST", "/v1/tenants", 201, json={"id": "beta:1", "name": "B", "metadata": {"p": 1}}
    )
    listed = await call(client, "GET", "/v1/tenants", 200)
    assert [t["id"] for t in listed["data"]] == ["acme", "beta:1"]
    assert listed["next_cursor"] is None
    changed = await call(
        client, "PATCH", "/v1/tenants/acme", 200, json={"metadata": {"plan": "pro"}}
    )
    assert changed["name"] == "Acme Inc." and changed["metadata"] == {"plan": "pro"}
    renamed = await call(client, "PATCH", "/v1/tenants/acme", 200, json={"name": "Acme"})
    assert renamed["name"] == "Acme" and renamed["metadata"] == {"plan": "pro"}
    assert renamed["updated_at"] >= changed["updated_at"]


async def test_list_pages_and_searches(client: Client) -> None:
    for i in range(5):
        await call(client, "POST", "/v1/tenants", 201, json={"id": f"t{i}", "name": f"Name {i}"})
    first = await call(client, "GET", "/v1/tenants?limit=2", 200)
    assert [t["id"] for t in first["data"]] == ["t0", "t1"]
    second = await call(client, "GET", f"/v1/tenants?limit=2&cursor={first['next_cursor']}", 200)
    assert [t["id"] for t in second["data"]] == ["t2", "t3"]
    found = await call(client, "GET", "/v1/tenants?q=name%203", 200)
    assert [t["id"] for t in found["data"]] == ["t3"]


async def test_a_duplicate_id_is_409_and_changes_nothing(client: Client) -> None:
    await call(client, "POST", "/v1/tenants", 201, json={"id": "acme", "name": "First"})
    resp = await client.post("/v1/tenants", json={"id": "acme", "name": "Second"}, headers=ADMIN)
    await problem(resp, 409)
    assert (await call(client, "GET", "/v1/tenants/acme", 200))["name"] == "First"


@pytest.mark.parametrize(
    "tenant_id", ["a", "A.b_c:d-9", "x" * 128, "org:42", "..."], ids=lambda v: v[:20]
)
async def test_ids_of_letters_digits_and_punctuation_are_accepted(
    client: Client, tenant_id: str
) -> None:
    await call(client, "POST", "/v1/tenants", 201, json={"id": tenant_id, "name": "n"})
    assert (await call(client, "GET", f"/v1/tenants/{tenant_id}", 200))["id"] == tenant_id


@pytest.mark.parametrize(
    "body",
    [
        {"id": "", "name": "n"},
        {"id": "x" * 129, "name": "n"},
        {"id": "a b", "name": "n"},
        {"id": "a/b", "name": "n"},
        {"id": "a~b", "name": "n"},
        {"id": "é", "name": "n"},
        {"id": "a\n", "name": "n"},
        {"id": 5, "name": "n"},
        {"name": "n"},
        {"id": "a"},
        {"id": "a", "name": "  "},
        {"id": "a", "name": "n", "metadata": []},
        {"id": "a", "name": "n", "extra": 1},
    ],
)
async def test_bad_tenant_bodies_are_422_naming_the_field(
    client: Client, body: dict[str, Any]
) -> None:
    resp = await client.post("/v1/tenants", json=body, headers=ADMIN)
    answer = await problem(resp, 422)
    assert answer["errors"], answer
    assert (await call(client, "GET", "/v1/tenants", 200))["data"] == []


async def test_malformed_json_is_400(client: Client) -> None:
    resp = await client.post("/v1/tenants", data=b"{", headers=ADMIN)
    await problem(resp, 400)


@pytest.mark.parametrize("body", [{"name": None}, {"metadata": None}, {"name": ""}, {"x": 1}])
async def test_bad_patches_are_422(client: Client, body: dict[str, Any]) -> None:
    await call(client, "POST", "/v1/tenants", 201, json={"id": "acme", "name": "Acme"})
    resp = await client.patch("/v1/tenants/acme", json=body, headers=ADMIN)
    await problem(resp, 422)
    assert (await call(client, "GET", "/v1/tenants/acme", 200))["name"] == "Acme"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/tenants/nope", None),
        ("PATCH", "/v1/tenants/nope", {"name": "x"}),
        ("DELETE", "/v1/tenants/nope", None),
        ("POST", "/v1/tenants/nope/tokens", {}),
        ("GET", "/v1/tenants/nope/tokens", None),
        ("DELETE", "/v1/tenants/nope/tokens/tt_x", None),
        ("POST", "/v1/tenants/nope/portal", {}),
        ("GET", "/v1/tenants/a~b", None),
        ("GET", f"/v1/tenants/{'x' * 129}", None),
    ],
)
async def test_missing_tenants_are_404(
    client: Client, method: str, path: str, body: dict[str, Any] | None
) -> None:
    resp = await client.request(method, path, json=body, headers=ADMIN)
    await problem(resp, 404)


async def test_tokens_are_created_listed_without_secrets_and_revoked(client: Client) -> None:
    await call(client, "POST", "/v1/tenants", 201, json={"id": "acme", "name": "Acme"})
    forever = await call(client, "POST", "/v1/tenants/acme/tokens", 201)
    assert forever["token"].startswith("dsp_tenant_") and len(forever["token"]) > 40
    assert forever["id"].startswith("tt_") and forever["expires_at"] is None
    hour = await call(client, "POST", "/v1/tenants/acme/tokens", 201, json={"expires_in": 3600})
    expires = datetime.fromisoformat(hour["expires_at"])
    assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=1)
    listed = await call(client, "GET", "/v1/tenants/acme/tokens", 200)
    assert [t["id"] for t in listed["data"]] == [hour["id"], forever["id"]]
    assert all("token" not in t for t in listed["data"])
    await call(client, "DELETE", f"/v1/tenants/acme/tokens/{hour['id']}", 204)
    listed = await call(client, "GET", "/v1/tenants/acme/tokens", 200)
    assert [t["id"] for t in listed["data"]] == [forever["id"]]
    resp = await client.delete(f"/v1/tenants/acme/tokens/{hour['id']}", headers=ADMIN)
    await problem(resp, 404)


async def test_a_token_of_another_tenant_cannot_be_revoked_through_this_one(
    client: Client,
) -> None:
    for tenant in ("a", "b"):
        await call(client, "POST", "/v1/tenants", 201, json={"id": tenant, "name": tenant})
    token = await call(client, "POST", "/v1/tenants/a/tokens", 201)
    resp = await client.delete(f"/v1/tenants/b/tokens/{token['id']}", headers=ADMIN)
    await problem(resp, 404)
    assert len((await call(client, "GET", "/v1/tenants/a/tokens", 200))["data"]) == 1


@pytest.mark.parametrize("expires_in", [0, 59, 10 * 365 * 86400 + 1, "60", 60.5, None, True])
async def test_bad_token_lifetimes_are_422(client: Client, expires_in: Any) -> None:
    await call(client, "POST", "/v1/tenants", 201, json={"id": "acme", "name": "Acme"})
    body = {"expires_in": expires_in}
    resp = await client.post("/v1/tenants/acme/tokens", json=body, headers=ADMIN)
    if expires_in is None:
        # null: no expiry, as when left out.
        assert resp.status == 201
        return
    answer = await problem(resp, 422)
    assert answer["errors"][0]["field"] == "expires_in"
    assert (await call(client, "GET", "/v1/tenants/acme/tokens", 200))["data"] == []


async def test_a_portal_link_is_a_single_use_url_under_the_public_url(
    client: Client, db: asyncpg.Connection
) -> None:
    await call(client, "POST", "/v1/tenants", 201, json={"id": "acme", "name": "Acme"})
    link = await call(client, "POST", "/v1/tenants/acme/portal", 201)
    base = client.app[SETTINGS].public_base_url()
    assert link["url"].startswith(base + "/portal/signin/")
    expires = datetime.fromisoformat(link["expires_at"])
    assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=1)
    week = await call(
        client, "POST", "/v1/tenants/acme/portal", 201, json={"expires_in": 7 * 86400}
    )
    assert week["url"] != link["url"]
    stored = await db.fetch("SELECT link_hash, tenant_id, used_at FROM portal_links")
    assert len(stored) == 2 and {r["tenant_id"] for r in stored} == {"acme"}
    # Only a hash of the secret is kept.
    secret = link["url"].rsplit("/", 1)[1]
    assert all(secret.encode() not in bytes(r["link_hash"]) for r in stored)


@pytest.mark.parametrize("expires_in", [59, 7 * 86400 + 1, "3600", None])
async def test_bad_portal_lifetimes_are_422(client: Client, expires_in: Any) -> None:
    await call(client, "POST", "/v1/tenants", 201, json={"id": "acme", "name": "Acme"})
    body = {"expires_in": expires_in}
    resp = await client.post("/v1/tenants/acme/portal", json=body, headers=ADMIN)
    await problem(resp, 422)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/tenants"),
        ("POST", "/v1/tenants"),
        ("GET", "/v1/tenants/acme"),
        ("POST", "/v1/tenants/acme/tokens"),
        ("POST", "/v1/tenants/acme/portal"),
    ],
)
async def test_a_publish_token_may_not_manage_tenants(
    client: Client, method: str, path: str
) -> None:
    resp = await client.request(method, path, json={"id": "x", "name": "x"}, headers=PUBLISHER)
    await problem(resp, 403)


async def test_a_deleted_tenants_id_is_not_reused_while_its_log_is_kept(
    client: Client, db: asyncpg.Connection
) -> None:
    """A new customer given the id would otherwise read the old one's events."""
    await call(client, "POST", "/v1/tenants", 201, json={"id": "t-1", "name": "Old"})
    resp = await client.post(
        "/v1/events", json={"type": "order.created", "data": {}, "tenant_id": "t-1"}, headers=ADMIN
    )
    assert resp.status == 202, await resp.text()
    await call(client, "DELETE", "/v1/tenants/t-1", 204)

    resp = await client.post("/v1/tenants", json={"id": "t-1", "name": "New"}, headers=ADMIN)
    assert resp.status == 409, await resp.text()
    problem = await resp.json(content_type=None)
    assert_problem(problem, 409)
    assert "still kept" in problem["detail"]
    assert await db.fetchval("SELECT count(*) FROM tenants") == 0

    # Once retention has pruned that log, the id is free again.
    await db.execute("DELETE FROM deliveries; DELETE FROM events")
    await call(client, "POST", "/v1/tenants", 201, json={"id": "t-1", "name": "New"})
