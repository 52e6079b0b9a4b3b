"""The ``/v1/webhooks`` management API (everything except ping, replay and deliveries)."""

from __future__ import annotations

import asyncio
import base64
import os
from datetime import datetime
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from dispatcher.app_keys import SCHEDULER
from dispatcher.store import webhooks as webhook_store
from tests.helpers import ADMIN, assert_problem, webhook_body

Client = TestClient[Any, Any]

PROBLEM_JSON = "application/problem+json"


# --------------------------------------------------------------------------------------------
# helpers


async def create(client: Client, **overrides: Any) -> dict[str, Any]:
    """Create a webhook through the API and return the answer."""
    resp = await client.post("/v1/webhooks", json=webhook_body(**overrides), headers=ADMIN)
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def problem(resp: Any, status: int) -> dict[str, Any]:
    """Assert the answer is problem JSON with ``status`` and return its body."""
    text = await resp.text()
    assert resp.status == status, text
    assert resp.content_type == PROBLEM_JSON, text
    body: dict[str, Any] = await resp.json(content_type=None)
    assert_problem(body, status)
    return body


async def validation_error(resp: Any, field: str) -> dict[str, Any]:
    """Assert a 422 problem whose ``errors`` name ``field`` (or a sub-path of it)."""
    body = await problem(resp, 422)
    errors = body.get("errors")
    assert isinstance(errors, list) and errors, body
    for err in errors:
        assert isinstance(err["field"], str) and err["field"]
        assert isinstance(err["message"], str) and err["message"]
    fields = [e["field"] for e in errors]
    assert any(f == field or f.startswith((field + ".", field + "[")) for f in fields), (
        field,
        body,
    )
    return body


def secret_of(nbytes: int) -> str:
    return "whsec_" + base64.b64encode(os.urandom(nbytes)).decode()


async def list_all(client: Client, query: str = "") -> list[dict[str, Any]]:
    resp = await client.get(f"/v1/webhooks{query}", headers=ADMIN)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["next_cursor"] is None
    data: list[dict[str, Any]] = body["data"]
    return data


@pytest.fixture
async def strict_client(make_client: Any) -> Client:
    """The application with ``DISPATCHER_ALLOW_PRIVATE_TARGETS`` off (the production default)."""
    result: Client = await make_client(allow_private_targets=False)
    return result


# --------------------------------------------------------------------------------------------
# create


async def test_create_returns_the_full_webhook_with_a_generated_secret(client: Client) -> None:
    resp = await client.post("/v1/webhooks", json=webhook_body(), headers=ADMIN)
    assert resp.status == 201
    assert resp.content_type == "application/json"
    hook = await resp.json()
    assert isinstance(hook["id"], str) and hook["id"]
    assert hook["name"] == "orders"
    assert hook["url"] == "http://127.0.0.1:9/hook"
    assert hook["event_types"] == ["order.*"]
    assert hook["enabled"] is True
    assert hook["disabled_reason"] is None
    assert hook["disabled_at"] is None
    assert hook["description"] == ""
    assert hook["headers"] == {}
    assert hook["metadata"] == {}
    assert hook["include_payload"] is True
    for override in ("max_retries", "timeout_seconds", "rate_limit_per_second", "max_in_flight"):
        assert hook[override] is None
    datetime.fromisoformat(hook["created_at"])
    datetime.fromisoformat(hook["updated_at"])
    secret = hook["secret"]
    assert secret.startswith("whsec_")
    assert 24 <= len(base64.b64decode(secret[len("whsec_") :], validate=True)) <= 64


async def test_create_stores_every_optional_field(client: Client) -> None:
    body = webhook_body(
        name="all fields",
        url="https://example.com/in?x=1",
        event_types=["order.created", "invoice.*"],
        enabled=False,
        description="d",
        headers={"X-Api-Key": "k1", "X-Tenant": "t"},
        metadata={"team": "billing", "n": [1, 2]},
        include_payload=False,
        max_retries=3,
        timeout_seconds=2.5,
        rate_limit_per_second=10.0,
        max_in_flight=4,
    )
    resp = await client.post("/v1/webhooks", json=body, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    hook = await resp.json()
    for key, value in body.items():
        if key != "enabled":
            assert hook[key] == value, key
    assert hook["enabled"] is False
    assert hook["disabled_reason"] == "manual"
    assert hook["disabled_at"] is not None
    got = await (await client.get(f"/v1/webhooks/{hook['id']}", headers=ADMIN)).json()
    for key, value in body.items():
        assert got[key] == value, key


async def test_two_generated_secrets_differ(client: Client) -> None:
    a = await create(client)
    b = await create(client)
    assert a["secret"] != b["secret"]
    assert a["id"] != b["id"]


@pytest.mark.parametrize("nbytes", [24, 32, 64])
async def test_create_accepts_a_supplied_secret(client: Client, nbytes: int) -> None:
    secret = secret_of(nbytes)
    hook = await create(client, secret=secret)
    assert hook["secret"] == secret
    resp = await client.get(f"/v1/webhooks/{hook['id']}/secret", headers=ADMIN)
    assert resp.status == 200
    assert await resp.json() == {"secret": secret}


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("wrong_" + base64.b64encode(b"x" * 32).decode(), id="wrong-prefix"),
        pytest.param(base64.b64encode(b"x" * 32).decode(), id="no-prefix"),
        pytest.param("whsec_this is not base64!!", id="not-base64"),
        pytest.param("whsec_" + base64.b64encode(b"x" * 23).decode(), id="23-bytes"),
        pytest.param("whsec_" + base64.b64encode(b"x" * 65).decode(), id="65-bytes"),
        pytest.param("whsec_", id="empty"),
    ],
)
async def test_create_refuses_bad_secrets(client: Client, secret: str) -> None:
    resp = await client.post("/v1/webhooks", json=webhook_body(secret=secret), headers=ADMIN)
    await validation_error(resp, "secret")
    assert await list_all(client) == []


