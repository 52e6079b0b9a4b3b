"""The ``/v1/event-types`` catalogue."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.helpers import ADMIN, assert_problem

Client = TestClient[Any, Any]


async def problem(resp: Any, status: int) -> dict[str, Any]:
    """Assert the answer is problem JSON with ``status`` and return its body."""
    text = await resp.text()
    assert resp.status == status, text
    assert resp.content_type == "application/problem+json", text
    body: dict[str, Any] = await resp.json(content_type=None)
    assert_problem(body, status)
    return body


async def validation_error(resp: Any, field: str) -> dict[str, Any]:
    body = await problem(resp, 422)
    fields = [e["field"] for e in body["errors"]]
    assert all(e["message"] for e in body["errors"])
    assert field in fields, body
    return body


async def create(client: Client, name: str, **fields: Any) -> dict[str, Any]:
    resp = await client.post("/v1/event-types", json={"name": name, **fields}, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def test_create_returns_the_event_type(client: Client) -> None:
    resp = await client.post(
        "/v1/event-types",
        json={"name": "order.created", "description": "An order was placed."},
        headers=ADMIN,
    )
    assert resp.status == 201
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert body["name"] == "order.created"
    assert body["description"] == "An order was placed."
    assert body["enabled"] is True
    datetime.fromisoformat(body["created_at"])
    datetime.fromisoformat(body["updated_at"])


async def test_create_defaults_and_disabled(client: Client) -> None:
    plain = await create(client, "a")
    assert plain["description"] == "" and plain["enabled"] is True
    off = await create(client, "b", enabled=False)
    assert off["enabled"] is False
    got = await (await client.get("/v1/event-types/b", headers=ADMIN)).json()
    assert got["enabled"] is False


async def test_duplicate_name_is_409(client: Client) -> None:
    await create(client, "order.created", description="first")
    resp = await client.post(
        "/v1/event-types", json={"name": "order.created", "description": "second"}, headers=ADMIN
    )
    body = await problem(resp, 409)
    assert "order.created" in body["detail"]
    got = await (await client.get("/v1/event-types/order.created", headers=ADMIN)).json()
    assert got["description"] == "first"


@pytest.mark.parametrize(
    "name",
    ["", "a..b", ".a", "a.", "order.*", "*", "has space", "a/b", "x" * 256, "caf\u00e9"],
)
async def test_invalid_name_is_422(client: Client, name: str) -> None:
    resp = await client.post("/v1/event-types", json={"name": name}, headers=ADMIN)
    await validation_error(resp, "name")
    listed = await (await client.get("/v1/event-types", headers=ADMIN)).json()
    assert listed["data"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": 5}, "name"),
        ({"name": "a", "enabled": "yes"}, "enabled"),
        ({"name": "a", "description": 1}, "description"),
        ({"name": "a", "description": "x" * 2001}, "description"),
        ({"name": "a", "colour": "red"}, "colour"),
        ({"name": "a", "description": "nul \x00 inside"}, "description"),
    ],
)
async def test_create_validation(client: Client, body: dict[str, Any], field: str) -> None:
    resp = await client.post("/v1/event-types", json=body, headers=ADMIN)
    await validation_error(resp, field)


async def test_create_with_malformed_or_empty_body(client: Client) -> None:
    headers = {**ADMIN, "Content-Type": "application/json"}
    await problem(await client.post("/v1/event-types", data=b"{", headers=headers), 400)
    await problem(await client.post("/v1/event-types", data=b"", headers=headers), 400)
    await problem(await client.post("/v1/event-types", data=b"[]", headers=headers), 422)


async def test_list_is_alphabetical(client: Client) -> None:
    for name in ("order.created", "invoice.paid", "a_first", "order.cancelled", "Zeta"):
        await create(client, name)
    resp = await client.get("/v1/event-types", headers=ADMIN)
    assert resp.status == 200
    body = await resp.json()
    names = [t["name"] for t in body["data"]]
    assert sorted(names) == sorted(
        ["order.created", "invoice.paid", "a_first", "order.cancelled", "Zeta"]
    )
    assert names == sorted(names)
    assert body["next_cursor"] is None


async def test_list_is_paginated(client: Client) -> None:
    names = [f"type.n{i:02d}" for i in range(7)]
    for name in reversed(names):
        await create(client, name)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        resp = await client.get("/v1/event-types", params=params, headers=ADMIN)
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        pages += 1
        assert len(body["data"]) <= 3
        seen.extend(t["name"] for t in body["data"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert pages < 10
    assert pages == 3
    assert seen == names


async def test_list_empty_and_bad_paging(client: Client) -> None:
    resp = await client.get("/v1/event-types", headers=ADMIN)
    assert await resp.json() == {"data": [], "next_cursor": None}
    for limit in ("0", "501", "abc"):
        resp = await client.get(f"/v1/event-types?limit={limit}", headers=ADMIN)
        await validation_error(resp, "limit")


@pytest.mark.parametrize("cursor", ["%%%", "AA", "abc"])
async def test_garbage_cursor_is_422(client: Client, cursor: str) -> None:
    await create(client, "a")
    resp = await client.get("/v1/event-types", params={"cursor": cursor}, headers=ADMIN)
    await validation_error(resp, "cursor")


async def test_get_one(client: Client) -> None:
    created = await create(client, "order.created", description="d")
    resp = await client.get("/v1/event-types/order.created", headers=ADMIN)
    assert resp.status == 200
    assert await resp.json() == created


async def test_patch_description_and_enabled(client: Client) -> None:
    created = await create(client, "order.created", description="old")
    resp = await client.patch(
        "/v1/event-types/order.created", json={"description": "new"}, headers=ADMIN
    )
    assert resp.status == 200
    body = await resp.json()
    assert body["description"] == "new"
    assert body["enabled"] is True
    assert body["created_at"] == created["created_at"]

    resp = await client.patch(
        "/v1/event-types/order.created", json={"enabled": False}, headers=ADMIN
    )
    body = await resp.json()
    assert body["enabled"] is False
    assert body["description"] == "new"

    got = await (await client.get("/v1/event-types/order.created", headers=ADMIN)).json()
    assert got["enabled"] is False and got["description"] == "new"

    resp = await client.patch(
        "/v1/event-types/order.created", json={"enabled": True, "description": ""}, headers=ADMIN
    )
    body = await resp.json()
    assert body["enabled"] is True and body["description"] == ""


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"enabled": "no"}, "enabled"),
        ({"description": 3}, "description"),
        ({"name": "renamed"}, "name"),
        ({"description": "nul \x00 inside"}, "description"),
    ],
)
async def test_patch_validation(client: Client, body: dict[str, Any], field: str) -> None:
    await create(client, "order.created")
    resp = await client.patch("/v1/event-types/order.created", json=body, headers=ADMIN)
    await validation_error(resp, field)


async def test_delete_then_404(client: Client) -> None:
    await create(client, "order.created")
    resp = await client.delete("/v1/event-types/order.created", headers=ADMIN)
    assert resp.status == 204
    assert await resp.read() == b""
    await problem(await client.get("/v1/event-types/order.created", headers=ADMIN), 404)
    await problem(await client.delete("/v1/event-types/order.created", headers=ADMIN), 404)
    listed = await (await client.get("/v1/event-types", headers=ADMIN)).json()
    assert listed["data"] == []
    # The name can be registered again.
    await create(client, "order.created")


@pytest.mark.parametrize("name", ["missing.type", "%00", "a..b", "x" * 300, "%E2%98%83"])
async def test_missing_or_impossible_names_are_404(client: Client, name: str) -> None:
    path = f"/v1/event-types/{name}"
    await problem(await client.get(path, headers=ADMIN), 404)
    await problem(await client.patch(path, json={"enabled": False}, headers=ADMIN), 404)
    await problem(await client.delete(path, headers=ADMIN), 404)
