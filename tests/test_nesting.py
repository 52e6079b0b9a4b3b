"""Deeply nested JSON: refused with a 422 naming the field, and rows stored deeper before the
cap existed never make a read fail (orjson reads 1,024 levels but writes only 254)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from dispatcher import nesting, transfer
from dispatcher.api.common import json_response
from dispatcher.nesting import MAX_JSON_DEPTH
from tests.helpers import ADMIN, PUBLISHER, webhook_body
from tests.test_admin import signed_in


def nested_list(depth: int) -> str:
    return "[" * depth + "]" * depth


def nested_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def test_depth_is_measured_in_levels_of_arrays_and_objects() -> None:
    assert not nesting.deeper_than(1, 0)
    assert not nesting.deeper_than([], 1)
    assert nesting.deeper_than([[]], 1)
    assert not nesting.deeper_than({"a": [1, {"b": 2}]}, 3)
    assert nesting.deeper_than({"a": [1, {"b": {}}]}, 3)
    # Iterative: far past Python's recursion limit.
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    assert nesting.deeper_than(deep, 99_999)
    assert not nesting.deeper_than(deep, 100_001)


def test_stored_values_too_deep_to_write_are_kept_as_text() -> None:
    shallow = nested_list(254)
    assert orjson.loads(shallow) == nesting.loads_stored(shallow)
    deep = nested_list(300)
    value = nesting.loads_stored(deep)
    assert orjson.dumps({"data": value}) == b'{"data":' + deep.encode() + b"}"


async def post_raw(client: Any, path: str, body: str, headers: dict[str, str]) -> Any:
    return await client.post(
        path, data=body.encode(), headers={**headers, "Content-Type": "application/json"}
    )


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 300, 1000])
async def test_deep_event_data_is_refused(client: Any, db: asyncpg.Connection, depth: int) -> None:
    body = '{"type":"order.created","data":' + nested_list(depth) + "}"
    resp = await post_raw(client, "/v1/events", body, PUBLISHER)
    assert resp.status == 422, await resp.text()
    problem = await resp.json()
    assert [e["field"] for e in problem["errors"]] == ["data"]
    assert str(MAX_JSON_DEPTH) in problem["errors"][0]["message"]
    assert await db.fetchval("SELECT count(*) FROM events") == 0


async def test_data_at_the_cap_is_accepted_and_listed(client: Any) -> None:
    data = orjson.loads(nested_list(MAX_JSON_DEPTH))
    resp = await client.post(
        "/v1/events", json={"type": "order.created", "id": "e-cap", "data": data}, headers=PUBLISHER
    )
    assert resp.status == 202, await resp.text()
    listed = await client.get("/v1/events", headers=ADMIN)
    assert listed.status == 200
    assert (await listed.json())["data"][0]["data"] == data


async def test_deep_data_in_a_batch_names_the_event(client: Any, db: asyncpg.Connection) -> None:
    events = [
        '{"type":"order.created","data":1}',
        '{"type":"order.created","data":' + nested_object(MAX_JSON_DEPTH + 1) + "}",
    ]
    resp = await post_raw(
        client, "/v1/events/batch", '{"events":[' + ",".join(events) + "]}", PUBLISHER
    )
    assert resp.status == 422, await resp.text()
    assert [e["field"] for e in (await resp.json())["errors"]] == ["events[1].data"]
    assert await db.fetchval("SELECT count(*) FROM events") == 0


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 300, 500])
async def test_deep_webhook_metadata_is_refused(
    client: Any, db: asyncpg.Connection, depth: int
) -> None:
    body = json.dumps(webhook_body())[:-1] + ', "metadata": ' + nested_object(depth) + "}"
    resp = await post_raw(client, "/v1/webhooks", body, ADMIN)
    assert resp.status == 422, await resp.text()
    assert [e["field"] for e in (await resp.json())["errors"]] == ["metadata"]
    assert await db.fetchval("SELECT count(*) FROM webhooks") == 0

    created = await client.post("/v1/webhooks", json=webhook_body(), headers=ADMIN)
    hook = await created.json()
    patch = '{"metadata": ' + nested_object(depth) + "}"
    resp = await client.patch(
        f"/v1/webhooks/{hook['id']}",
        data=patch,
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert resp.status == 422
    assert await db.fetchval("SELECT metadata::text FROM webhooks") == "{}"


async def test_deep_metadata_in_the_console_form_is_a_field_error(
    client: Any, db: asyncpg.Connection
) -> None:
    csrf = await signed_in(client)
    for depth in (300, 2000):
        form = {
            "csrf_token": csrf,
            "name": "deep",
            "url": "http://127.0.0.1:9/hook",
            "event_types": "order.*",
            "metadata": nested_object(depth),
        }
        resp = await client.post("/admin/webhooks/new", data=form, allow_redirects=False)
        assert resp.status in (400, 422), await resp.text()
        assert "nest" in await resp.text() or "JSON" in await resp.text()
    assert await db.fetchval("SELECT count(*) FROM webhooks") == 0


async def test_import_refuses_deep_metadata_naming_the_record(tmp_path: Path) -> None:
    hook = {**webhook_body(), "id": "wh_deep", "metadata": orjson.loads(nested_object(100))}
    with pytest.raises(transfer.TransferError) as caught:
        transfer.parse(orjson.dumps({"webhooks": [hook]}))
    assert any(p.startswith("webhooks[0].metadata:") for p in caught.value.problems)
    hook["metadata"] = {}
    text = orjson.dumps({"webhooks": [hook]}).decode().replace("{}", nested_object(1000))
    with pytest.raises(transfer.TransferError, match="levels deep"):
        transfer.parse(text)


async def test_rows_stored_too_deep_before_the_cap_are_still_answered(
    client: Any, db: asyncpg.Connection, database_url: str
) -> None:
    """What the old code let in (data 300 levels deep, metadata 400) reads back as stored."""
    deep_data = nested_list(300)
    deep_meta = nested_object(400)
    await db.execute(
        "INSERT INTO events (id, type, data, occurred_at)"
        " VALUES ('e-deep', 'a.b', $1::json, now())",
        deep_data,
    )
    created = await client.post("/v1/webhooks", json=webhook_body(), headers=ADMIN)
    hook_id = (await created.json())["id"]
    await db.execute("UPDATE webhooks SET metadata = $1::json", deep_meta)

    for path in ("/v1/events", "/v1/events?type=a.b", "/v1/events/e-deep"):
        resp = await client.get(path, headers=ADMIN)
        assert resp.status == 200, (path, await resp.text())
        assert '"data":' + deep_data in await resp.text()

    for method, path, body in [
        ("GET", "/v1/webhooks", None),
        ("GET", f"/v1/webhooks/{hook_id}", None),
        ("PATCH", f"/v1/webhooks/{hook_id}", {"name": "renamed"}),
        ("POST", f"/v1/webhooks/{hook_id}/disable", None),
        ("POST", f"/v1/webhooks/{hook_id}/enable", None),
    ]:
        resp = await client.request(method, path, json=body, headers=ADMIN)
        assert resp.status == 200, (method, path, await resp.text())
        answer = json.loads(await resp.text())
        got = answer["data"][0] if "data" in answer else answer
        assert got["metadata"] == json.loads(deep_meta)

    document = json.loads(transfer.dumps(await transfer.export_dsn(database_url)))
    assert document["webhooks"][0]["metadata"] == json.loads(deep_meta)

    await signed_in(client)
    for page in (f"/admin/webhooks/{hook_id}", f"/admin/webhooks/{hook_id}/edit"):
        resp = await client.get(page)
        assert resp.status == 200, (page, await resp.text())


def test_stored_integers_beyond_64_bits_are_read_back_exactly() -> None:
    text = (
        '{"n": 18446744073709551616, "m": -123456789012345678901234567890,'
        ' "s": "1234567890123456789"}'
    )
    assert nesting.loads_stored(text) == {
        "n": 18446744073709551616,
        "m": -123456789012345678901234567890,
        "s": "1234567890123456789",
    }


async def test_an_event_with_integers_beyond_64_bits_reads_back_exactly(client: Any) -> None:
    body = b'{"type": "order.created", "data": {"n": 18446744073709551616}}'
    resp = await client.post(
        "/v1/events", data=body, headers={**PUBLISHER, "Content-Type": "application/json"}
    )
    assert resp.status == 202, await resp.text()
    event_id = (await resp.json())["id"]
    got = await client.get(f"/v1/events/{event_id}", headers=ADMIN)
    assert b'"n":18446744073709551616' in (await got.read()).replace(b" ", b"")


def test_the_stdlib_fallback_writes_timestamps_as_orjson_does() -> None:
    when = datetime(2026, 12, 1, 16, 25, 53, 327337, tzinfo=UTC)
    resp = json_response({"n": 18446744073709551616, "created_at": when})
    assert resp.body is not None
    assert json.loads(bytes(resp.body)) == {  # type: ignore[arg-type]
        "n": 18446744073709551616,
        "created_at": "2026-12-01T16:25:53.327337+00:00",
    }