async def test_secret_is_not_shown_outside_create(client: Client) -> None:
    hook = await create(client)
    got = await (await client.get(f"/v1/webhooks/{hook['id']}", headers=ADMIN)).json()
    assert got.get("secret") is None
    listed = await list_all(client)
    assert all(h.get("secret") is None for h in listed)


# --------------------------------------------------------------------------------------------
# get


async def test_get_one(client: Client) -> None:
    hook = await create(client, name="one")
    resp = await client.get(f"/v1/webhooks/{hook['id']}", headers=ADMIN)
    assert resp.status == 200
    got = await resp.json()
    assert got["id"] == hook["id"]
    assert got["name"] == "one"


async def test_get_missing_is_404(client: Client) -> None:
    resp = await client.get("/v1/webhooks/wh_01ARZ3NDEKTSV4RRFFQ69G5FAV", headers=ADMIN)
    body = await problem(resp, 404)
    assert "wh_01ARZ3NDEKTSV4RRFFQ69G5FAV" in body["detail"]


@pytest.mark.parametrize(
    "path_id",
    [
        "%00",
        "a%00b",
        "x" * 300,
        "x" * 5000,
        "%FF%FE",
        "%E2%98%83",
        "..%2F..%2Fetc",
        "'%3B%20DROP%20TABLE%20webhooks%3B--",
        "%20",
    ],
)
@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("GET", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("POST", "/disable"),
        ("POST", "/enable"),
        ("GET", "/secret"),
        ("POST", "/secret/rotate"),
    ],
)
async def test_odd_path_ids_are_404_not_500(
    client: Client, path_id: str, method: str, suffix: str
) -> None:
    kwargs: dict[str, Any] = {"headers": ADMIN}
    if method == "PATCH":
        kwargs["json"] = {"name": "x"}
    resp = await client.request(method, f"/v1/webhooks/{path_id}{suffix}", **kwargs)
    await problem(resp, 404)


# --------------------------------------------------------------------------------------------
# list


async def test_list_is_newest_first_and_complete(client: Client) -> None:
    ids = [(await create(client, name=f"h{i}"))["id"] for i in range(3)]
    resp = await client.get("/v1/webhooks", headers=ADMIN)
    assert resp.status == 200
    body = await resp.json()
    assert set(body) == {"data", "next_cursor"}
    assert body["next_cursor"] is None
    assert sorted(h["id"] for h in body["data"]) == sorted(ids)


async def test_list_empty(client: Client) -> None:
    resp = await client.get("/v1/webhooks", headers=ADMIN)
    assert resp.status == 200
    assert await resp.json() == {"data": [], "next_cursor": None}


async def test_list_filters_by_enabled(client: Client) -> None:
    on = await create(client, name="on")
    off = await create(client, name="off", enabled=False)
    assert [h["id"] for h in await list_all(client, "?enabled=true")] == [on["id"]]
    assert [h["id"] for h in await list_all(client, "?enabled=false")] == [off["id"]]
    assert {h["id"] for h in await list_all(client)} == {on["id"], off["id"]}
    resp = await client.get("/v1/webhooks?enabled=maybe", headers=ADMIN)
    await validation_error(resp, "enabled")


