"""Event types with a JSON Schema and examples: set through the API, enforced at ingestion."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from tests.helpers import ADMIN, PUBLISHER, assert_problem

Client = TestClient[Any, Any]

ORDER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["order", "lines"],
    "properties": {
        "order": {"type": "integer"},
        "lines": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["sku", "qty"],
                "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
            },
        },
    },
}
GOOD = {"order": 42, "lines": [{"sku": "A-1", "qty": 1}]}
BAD_THIRD_LINE = {
    "order": 42,
    "lines": [{"sku": "A-1", "qty": 1}, {"sku": "A-2", "qty": 2}, {"sku": 3, "qty": 1}],
}


async def problem_fields(resp: Any, status: int = 422) -> list[dict[str, str]]:
    text = await resp.text()
    assert resp.status == status, text
    assert resp.content_type == "application/problem+json", text
    body: dict[str, Any] = await resp.json(content_type=None)
    assert_problem(body, status)
    errors: list[dict[str, str]] = body["errors"]
    assert all(e["message"] for e in errors), body
    return errors


async def create_type(client: Client, name: str = "order.created", **fields: Any) -> Any:
    body = {"name": name, "schema": ORDER_SCHEMA, "examples": [GOOD], **fields}
    resp = await client.post("/v1/event-types", json=body, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def events_stored(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT count(*) FROM events"))


async def test_schema_and_examples_are_stored_and_returned_as_written(client: Client) -> None:
    created = await create_type(client, description="An order was placed.")
    assert created["schema"] == ORDER_SCHEMA
    assert list(created["schema"]["properties"]) == ["order", "lines"]  # order kept
    assert created["examples"] == [GOOD]
    got = await (await client.get("/v1/event-types/order.created", headers=ADMIN)).json()
    assert got["schema"] == ORDER_SCHEMA and got["examples"] == [GOOD]
    listed = await (await client.get("/v1/event-types", headers=ADMIN)).json()
    assert listed["data"][0]["schema"] == ORDER_SCHEMA


async def test_a_type_without_schema_has_null_schema_and_no_examples(client: Client) -> None:
    resp = await client.post("/v1/event-types", json={"name": "plain"}, headers=ADMIN)
    body = await resp.json()
    assert body["schema"] is None and body["examples"] == []


async def test_an_invalid_schema_is_a_422_naming_schema_and_where_inside(client: Client) -> None:
    bad = {"type": "object", "properties": {"total": {"type": "nubmer"}}}
    resp = await client.post("/v1/event-types", json={"name": "a", "schema": bad}, headers=ADMIN)
    errors = await problem_fields(resp)
    assert errors[0]["field"] == "schema"
    assert "properties.total.type" in errors[0]["message"]
    assert (await client.get("/v1/event-types/a", headers=ADMIN)).status == 404


async def test_a_schema_that_is_not_an_object_is_refused(client: Client) -> None:
    resp = await client.post("/v1/event-types", json={"name": "a", "schema": 3}, headers=ADMIN)
    assert [e["field"] for e in await problem_fields(resp)] == ["schema"]


async def test_a_remote_ref_is_refused_and_nothing_is_fetched(client: Client) -> None:
    schema = {"properties": {"a": {"$ref": "http://127.0.0.1:9/other.json"}}}
    resp = await client.post("/v1/event-types", json={"name": "a", "schema": schema}, headers=ADMIN)
    errors = await problem_fields(resp)
    assert errors[0]["field"] == "schema"
    assert "properties.a.$ref" in errors[0]["message"]


async def test_an_oversized_schema_is_refused(client: Client) -> None:
    schema = {"description": "x" * 70000}
    resp = await client.post("/v1/event-types", json={"name": "a", "schema": schema}, headers=ADMIN)
    assert [e["field"] for e in await problem_fields(resp)] == ["schema"]


async def test_an_example_breaking_the_schema_is_a_422_naming_it(client: Client) -> None:
    resp = await client.post(
        "/v1/event-types",
        json={"name": "a", "schema": ORDER_SCHEMA, "examples": [GOOD, BAD_THIRD_LINE]},
        headers=ADMIN,
    )
    errors = await problem_fields(resp)
    assert [e["field"] for e in errors] == ["examples[1]"]
    assert "lines[2].sku" in errors[0]["message"]


async def test_patch_checks_new_examples_against_the_stored_schema(client: Client) -> None:
    await create_type(client)
    resp = await client.patch(
        "/v1/event-types/order.created", json={"examples": [GOOD, {"order": "x"}]}, headers=ADMIN
    )
    errors = await problem_fields(resp)
    assert {e["field"] for e in errors} == {"examples[1]"}
    assert {e["message"] for e in errors} == {
        'at order: "x" is not of type "integer"',
        "at lines: is a required property",
    }
    got = await (await client.get("/v1/event-types/order.created", headers=ADMIN)).json()
    assert got["examples"] == [GOOD]


async def test_patch_checks_stored_examples_against_a_new_schema(client: Client) -> None:
    await create_type(client)
    stricter = {**ORDER_SCHEMA, "required": ["order", "lines", "customer"]}
    resp = await client.patch(
        "/v1/event-types/order.created", json={"schema": stricter}, headers=ADMIN
    )
    errors = await problem_fields(resp)
    assert errors == [{"field": "examples[0]", "message": "at customer: is a required property"}]


async def test_patch_changes_and_removes_the_schema(client: Client) -> None:
    await create_type(client)
    resp = await client.patch(
        "/v1/event-types/order.created", json={"description": "changed"}, headers=ADMIN
    )
    body = await resp.json()
    assert body["schema"] == ORDER_SCHEMA and body["description"] == "changed"
    resp = await client.patch("/v1/event-types/order.created", json={"schema": None}, headers=ADMIN)
    body = await resp.json()
    assert resp.status == 200 and body["schema"] is None and body["examples"] == [GOOD]
    resp = await client.patch(
        "/v1/event-types/order.created", json={"examples": None}, headers=ADMIN
    )
    assert [e["field"] for e in await problem_fields(resp)] == ["examples"]


async def test_an_invalid_event_is_a_422_pointing_into_data_and_is_not_stored(
    client: Client, db: asyncpg.Connection
) -> None:
    await create_type(client)
    resp = await client.post(
        "/v1/events", json={"type": "order.created", "data": BAD_THIRD_LINE}, headers=PUBLISHER
    )
    errors = await problem_fields(resp)
    assert errors == [{"field": "data.lines[2].sku", "message": '3 is not of type "string"'}]
    assert await events_stored(db) == 0


async def test_a_missing_required_property_is_named_by_its_path(client: Client) -> None:
    await create_type(client)
    data = {"order": 1, "lines": [{"sku": "a", "qty": 1}, {"qty": 2}]}
    resp = await client.post(
        "/v1/events", json={"type": "order.created", "data": data}, headers=PUBLISHER
    )
    errors = await problem_fields(resp)
    assert errors == [{"field": "data.lines[1].sku", "message": "is a required property"}]


async def test_a_valid_event_is_accepted(client: Client, db: asyncpg.Connection) -> None:
    await create_type(client)
    resp = await client.post(
        "/v1/events", json={"type": "order.created", "data": GOOD}, headers=PUBLISHER
    )
    assert resp.status == 202, await resp.text()
    assert await events_stored(db) == 1


async def test_types_without_a_schema_are_not_validated(client: Client) -> None:
    await create_type(client)
    for type_ in ("order.updated", "unregistered"):
        resp = await client.post(
            "/v1/events", json={"type": type_, "data": "anything"}, headers=PUBLISHER
        )
        assert resp.status == 202, await resp.text()


async def test_a_batch_with_one_invalid_event_stores_nothing(
    client: Client, db: asyncpg.Connection
) -> None:
    await create_type(client)
    events = [{"type": "order.created", "data": GOOD, "id": f"evt-{i}"} for i in range(5)]
    events[3]["data"] = BAD_THIRD_LINE
    events.append({"type": "other", "data": 1})
    resp = await client.post("/v1/events/batch", json={"events": events}, headers=PUBLISHER)
    errors = await problem_fields(resp)
    assert errors == [
        {"field": "events[3].data.lines[2].sku", "message": '3 is not of type "string"'}
    ]
    assert await events_stored(db) == 0
    # The same batch, corrected, goes in whole.
    events[3]["data"] = GOOD
    resp = await client.post("/v1/events/batch", json={"events": events}, headers=PUBLISHER)
    assert resp.status == 202, await resp.text()
    assert await events_stored(db) == 6


async def test_removing_the_schema_stops_validation_at_once(client: Client) -> None:
    await create_type(client)
    await client.patch("/v1/event-types/order.created", json={"schema": None}, headers=ADMIN)
    resp = await client.post(
        "/v1/events", json={"type": "order.created", "data": BAD_THIRD_LINE}, headers=PUBLISHER
    )
    assert resp.status == 202, await resp.text()


async def test_a_disabled_type_with_a_schema_still_validates(client: Client) -> None:
    await create_type(client, enabled=False)
    resp = await client.post(
        "/v1/events", json={"type": "order.created", "data": {}}, headers=PUBLISHER
    )
    assert [e["field"] for e in await problem_fields(resp)] == ["data.order", "data.lines"]
    resp = await client.post(
        "/v1/events", json={"type": "order.created", "data": GOOD}, headers=PUBLISHER
    )
    assert (await resp.json())["deliveries"] == 0
