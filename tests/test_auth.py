"""Bearer-token authentication and the API's answers for unknown routes and methods."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.helpers import ADMIN, ADMIN_TOKEN, PUBLISHER, assert_problem, webhook_body

Client = TestClient[Any, Any]

# One representative request per management route.
ADMIN_ONLY = [
    ("GET", "/v1/webhooks"),
    ("POST", "/v1/webhooks"),
    ("GET", "/v1/webhooks/wh_x"),
    ("PATCH", "/v1/webhooks/wh_x"),
    ("DELETE", "/v1/webhooks/wh_x"),
    ("POST", "/v1/webhooks/wh_x/disable"),
    ("POST", "/v1/webhooks/wh_x/enable"),
    ("GET", "/v1/webhooks/wh_x/secret"),
    ("POST", "/v1/webhooks/wh_x/secret/rotate"),
    ("GET", "/v1/event-types"),
    ("POST", "/v1/event-types"),
    ("GET", "/v1/event-types/a"),
    ("PATCH", "/v1/event-types/a"),
    ("DELETE", "/v1/event-types/a"),
    ("POST", "/v1/webhooks/wh_x/ping"),
    ("GET", "/v1/webhooks/wh_x/deliveries"),
    ("GET", "/v1/events"),
    ("GET", "/v1/deliveries"),
]


async def problem(resp: Any, status: int) -> dict[str, Any]:
    text = await resp.text()
    assert resp.status == status, text
    assert resp.content_type == "application/problem+json", text
    body: dict[str, Any] = await resp.json(content_type=None)
    assert_problem(body, status)
    return body


def body_for(method: str, path: str) -> dict[str, Any] | None:
    if method == "POST" and path == "/v1/webhooks":
        return webhook_body()
    if method == "POST" and path == "/v1/event-types":
        return {"name": "order.created"}
    if method == "PATCH":
        return {"description": "x"}
    return None


@pytest.mark.parametrize(("method", "path"), ADMIN_ONLY)
async def test_no_token_is_401_with_www_authenticate(
    client: Client, method: str, path: str
) -> None:
    resp = await client.request(method, path, json=body_for(method, path))
    await problem(resp, 401)
    assert resp.headers["WWW-Authenticate"].lower().startswith("bearer")


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param("Bearer wrong-token-0123456789", id="wrong-token"),
        pytest.param(f"Bearer {ADMIN_TOKEN}x", id="token-plus-one"),
        pytest.param(f"Bearer {ADMIN_TOKEN[:-1]}", id="token-minus-one"),
        pytest.param("Basic x", id="basic"),
        pytest.param(f"Basic {ADMIN_TOKEN}", id="basic-with-admin-token"),
        pytest.param(ADMIN_TOKEN, id="token-without-scheme"),
        pytest.param("Bearer", id="bearer-alone"),
        pytest.param("Bearer ", id="bearer-space"),
        pytest.param("", id="empty"),
    ],
)
async def test_wrong_credentials_are_401(client: Client, authorization: str) -> None:
    resp = await client.get("/v1/webhooks", headers={"Authorization": authorization})
    await problem(resp, 401)
    assert "WWW-Authenticate" in resp.headers


async def test_nothing_is_created_without_a_valid_token(client: Client) -> None:
    resp = await client.post(
        "/v1/webhooks", json=webhook_body(), headers={"Authorization": "Bearer nope-0123456789"}
    )
    await problem(resp, 401)
    listed = await (await client.get("/v1/webhooks", headers=ADMIN)).json()
    assert listed["data"] == []


@pytest.mark.parametrize(("method", "path"), ADMIN_ONLY)
async def test_publish_token_is_403_on_management_routes(
    client: Client, method: str, path: str
) -> None:
    resp = await client.request(method, path, json=body_for(method, path), headers=PUBLISHER)
    await problem(resp, 403)


async def test_publish_token_cannot_create_a_webhook(client: Client) -> None:
    resp = await client.post("/v1/webhooks", json=webhook_body(), headers=PUBLISHER)
    await problem(resp, 403)
    listed = await (await client.get("/v1/webhooks", headers=ADMIN)).json()
    assert listed["data"] == []


async def test_publish_token_may_publish(client: Client) -> None:
    """The 403s above are about the role, not a broken token: publishing works."""
    resp = await client.post(
        "/v1/events", json={"type": "order.created", "data": {"n": 1}}, headers=PUBLISHER
    )
    assert resp.status == 202, await resp.text()
    resp = await client.post(
        "/v1/events/batch",
        json={"events": [{"type": "order.created", "data": {}}]},
        headers=PUBLISHER,
    )
    assert resp.status == 202, await resp.text()


async def test_admin_token_works(client: Client) -> None:
    resp = await client.post("/v1/webhooks", json=webhook_body(), headers=ADMIN)
    assert resp.status == 201
    hook = await resp.json()
    resp = await client.get("/v1/webhooks", headers=ADMIN)
    assert resp.status == 200
    assert [h["id"] for h in (await resp.json())["data"]] == [hook["id"]]
    resp = await client.post("/v1/event-types", json={"name": "a.b"}, headers=ADMIN)
    assert resp.status == 201
    resp = await client.get("/v1/event-types", headers=ADMIN)
    assert resp.status == 200


async def test_scheme_is_case_insensitive(client: Client) -> None:
    resp = await client.get("/v1/webhooks", headers={"Authorization": f"bearer {ADMIN_TOKEN}"})
    assert resp.status == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_health_needs_no_token(client: Client, path: str) -> None:
    resp = await client.get(path)
    assert resp.status == 200, await resp.text()
    resp = await client.get(path, headers={"Authorization": "Bearer garbage-token-012345"})
    assert resp.status == 200


async def test_readyz_reports_checks(client: Client) -> None:
    body = await (await client.get("/readyz")).json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["migrations"] == "ok"


@pytest.mark.parametrize(
    "path", ["/v1/nothing-here", "/v1/webhooks/wh_x/unknown", "/v1/event-types/a/b/c"]
)
async def test_unknown_route_is_404_problem(client: Client, path: str) -> None:
    resp = await client.get(path, headers=ADMIN)
    await problem(resp, 404)


async def test_unknown_route_still_needs_a_token(client: Client) -> None:
    resp = await client.get("/v1/nothing-here")
    await problem(resp, 401)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/v1/webhooks"),
        ("PUT", "/v1/webhooks/wh_x"),
        ("GET", "/v1/webhooks/wh_x/disable"),
        ("DELETE", "/v1/event-types"),
        ("POST", "/v1/event-types/a"),
    ],
)
async def test_wrong_method_is_405_problem(client: Client, method: str, path: str) -> None:
    resp = await client.request(method, path, headers=ADMIN)
    await problem(resp, 405)
    assert resp.headers.get("Allow"), "a 405 names the allowed methods"
    assert method not in resp.headers["Allow"].split(",")