async def test_list_filters_by_event_type_across_exact_prefix_and_star_patterns(
    client: Client,
) -> None:
    exact = await create(client, name="exact", event_types=["order.created"])
    prefix = await create(client, name="prefix", event_types=["order.*"])
    star = await create(client, name="star", event_types=["*"])
    other = await create(client, name="other", event_types=["invoice.*", "order.deleted"])
    nested = await create(client, name="nested", event_types=["order.item.*"])

    def ids(rows: list[dict[str, Any]]) -> set[str]:
        return {r["id"] for r in rows}

    assert ids(await list_all(client, "?event_type=order.created")) == {
        exact["id"],
        prefix["id"],
        star["id"],
    }
    assert ids(await list_all(client, "?event_type=order.item.added")) == {
        prefix["id"],
        star["id"],
        nested["id"],
    }
    assert ids(await list_all(client, "?event_type=invoice.paid")) == {other["id"], star["id"]}
    # "order.*" covers names below "order.", not "order" itself nor "orders.x".
    assert ids(await list_all(client, "?event_type=order")) == {star["id"]}
    assert ids(await list_all(client, "?event_type=orders.created")) == {star["id"]}
    # Both filters together.
    await client.post(f"/v1/webhooks/{star['id']}/disable", headers=ADMIN)
    assert ids(await list_all(client, "?event_type=order.created&enabled=true")) == {
        exact["id"],
        prefix["id"],
    }


async def test_list_rejects_an_invalid_event_type_filter(client: Client) -> None:
    resp = await client.get("/v1/webhooks?event_type=a..b", headers=ADMIN)
    await validation_error(resp, "event_type")


