"""``GET /v1/catalogue``: the event types as an OpenAPI 3.1 document receivers generate from."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from dispatcher import catalogue
from tests.helpers import ADMIN, PUBLISHER

Client = TestClient[Any, Any]

# A schema with references inside itself: they must still resolve inside the document.
ORDER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["order", "customer"],
    "properties": {
        "order": {"type": "integer"},
        "customer": {"$ref": "#/$defs/customer"},
        "lines": {"type": "array", "items": {"$ref": "#/$defs/line"}},
    },
    "$defs": {
        "customer": {"type": "object", "required": ["email"], "properties": {"email": {}}},
        "line": {"type": "object", "required": ["sku"], "properties": {"sku": {"type": "string"}}},
    },
}
EXAMPLE = {"order": 1, "customer": {"email": "a@example.com"}, "lines": [{"sku": "A"}]}


async def register(client: Client, name: str, **fields: Any) -> None:
    resp = await client.post("/v1/event-types", json={"name": name, **fields}, headers=ADMIN)
    assert resp.status == 201, await resp.text()


async def fetch(client: Client) -> dict[str, Any]:
    resp = await client.get("/v1/catalogue", headers=ADMIN)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/json"
    body: dict[str, Any] = await resp.json()
    return body


def conforms(document: dict[str, Any], component: str, value: Any) -> bool:
    """Whether ``value`` is valid against a component, references resolved in the document."""
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource("urn:catalogue", resource)
    validator = jsonschema.Draft202012Validator(
        {"$ref": f"urn:catalogue#/components/schemas/{component}"}, registry=registry
    )
    return bool(validator.is_valid(value))


async def test_catalogue_is_valid_openapi_with_one_entry_per_enabled_type(client: Client) -> None:
    await register(
        client,
        "order.created",
        description="An order was placed.",
        schema=ORDER_SCHEMA,
        examples=[EXAMPLE],
    )
    await register(client, "order.cancelled")
    await register(client, "internal.tick", enabled=False)
    document = await fetch(client)
    validate(document)  # openapi-spec-validator: raises on an invalid document
    assert document["openapi"].startswith("3.1")
    assert sorted(document["webhooks"]) == ["order.cancelled", "order.created"]

    operation = document["webhooks"]["order.created"]["post"]
    assert operation["description"] == "An order was placed."
    headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    media = operation["requestBody"]["content"]["application/json"]
    [example] = media["examples"].values()
    assert example["value"]["data"] == EXAMPLE
    assert example["value"]["type"] == "order.created"

    envelope = document["components"]["schemas"]["order.created"]
    assert set(envelope["properties"]) == {"id", "type", "timestamp", "data"}
    assert envelope["properties"]["type"]["const"] == "order.created"
    # The data schema's own references resolve inside the document, so a receiver's generator
    # (and this validator) sees the real shape: the example conforms, a wrong one does not.
    assert conforms(document, "order.created", example["value"])
    wrong = {**example["value"], "data": {**EXAMPLE, "lines": [{"sku": 5}]}}
    assert not conforms(document, "order.created", wrong)
    assert not conforms(document, "order.created", {**example["value"], "type": "other"})


async def test_an_empty_catalogue_is_still_a_valid_document(client: Client) -> None:
    document = await fetch(client)
    validate(document)
    assert document["webhooks"] == {}


async def test_catalogue_version_changes_when_a_type_changes(client: Client) -> None:
    await register(client, "a")
    before = (await fetch(client))["info"]["version"]
    resp = await client.patch("/v1/event-types/a", json={"description": "new"}, headers=ADMIN)
    assert resp.status == 200
    assert (await fetch(client))["info"]["version"] != before


async def test_a_publish_token_may_not_read_the_catalogue(client: Client) -> None:
    resp = await client.get("/v1/catalogue", headers=PUBLISHER)
    assert resp.status == 403
    resp = await client.get("/v1/catalogue")
    assert resp.status == 401


@pytest.mark.parametrize(
    ("schema", "base", "expected"),
    [
        ({"$ref": "#/$defs/a"}, "#/components/schemas/x", "#/components/schemas/x/$defs/a"),
        ({"$ref": "#"}, "#/components/schemas/x", "#/components/schemas/x"),
        ({"$ref": "#anchor"}, "#/components/schemas/x", "#anchor"),
    ],
)
def test_rebase_refs_points_local_references_at_the_component(
    schema: dict[str, Any], base: str, expected: str
) -> None:
    assert catalogue.rebase_refs(schema, base)["$ref"] == expected


def test_a_schema_with_its_own_id_keeps_its_references() -> None:
    schema = {"$id": "urn:order", "$ref": "#/$defs/a", "$defs": {"a": {}}}
    assert catalogue.rebase_refs(schema, "#/components/schemas/x")["$ref"] == "#/$defs/a"


def test_a_type_named_like_another_types_data_component_does_not_collide() -> None:
    rows = [
        {"name": "a", "description": "", "schema": {"type": "integer"}, "examples": []},
        {"name": "a.data", "description": "", "schema": {"type": "string"}, "examples": []},
    ]
    document = catalogue.build(rows)
    validate(document)
    schemas = document["components"]["schemas"]
    assert schemas["a"]["properties"]["data"]["$ref"] != "#/components/schemas/a.data"
    envelope = {"id": "e", "timestamp": "t"}
    assert conforms(document, "a", {**envelope, "type": "a", "data": 1})
    assert conforms(document, "a.data", {**envelope, "type": "a.data", "data": "x"})
    assert not conforms(document, "a", {**envelope, "type": "a", "data": "x"})
