"""``dispatcher event-types list|show|create|update|delete|import``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
from aiohttp.test_utils import TestClient, TestServer

from dispatcher.app_keys import REGISTRY
from tests.helpers import ADMIN
from tests.test_cli import (
    Invoke,
    _keep_logging,
    as_json,
    base_env,
    http,
    invoke,
    ok,
    server,
    settings,
)

__all__ = ["_keep_logging", "base_env", "http", "invoke", "server", "settings"]  # fixtures

SCHEMA = {"type": "object", "required": ["order"], "properties": {"order": {"type": "integer"}}}


async def test_event_types_commands(http: Invoke, tmp_path: Path) -> None:
    schema_file = tmp_path / "order.schema.json"
    schema_file.write_bytes(orjson.dumps(SCHEMA))
    created = as_json(
        await http(
            "event-types",
            "create",
            "order.created",
            "--description",
            "An order was placed.",
            "--schema",
            f"@{schema_file}",
            "--example",
            '{"order": 1}',
            "--json",
        )
    )
    assert created["schema"] == SCHEMA and created["examples"] == [{"order": 1}]

    bad = await http("event-types", "create", "order.paid", "--example", "{", "--json")
    assert bad.exit_code != 0 and "not valid JSON" in bad.output
    refused = await http(
        "event-types", "create", "order.paid", "--schema", '{"type": "nope"}', "--json"
    )
    assert refused.exit_code == 1
    assert orjson.loads(refused.stderr)["errors"][0]["field"] == "schema"

    listed = ok(await http("event-types", "list"))
    assert "order.created" in listed.stdout and "yes" in listed.stdout

    shown = ok(await http("event-types", "show", "order.created"))
    assert '"required"' in shown.stdout and "example 1:" in shown.stdout

    updated = as_json(
        await http("event-types", "update", "order.created", "--example", '{"order": 2}', "--json")
    )
    assert updated["examples"] == [{"order": 2}] and updated["schema"] == SCHEMA
    cleared = as_json(await http("event-types", "update", "order.created", "--no-schema", "--json"))
    assert cleared["schema"] is None and cleared["examples"] == [{"order": 2}]
    disabled = as_json(await http("event-types", "update", "order.created", "--disable", "--json"))
    assert disabled["enabled"] is False

    ok(await http("event-types", "delete", "order.created", "--yes"))
    assert as_json(await http("event-types", "list", "--json"))["data"] == []


# An OpenAPI document written by hand: one webhook whose body is the data itself (with a
# component reference), one whose body is an envelope naming its type with a const.
HAND_WRITTEN = """
openapi: 3.1.0
info: {title: Shop webhooks, version: "1"}
webhooks:
  invoicePaid:
    post:
      summary: An invoice was paid.
      requestBody:
        content:
          application/json:
            schema:
              type: object
              properties:
                type: {const: invoice.paid}
                id: {type: string}
                data: {$ref: '#/components/schemas/Invoice'}
            examples:
              paid:
                value: {type: invoice.paid, id: e1, data: {number: 7, amount: {cents: 100}}}
      responses: {"200": {description: ok}}
  customer.created:
    post:
      description: A customer signed up.
      requestBody:
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Customer'}
            example: {email: a@example.com}
      responses: {"200": {description: ok}}
components:
  schemas:
    Money:
      type: object
      required: [cents]
      properties: {cents: {type: integer}}
    Invoice:
      type: object
      required: [number]
      properties:
        number: {type: integer}
        amount: {$ref: '#/components/schemas/Money'}
    Customer:
      type: object
      required: [email]
      properties: {email: {type: string}}