async def test_pagination_shows_every_row_exactly_once(client: Client) -> None:
    created = [(await create(client, name=f"h{i}"))["id"] for i in range(7)]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        resp = await client.get(f"/v1/webhooks{query}", headers=ADMIN)
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        pages += 1
        assert len(body["data"]) <= 2
        seen.extend(h["id"] for h in body["data"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert pages < 10, "pagination does not terminate"
    assert pages == 4
    assert len(seen) == len(set(seen)), "a row was listed twice"
    assert sorted(seen) == sorted(created)
    # Newest first, consistently across pages.
    assert seen == sorted(seen, reverse=True)


async def test_pagination_with_filter_and_exact_page_boundary(client: Client) -> None:
    for i in range(4):
        await create(client, name=f"on{i}")
        await create(client, name=f"off{i}", enabled=False)
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        query = "?limit=2&enabled=false" + (f"&cursor={cursor}" if cursor else "")
        body = await (await client.get(f"/v1/webhooks{query}", headers=ADMIN)).json()
        assert all(h["enabled"] is False for h in body["data"])
        seen.extend(h["id"] for h in body["data"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 4 and len(set(seen)) == 4


async def test_limit_default_and_maximum(client: Client) -> None:
    for i in range(3):
        await create(client, name=f"h{i}")
    resp = await client.get("/v1/webhooks?limit=500", headers=ADMIN)
    assert resp.status == 200
    assert len((await resp.json())["data"]) == 3
    resp = await client.get("/v1/webhooks?limit=1", headers=ADMIN)
    body = await resp.json()
    assert len(body["data"]) == 1 and body["next_cursor"] is not None


@pytest.mark.parametrize("limit", ["0", "501", "abc", "-1", "1.5", ""])
async def test_bad_limit_is_422(client: Client, limit: str) -> None:
    if limit == "":
        # An empty limit is not a number either.
        resp = await client.get("/v1/webhooks?limit=", headers=ADMIN)
    else:
        resp = await client.get(f"/v1/webhooks?limit={limit}", headers=ADMIN)
    await validation_error(resp, "limit")


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("%%%", id="percent-signs"),
        pytest.param("!!!!", id="no-base64-chars"),
        pytest.param("abc", id="undecodable"),
        pytest.param("not-a-cursor", id="words"),
        pytest.param("AA", id="nul-byte"),
        pytest.param(base64.urlsafe_b64encode(b"\x00\x00\x00").decode(), id="nul-bytes"),
    ],
)
async def test_garbage_cursor_is_422(client: Client, cursor: str) -> None:
    await create(client)
    resp = await client.get("/v1/webhooks", params={"cursor": cursor}, headers=ADMIN)
    await validation_error(resp, "cursor")


# --------------------------------------------------------------------------------------------
# PATCH


async def test_patch_changes_only_the_fields_sent(client: Client) -> None:
    hook = await create(
        client, description="keep me", headers={"X-A": "1"}, metadata={"k": "v"}, max_retries=2
    )
    resp = await client.patch(
        f"/v1/webhooks/{hook['id']}",
        json={"name": "renamed", "url": "https://example.com/new", "max_in_flight": 3},
        headers=ADMIN,
    )
    assert resp.status == 200, await resp.text()
    got = await resp.json()
    assert got["name"] == "renamed"
    assert got["url"] == "https://example.com/new"
    assert got["max_in_flight"] == 3
    assert got["description"] == "keep me"
    assert got["headers"] == {"X-A": "1"}
    assert got["metadata"] == {"k": "v"}
    assert got["max_retries"] == 2
    assert got["event_types"] == ["order.*"]
    assert got["enabled"] is True
    assert got["created_at"] == hook["created_at"]
    assert datetime.fromisoformat(got["updated_at"]) >= datetime.fromisoformat(hook["updated_at"])
    # The change is stored, not just echoed.
    stored = await (await client.get(f"/v1/webhooks/{hook['id']}", headers=ADMIN)).json()
    assert stored == got


async def test_patch_replaces_event_types_headers_and_metadata(client: Client) -> None:
    hook = await create(client, headers={"X-A": "1"}, metadata={"a": 1})
    resp = await client.patch(
        f"/v1/webhooks/{hook['id']}",
        json={
            "event_types": ["invoice.paid", "*"],
            "headers": {"X-B": "2"},
            "metadata": {"b": 2},
            "include_payload": False,
            "description": "",
        },
        headers=ADMIN,
    )
    assert resp.status == 200, await resp.text()
    got = await resp.json()
    assert got["event_types"] == ["invoice.paid", "*"]
    assert got["headers"] == {"X-B": "2"}
    assert got["metadata"] == {"b": 2}
    assert got["include_payload"] is False


async def test_patch_null_resets_overrides(client: Client) -> None:
    hook = await create(
        client, max_retries=3, timeout_seconds=5.0, rate_limit_per_second=2.0, max_in_flight=7
    )
    resp = await client.patch(
        f"/v1/webhooks/{hook['id']}",
        json={"max_retries": None, "timeout_seconds": None},
        headers=ADMIN,
    )
    assert resp.status == 200, await resp.text()
    got = await resp.json()
    assert got["max_retries"] is None
    assert got["timeout_seconds"] is None
    assert got["rate_limit_per_second"] == 2.0
    assert got["max_in_flight"] == 7
    stored = await (await client.get(f"/v1/webhooks/{hook['id']}", headers=ADMIN)).json()
    assert stored["max_retries"] is None


@pytest.mark.parametrize(
    "field",
    ["name", "url", "event_types", "enabled", "description", "headers", "metadata"],
)
async def test_patch_null_for_a_required_field_is_422(client: Client, field: str) -> None:
    hook = await create(client)
    resp = await client.patch(f"/v1/webhooks/{hook['id']}", json={field: None}, headers=ADMIN)
    await validation_error(resp, field)
    stored = await (await client.get(f"/v1/webhooks/{hook['id']}", headers=ADMIN)).json()
    assert stored["name"] == "orders"


async def test_patch_enabled_false_disables_manually(client: Client) -> None:
    hook = await create(client)
    resp = await client.patch(f"/v1/webhooks/{hook['id']}", json={"enabled": False}, headers=ADMIN)
    assert resp.status == 200
    got = await resp.json()
    assert got["enabled"] is False
    assert got["disabled_reason"] == "manual"
    assert got["disabled_at"] is not None
    resp = await client.patch(f"/v1/webhooks/{hook['id']}", json={"enabled": True}, headers=ADMIN)
    got = await resp.json()
    assert got["enabled"] is True
    assert got["disabled_reason"] is None
    assert got["disabled_at"] is None


async def test_patch_unknown_field_is_422(client: Client) -> None:
    hook = await create(client)
    resp = await client.patch(f"/v1/webhooks/{hook['id']}", json={"nmae": "typo"}, headers=ADMIN)
    await validation_error(resp, "nmae")
    # The id and the secret are not patchable either.
    resp = await client.patch(f"/v1/webhooks/{hook['id']}", json={"id": "wh_x"}, headers=ADMIN)
    await validation_error(resp, "id")
    resp = await client.patch(
        f"/v1/webhooks/{hook['id']}", json={"secret": secret_of(32)}, headers=ADMIN
    )
    await validation_error(resp, "secret")


async def test_patch_validates_values_like_create(client: Client) -> None:
    hook = await create(client)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "  "}, "name"),
        ({"url": "ftp://example.com/"}, "url"),
        ({"event_types": []}, "event_types"),
        ({"event_types": ["a..b"]}, "event_types"),
        ({"headers": {"Host": "x"}}, "headers"),
        ({"max_retries": "3"}, "max_retries"),
        ({"max_retries": -1}, "max_retries"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
    ]
    for body, field in cases:
        resp = await client.patch(f"/v1/webhooks/{hook['id']}", json=body, headers=ADMIN)
        await validation_error(resp, field)
    stored = await (await client.get(f"/v1/webhooks/{hook['id']}", headers=ADMIN)).json()
    assert {k: v for k, v in stored.items() if k != "secret"} == {
        k: v for k, v in hook.items() if k != "secret"
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "a\x00b"}, "name"),
        ({"description": "\x00"}, "description"),
        ({"metadata": {"k": "\x00"}}, "metadata"),
        ({"url": "https://example.com/\x00"}, "url"),
    ],
)
async def test_patch_with_nul_characters_is_422_not_500(
    client: Client, body: dict[str, Any], field: str
) -> None:
    hook = await create(client)
    resp = await client.patch(f"/v1/webhooks/{hook['id']}", json=body, headers=ADMIN)
    await validation_error(resp, field)


async def test_patch_missing_webhook_is_404(client: Client) -> None:
    resp = await client.patch(
        "/v1/webhooks/wh_01ARZ3NDEKTSV4RRFFQ69G5FAV", json={"name": "x"}, headers=ADMIN
    )
    await problem(resp, 404)


async def test_patch_with_bad_json_is_400(client: Client) -> None:
    hook = await create(client)
    resp = await client.patch(
        f"/v1/webhooks/{hook['id']}",
        data=b"{not json",
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    await problem(resp, 400)


# --------------------------------------------------------------------------------------------
# DELETE


async def test_delete_then_404(client: Client) -> None:
    hook = await create(client)
    resp = await client.delete(f"/v1/webhooks/{hook['id']}", headers=ADMIN)
    assert resp.status == 204
    assert await resp.read() == b""
    resp = await client.get(f"/v1/webhooks/{hook['id']}", headers=ADMIN)
    await problem(resp, 404)
    resp = await client.delete(f"/v1/webhooks/{hook['id']}", headers=ADMIN)
    await problem(resp, 404)
    assert await list_all(client) == []


async def test_delete_removes_secrets(client: Client, db: asyncpg.Connection) -> None:
    hook = await create(client)
    await client.delete(f"/v1/webhooks/{hook['id']}", headers=ADMIN)
    resp = await client.get(f"/v1/webhooks/{hook['id']}/secret", headers=ADMIN)
    await problem(resp, 404)
    count = await db.fetchval(
        "SELECT count(*) FROM webhook_secrets WHERE webhook_id = $1", hook["id"]
    )
    assert count == 0


async def test_delete_cancels_unfinished_deliveries_only(
    client: Client, db: asyncpg.Connection
) -> None:
    hook = await create(client)
    keep = await create(client, name="other")
    rows = [
        ("dlv_created", hook["id"], "created"),
        ("dlv_retrying", hook["id"], "retrying"),
        ("dlv_success", hook["id"], "success"),
        ("dlv_failed", hook["id"], "failed"),
        ("dlv_other", keep["id"], "created"),
    ]
    for dlv_id, webhook_id, status in rows:
        # One event each: an event has at most one delivery per webhook.
        await db.execute(
            "INSERT INTO events (id, type, data, occurred_at) VALUES ($1, 'order.created', "
            "'{}'::jsonb, now())",
            f"evt_{dlv_id}",
        )
        await db.execute(
            "INSERT INTO deliveries (id, event_id, webhook_id, event_type, status, "
            "next_attempt_at) VALUES ($1, 'evt_' || $1, $2, 'order.created', $3, now())",
            dlv_id,
            webhook_id,
            status,
        )
    resp = await client.delete(f"/v1/webhooks/{hook['id']}", headers=ADMIN)
    assert resp.status == 204
    statuses = {r["id"]: r["status"] for r in await db.fetch("SELECT id, status FROM deliveries")}
    assert statuses == {
        "dlv_created": "cancelled",
        "dlv_retrying": "cancelled",
        "dlv_success": "success",
        "dlv_failed": "failed",
        "dlv_other": "created",
    }
    nexts = await db.fetchval(
        "SELECT count(*) FROM deliveries WHERE status = 'cancelled' AND next_attempt_at IS NOT NULL"
    )
    assert nexts == 0


# --------------------------------------------------------------------------------------------
# disable / enable


async def test_disable_and_enable(client: Client) -> None:
    hook = await create(client)
    resp = await client.post(f"/v1/webhooks/{hook['id']}/disable", headers=ADMIN)
    assert resp.status == 200
    got = await resp.json()
    assert got["enabled"] is False
    assert got["disabled_reason"] == "manual"
    disabled_at = datetime.fromisoformat(got["disabled_at"])
    assert disabled_at >= datetime.fromisoformat(hook["created_at"])

    # Disabling again keeps the original time.
    again = await (await client.post(f"/v1/webhooks/{hook['id']}/disable", headers=ADMIN)).json()
    assert again["disabled_at"] == got["disabled_at"]

    stored = await (await client.get(f"/v1/webhooks/{hook['id']}", headers=ADMIN)).json()
    assert stored["enabled"] is False and stored["disabled_reason"] == "manual"

    resp = await client.post(f"/v1/webhooks/{hook['id']}/enable", headers=ADMIN)
    assert resp.status == 200
    got = await resp.json()
    assert got["enabled"] is True
    assert got["disabled_reason"] is None
    assert got["disabled_at"] is None
    stored = await (await client.get(f"/v1/webhooks/{hook['id']}", headers=ADMIN)).json()
    assert stored["enabled"] is True and stored["disabled_at"] is None


@pytest.mark.parametrize("action", ["disable", "enable"])
async def test_disable_enable_missing_is_404(client: Client, action: str) -> None:
    resp = await client.post(f"/v1/webhooks/wh_01ARZ3NDEKTSV4RRFFQ69G5FAV/{action}", headers=ADMIN)
    await problem(resp, 404)


# --------------------------------------------------------------------------------------------
# secrets


async def test_get_secret(client: Client) -> None:
    hook = await create(client)
    resp = await client.get(f"/v1/webhooks/{hook['id']}/secret", headers=ADMIN)
    assert resp.status == 200
    assert await resp.json() == {"secret": hook["secret"]}


async def test_secret_routes_404_for_missing_webhook(client: Client) -> None:
    missing = "wh_01ARZ3NDEKTSV4RRFFQ69G5FAV"
    await problem(await client.get(f"/v1/webhooks/{missing}/secret", headers=ADMIN), 404)
    await problem(await client.post(f"/v1/webhooks/{missing}/secret/rotate", headers=ADMIN), 404)


async def test_rotate_keeps_the_old_secret_signing_during_grace(
    client: Client, db: asyncpg.Connection
) -> None:
    hook = await create(client)
    old = hook["secret"]
    resp = await client.post(f"/v1/webhooks/{hook['id']}/secret/rotate", headers=ADMIN)
    assert resp.status == 200
    new = (await resp.json())["secret"]
    assert new.startswith("whsec_")
    assert new != old
    assert 24 <= len(base64.b64decode(new[len("whsec_") :], validate=True)) <= 64
    current = await (await client.get(f"/v1/webhooks/{hook['id']}/secret", headers=ADMIN)).json()
    assert current == {"secret": new}
    assert await webhook_store.signing_secrets(db, hook["id"]) == [new, old]

    # A second rotation within the grace period keeps all three signing, newest first.
    newer = (
        await (await client.post(f"/v1/webhooks/{hook['id']}/secret/rotate", headers=ADMIN)).json()
    )["secret"]
    assert await webhook_store.signing_secrets(db, hook["id"]) == [newer, new, old]


async def test_rotate_with_zero_grace_drops_the_old_secret(
    make_client: Any, db: asyncpg.Connection
) -> None:
    client: Client = await make_client(secret_grace_seconds=0)
    hook = await create(client)
    resp = await client.post(f"/v1/webhooks/{hook['id']}/secret/rotate", headers=ADMIN)
    assert resp.status == 200
    new = (await resp.json())["secret"]
    assert new != hook["secret"]
    assert await webhook_store.signing_secrets(db, hook["id"]) == [new]


# --------------------------------------------------------------------------------------------
# validation of the create body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"url": "http://example.com/", "event_types": ["a"]}, "name", id="no-name"),
        pytest.param(webhook_body(name=""), "name", id="empty-name"),
        pytest.param(webhook_body(name="   "), "name", id="blank-name"),
        pytest.param(webhook_body(name="x" * 256), "name", id="long-name"),
        pytest.param({"name": "n", "event_types": ["a"]}, "url", id="no-url"),
        pytest.param(webhook_body(url="ftp://example.com/x"), "url", id="ftp-url"),
        pytest.param(webhook_body(url="http://"), "url", id="no-host"),
        pytest.param(webhook_body(url="/relative/path"), "url", id="relative-url"),
        pytest.param(webhook_body(url="not a url"), "url", id="not-a-url"),
        pytest.param(webhook_body(url="http://user:pw@example.com/"), "url", id="credentials"),
        pytest.param(webhook_body(url="http://user@example.com/"), "url", id="user-only"),
        pytest.param(webhook_body(url="http://example.com:99999/"), "url", id="bad-port"),
        pytest.param(webhook_body(url="http://example.com/#frag"), "url", id="fragment"),
        pytest.param(webhook_body(url="http://[::1/"), "url", id="broken-ipv6"),
        pytest.param(
            webhook_body(url="http://example.com/" + "a" * 2100), "url", id="too-long-url"
        ),
        pytest.param({"name": "n", "url": "http://example.com/"}, "event_types", id="no-types"),
        pytest.param(webhook_body(event_types=[]), "event_types", id="empty-types"),
        pytest.param(webhook_body(event_types=["order.*.x"]), "event_types", id="mid-star"),
        pytest.param(webhook_body(event_types=["a..b"]), "event_types", id="double-dot"),
        pytest.param(webhook_body(event_types=["ok", ""]), "event_types", id="empty-pattern"),
        pytest.param(webhook_body(event_types=["order*"]), "event_types", id="glued-star"),
        pytest.param(webhook_body(event_types=["has space"]), "event_types", id="space"),
        pytest.param(webhook_body(event_types="order.*"), "event_types", id="types-string"),
        pytest.param(webhook_body(headers={"Host": "evil"}), "headers", id="host-header"),
        pytest.param(
            webhook_body(headers={"webhook-signature": "v1,x"}), "headers", id="sig-header"
        ),
        pytest.param(
            webhook_body(headers={"Webhook-Id": "x"}), "headers", id="webhook-id-mixed-case"
        ),
        pytest.param(
            webhook_body(headers={"Content-Type": "text/plain"}), "headers", id="content-type"
        ),
        pytest.param(webhook_body(headers={"X-A": "a\r\nX-B: b"}), "headers", id="crlf-value"),
        pytest.param(webhook_body(headers={"X-A": "a\nb"}), "headers", id="lf-value"),
        pytest.param(webhook_body(headers={"X-A": "a\rb"}), "headers", id="cr-value"),
        pytest.param(webhook_body(headers={"X-A": "a\x00b"}), "headers", id="nul-value"),
        pytest.param(webhook_body(headers={"Bad Name": "x"}), "headers", id="space-in-name"),
        pytest.param(webhook_body(headers={"X:Y": "x"}), "headers", id="colon-in-name"),
        pytest.param(webhook_body(headers={"": "x"}), "headers", id="empty-name"),
        pytest.param(webhook_body(headers={"X-\u00e9": "x"}), "headers", id="non-ascii-name"),
        pytest.param(webhook_body(headers={"X-A": 1}), "headers", id="non-string-value"),
        pytest.param(webhook_body(headers=["X-A"]), "headers", id="headers-list"),
        pytest.param(webhook_body(metadata=[1]), "metadata", id="metadata-list"),
        pytest.param(webhook_body(name=5), "name", id="name-int"),
        pytest.param(webhook_body(url=5), "url", id="url-int"),
        pytest.param(webhook_body(enabled="yes"), "enabled", id="enabled-string"),
        pytest.param(webhook_body(enabled=1), "enabled", id="enabled-int"),
        pytest.param(webhook_body(include_payload="false"), "include_payload", id="payload-str"),
        pytest.param(webhook_body(max_retries="3"), "max_retries", id="retries-string"),
        pytest.param(webhook_body(max_retries=1.5), "max_retries", id="retries-float"),
        pytest.param(webhook_body(max_retries=-1), "max_retries", id="retries-negative"),
        pytest.param(webhook_body(timeout_seconds=0), "timeout_seconds", id="timeout-zero"),
        pytest.param(webhook_body(timeout_seconds="5"), "timeout_seconds", id="timeout-str"),
        pytest.param(
            webhook_body(rate_limit_per_second=-1), "rate_limit_per_second", id="rate-neg"
        ),
        pytest.param(webhook_body(max_in_flight=0), "max_in_flight", id="in-flight-zero"),
        pytest.param(webhook_body(description=7), "description", id="description-int"),
        pytest.param(webhook_body(secret=123), "secret", id="secret-int"),
        pytest.param(webhook_body(colour="red"), "colour", id="unknown-field"),
        # Text Postgres cannot store must be refused up front, not crash into a 500.
        pytest.param(webhook_body(name="a\x00b"), "name", id="nul-in-name"),
        pytest.param(webhook_body(description="a\x00b"), "description", id="nul-in-description"),
        pytest.param(webhook_body(metadata={"k": "a\x00b"}), "metadata", id="nul-in-metadata"),
        pytest.param(webhook_body(metadata={"k\x00": 1}), "metadata", id="nul-in-metadata-key"),
        pytest.param(webhook_body(url="http://example.com/\x00"), "url", id="nul-in-url"),
        # Whitespace and control characters make a URL invalid.
        pytest.param(webhook_body(url="http://exa mple.com/"), "url", id="space-in-host"),
        pytest.param(webhook_body(url="http://example.com/\r\nX: y"), "url", id="crlf-in-url"),
    ],
)
async def test_create_validation(client: Client, body: dict[str, Any], field: str) -> None:
    resp = await client.post("/v1/webhooks", json=body, headers=ADMIN)
    await validation_error(resp, field)
    assert await list_all(client) == []