"""


async def _types(db: asyncpg.Connection) -> dict[str, dict[str, Any]]:
    rows = await db.fetch("SELECT name, description, enabled, schema, examples FROM event_types")
    return {
        r["name"]: {
            "description": r["description"],
            "enabled": r["enabled"],
            "schema": orjson.loads(r["schema"]) if r["schema"] else None,
            "examples": orjson.loads(r["examples"]),
        }
        for r in rows
    }


async def test_import_a_hand_written_openapi_document_idempotently(
    invoke: Invoke, database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    path = tmp_path / "webhooks.yaml"
    path.write_text(HAND_WRITTEN)
    first = ok(
        await invoke("event-types", "import", str(path), DISPATCHER_DATABASE_URL=database_url)
    )
    assert "event types: 2 created, 0 updated, 0 unchanged" in first.stdout
    types = await _types(db)
    invoice = types["invoice.paid"]
    assert invoice["description"] == "An invoice was paid."
    assert invoice["examples"] == [{"number": 7, "amount": {"cents": 100}}]
    assert invoice["schema"]["properties"]["amount"] == {"$ref": "#/$defs/Money"}
    assert invoice["schema"]["$defs"]["Money"]["required"] == ["cents"]
    assert types["customer.created"]["schema"]["required"] == ["email"]
    assert types["customer.created"]["examples"] == [{"email": "a@example.com"}]

    await db.execute("UPDATE event_types SET enabled = false WHERE name = 'invoice.paid'")
    again = ok(
        await invoke("event-types", "import", str(path), DISPATCHER_DATABASE_URL=database_url)
    )
    assert "event types: 0 created, 0 updated, 2 unchanged" in again.stdout
    assert (await _types(db))["invoice.paid"]["enabled"] is False  # kept


async def test_the_catalogue_imports_back_as_the_same_types(
    http: Invoke,
    invoke: Invoke,
    server: TestServer,
    database_url: str,
    db: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    defs_schema = {
        "type": "object",
        "properties": {"customer": {"$ref": "#/$defs/customer"}},
        "$defs": {"customer": {"type": "object", "required": ["email"]}},
    }
    example = orjson.dumps({"order": 1, "customer": {"email": "x"}}).decode()
    for name, schema in (("order.created", SCHEMA), ("customer.updated", defs_schema)):
        args = ["--description", f"{name}!", "--schema", orjson.dumps(schema).decode()]
        ok(await http("event-types", "create", name, *args, "--example", example))
    before = await _types(db)
    async with aiohttp.ClientSession() as session:
        url = f"http://{server.host}:{server.port}/v1/catalogue"
        async with session.get(url, headers=ADMIN) as resp:
            assert resp.status == 200
            catalogue = await resp.read()
    path = tmp_path / "catalogue.json"
    path.write_bytes(catalogue)
    await db.execute("DELETE FROM event_types")
    ok(await invoke("event-types", "import", str(path), DISPATCHER_DATABASE_URL=database_url))
    assert await _types(db) == before


async def test_an_invalid_document_imports_nothing(
    invoke: Invoke, database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    path = tmp_path / "bad.json"
    document = {
        "openapi": "3.1.0",
        "info": {"title": "x", "version": "1"},
        "webhooks": {
            "good": {"post": {"requestBody": {"content": {"application/json": {"schema": {}}}}}},
            "bad name!": {"post": {}},
            "broken": {
                "post": {
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {"type": "integer"},
                                "example": "not an integer",
                            }
                        }
                    }
                }
            },
        },
    }
    path.write_bytes(orjson.dumps(document))
    result = await invoke("event-types", "import", str(path), DISPATCHER_DATABASE_URL=database_url)
    assert result.exit_code == 1
    assert "webhooks.bad name!.name" in result.stderr
    assert "event_types[1].examples[0]" in result.stderr
    assert await db.fetchval("SELECT count(*) FROM event_types") == 0


async def test_import_reaches_a_running_instance(
    client: TestClient[Any, Any], invoke: Invoke, database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "webhooks.yaml"
    path.write_text(HAND_WRITTEN)
    ok(await invoke("event-types", "import", str(path), DISPATCHER_DATABASE_URL=database_url))
    registry = client.app[REGISTRY]
    for _ in range(200):
        if "invoice.paid" in registry.schemas:
            break
        await asyncio.sleep(0.01)
    assert "invoice.paid" in registry.schemas


async def test_export_and_import_carry_schemas_and_examples(
    http: Invoke, invoke: Invoke, database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    schema = orjson.dumps(SCHEMA).decode()
    ok(await http("event-types", "create", "order.created", "--schema", schema))
    result = await http("event-types", "create", "x", "--schema", schema, "--example", "{}")
    assert result.exit_code == 1  # {} lacks "order": the example is refused
    ok(await http("event-types", "update", "order.created", "--example", '{"order": 3}'))
    before = await _types(db)
    exported = as_json(await invoke("export", DISPATCHER_DATABASE_URL=database_url))
    [record] = exported["event_types"]
    assert record["schema"] == SCHEMA and record["examples"] == [{"order": 3}]
    path = tmp_path / "export.json"
    path.write_bytes(orjson.dumps(exported))
    await db.execute("DELETE FROM event_types")
    ok(await invoke("import", str(path), DISPATCHER_DATABASE_URL=database_url))
    assert await _types(db) == before
    again = ok(await invoke("import", str(path), DISPATCHER_DATABASE_URL=database_url))
    assert "event types: 0 created, 0 updated, 1 unchanged" in again.stdout

    record["examples"] = [{"order": "three"}]
    record["schema"] = {**SCHEMA, "properties": {"order": {"$ref": "https://example.com/s"}}}
    path.write_bytes(orjson.dumps(exported))
    refused = await invoke("import", str(path), DISPATCHER_DATABASE_URL=database_url)
    assert refused.exit_code == 1 and "event_types[0].schema" in refused.stderr
    assert await _types(db) == before