async def test_validation_lists_every_bad_field(client: Client) -> None:
    resp = await client.post(
        "/v1/webhooks", json={"name": "", "url": "ftp://x", "event_types": []}, headers=ADMIN
    )
    body = await problem(resp, 422)
    fields = {e["field"] for e in body["errors"]}
    assert {"name", "url", "event_types"} <= fields


async def test_create_accepts_allowed_custom_headers(client: Client) -> None:
    hook = await create(client, headers={"Authorization": "Bearer abc", "X-Tab": "a\tb"})
    assert hook["headers"] == {"Authorization": "Bearer abc", "X-Tab": "a\tb"}


async def test_duplicate_patterns_are_stored_once(client: Client) -> None:
    hook = await create(client, event_types=["a.b", "a.*", "a.b"])
    assert hook["event_types"] == ["a.b", "a.*"]


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"{", id="truncated"),
        pytest.param(b"{'name': 'x'}", id="single-quotes"),
        pytest.param(b"not json at all", id="text"),
        pytest.param(b'{"name": "x",}', id="trailing-comma"),
        pytest.param(b"\xff\xfe\x00", id="binary"),
    ],
)
async def test_malformed_json_is_400(client: Client, raw: bytes) -> None:
    resp = await client.post(
        "/v1/webhooks", data=raw, headers={**ADMIN, "Content-Type": "application/json"}
    )
    await problem(resp, 400)


@pytest.mark.parametrize("raw", [b"", b"   ", b"\n"])
async def test_empty_body_is_400(client: Client, raw: bytes) -> None:
    resp = await client.post(
        "/v1/webhooks", data=raw, headers={**ADMIN, "Content-Type": "application/json"}
    )
    await problem(resp, 400)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"[]", id="empty-list"),
        pytest.param(b'[{"name": "x"}]', id="list"),
        pytest.param(b'"a string"', id="string"),
        pytest.param(b"42", id="number"),
        pytest.param(b"null", id="null"),
        pytest.param(b"true", id="bool"),
    ],
)
async def test_non_object_json_is_422(client: Client, raw: bytes) -> None:
    resp = await client.post(
        "/v1/webhooks", data=raw, headers={**ADMIN, "Content-Type": "application/json"}
    )
    body = await problem(resp, 422)
    assert body["errors"] and all(e["field"] and e["message"] for e in body["errors"])


# --------------------------------------------------------------------------------------------
# private targets


PRIVATE_URLS = [
    "http://127.0.0.1/",
    "http://127.0.0.1:8080/hook",
    "http://localhost/",
    "http://LOCALHOST:9/x",
    "http://app.localhost/",
    "http://10.0.0.1/",
    "http://192.168.1.10/",
    "http://172.16.0.1/",
    "http://[::1]/",
    "http://169.254.169.254/",
    "http://[::ffff:127.0.0.1]/",
    "http://0.0.0.0/",
    "http://[fe80::1]/",
    "http://100.64.0.1/",
    "http://2130706433/",
]


@pytest.mark.parametrize("url", PRIVATE_URLS)
async def test_private_targets_are_refused_on_create(strict_client: Client, url: str) -> None:
    resp = await strict_client.post("/v1/webhooks", json=webhook_body(url=url), headers=ADMIN)
    await validation_error(resp, "url")
    assert await list_all(strict_client) == []


@pytest.mark.parametrize("url", PRIVATE_URLS)
async def test_private_targets_are_refused_on_patch(strict_client: Client, url: str) -> None:
    hook = await create(strict_client, url="https://93.184.216.34/hook")
    resp = await strict_client.patch(f"/v1/webhooks/{hook['id']}", json={"url": url}, headers=ADMIN)
    await validation_error(resp, "url")
    stored = await (await strict_client.get(f"/v1/webhooks/{hook['id']}", headers=ADMIN)).json()
    assert stored["url"] == "https://93.184.216.34/hook"


@pytest.mark.parametrize(
    "url", ["https://93.184.216.34/", "http://93.184.216.34:8443/in", "https://[2606:4700::1]/"]
)
async def test_public_ip_literals_are_accepted(strict_client: Client, url: str) -> None:
    hook = await create(strict_client, url=url)
    assert hook["url"] == url
    resp = await strict_client.patch(
        f"/v1/webhooks/{hook['id']}", json={"url": "https://93.184.216.35/"}, headers=ADMIN
    )
    assert resp.status == 200


async def test_private_targets_are_allowed_when_configured(client: Client) -> None:
    for url in ("http://127.0.0.1:9/", "http://localhost/", "http://10.0.0.1/"):
        assert (await create(client, url=url))["url"] == url


# --------------------------------------------------------------------------------------------
# shutdown after a change


async def test_shutdown_is_not_stuck_when_a_change_wakes_the_scheduler(make_client: Any) -> None:
    """Every webhook change (and every NOTIFY from another instance) sets the scheduler's wake
    event. If the application shuts down while that wake-up is pending, shutdown must still
    finish: SIGTERM has to stop the process, and each test's app teardown has to return."""
    client: Client = await make_client()
    await create(client)
    scheduler = client.app[SCHEDULER]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    # Wait until the scheduler is idle, waiting to be woken.
    while not scheduler.wake._waiters:
        assert loop.time() < deadline, "the scheduler never went idle"
        await asyncio.sleep(0.01)

    scheduler.wake.set()  # what a PATCH/enable/NOTIFY does ...
    stopping = asyncio.ensure_future(scheduler.stop())  # ... as shutdown begins
    done, _ = await asyncio.wait([stopping], timeout=5)
    if not done:
        # Unstick it so the rest of the teardown can run, then report.
        assert scheduler._task is not None
        scheduler._task.cancel()
        await asyncio.wait([stopping], timeout=5)
    assert done, (
        "Scheduler.stop() hung: asyncio.wait_for() on Python 3.11 swallowed the cancellation "
        "because the wake event was set at the same moment (dispatcher/scheduler.py _run)"
    )
