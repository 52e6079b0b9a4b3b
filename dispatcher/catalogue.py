"""The event catalogue as an OpenAPI 3.1 document: what a receiver gets, type by type.

One ``webhooks`` entry per enabled event type describes the request Dispatcher sends: the
envelope (``id``, ``type``, ``timestamp``, ``data``), the type's schema as ``data``, its
description and examples, and the Standard Webhooks signature headers. Receivers generate
types from it (``datamodel-code-generator``, ``openapi-typescript``).

Each type's envelope is the component named after the type, its data schema one of its own
(``<type>.data``); the schema's references
inside itself (``#/$defs/...``) are rewritten to point at that component, since ``#`` in an
embedded schema means the whole document.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dispatcher import __version__

DIALECT = "https://json-schema.org/draft/2020-12/schema"
EXAMPLE_ID = "evt_01J0000000000000000000000"
EXAMPLE_TIME = "2025-01-01T12:00:00Z"

SIGNATURE_HEADERS: list[dict[str, Any]] = [
    {
        "name": "webhook-id",
        "in": "header",
        "required": True,
        "description": "The event id, the same on every retry: deduplicate with it.",
        "schema": {"type": "string"},
    },
    {
        "name": "webhook-timestamp",
        "in": "header",
        "required": True,
        "description": "Unix seconds when this attempt was signed; refuse old ones.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    {
        "name": "webhook-signature",
        "in": "header",
        "required": True,
        "description": (
            "Space-separated `v1,<base64 HMAC-SHA256 of '{webhook-id}.{webhook-timestamp}."
            "{body}'>`, one per valid secret (Standard Webhooks; the `standardwebhooks` and "
            "`svix` libraries verify it)."
        ),
        "schema": {"type": "string"},
    },
]

RESPONSES = {
    "2XX": {"description": "Received. Any 2xx answer counts as delivered."},
    "default": {
        "description": (
            "Not received: 5xx, 408, 429 and timeouts are retried with backoff (429/503 honour "
            "Retry-After); other answers fail the delivery at once; 410 also disables the "
            "webhook."
        )
    },
}


class CatalogueDocument(BaseModel):
    """An OpenAPI 3.1 document whose ``webhooks`` describe each enabled event type."""

    model_config = ConfigDict(extra="allow")

    openapi: str
    json_schema_dialect: str = Field(alias="jsonSchemaDialect")
    info: dict[str, Any]
    webhooks: dict[str, Any]
    components: dict[str, Any]


def _data_names(types: Sequence[str]) -> dict[str, str]:
    """The component holding each type's data schema: ``<type>.data``, unless that is the name
    of another type's envelope (or taken), then with a ``_2``... suffix."""
    taken = set(types)
    names = {}
    for event_type in types:
        name, n = f"{event_type}.data", 1
        while name in taken:
            n += 1
            name = f"{event_type}.data_{n}"
        taken.add(name)
        names[event_type] = name
    return names


def _pointer_token(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def rebase_refs(schema: Any, base: str) -> Any:
    """A copy of ``schema`` whose references into itself (``#...``) point under ``base``.

    A schema with its own ``$id`` resolves ``#`` against that id and is left alone.
    """
    if isinstance(schema, dict) and "$id" in schema:
        return copy.deepcopy(schema)

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if (
                    key in ("$ref", "$dynamicRef")
                    and isinstance(value, str)
                    and (value == "#" or value.startswith("#/"))
                ):
                    out[key] = base + value[1:]
                else:
                    out[key] = walk(value)
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


def _envelope(event_type: str, data_ref: str, description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "title": event_type,
        "description": description or f"A {event_type} event.",
        "required": ["id", "type", "timestamp"],
        "properties": {
            "id": {
                "type": "string",
                "description": "The event id (also the webhook-id header).",
            },
            "type": {"type": "string", "const": event_type},
            "timestamp": {
                "type": "string",
                "format": "date-time",
                "description": "When the event occurred (ISO 8601).",
            },
            "data": {
                "$ref": data_ref,
                "description": "Absent when the webhook is set not to include payloads.",
            },
        },
    }


def _version(rows: Sequence[Mapping[str, Any]]) -> str:
    stamps = [r["updated_at"] for r in rows if isinstance(r.get("updated_at"), datetime)]
    return max(stamps).isoformat() if stamps else "empty"


def build(rows: Sequence[Mapping[str, Any]], title: str = "Dispatcher events") -> dict[str, Any]:
    """The catalogue document for these event types (``name``, ``description``, ``schema``,
    ``examples``, ``updated_at``), in their order. ``info.version`` changes with them."""
    webhooks: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    data_names = _data_names([r["name"] for r in rows])
    for row in rows:
        name: str = row["name"]
        description: str = row.get("description") or ""
        data_name = data_names[name]
        data_ref = f"#/components/schemas/{_pointer_token(data_name)}"
        schema = row.get("schema")
        if schema is None:
            data_schema: Any = {"description": "Not described: any JSON value."}
        else:
            data_schema = rebase_refs(schema, data_ref)
        examples = list(row.get("examples") or [])
        schemas[data_name] = data_schema
        schemas[name] = _envelope(name, data_ref, description)
        media: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{_pointer_token(name)}"}}
        if examples:
            media["examples"] = {
                f"example{i + 1}": {
                    "summary": f"Example {i + 1}",
                    "value": {
                        "id": EXAMPLE_ID,
                        "type": name,
                        "timestamp": EXAMPLE_TIME,
                        "data": example,
                    },
                }
                for i, example in enumerate(examples)
            }
        operation: dict[str, Any] = {
            "operationId": name,
            "summary": name,
            "parameters": copy.deepcopy(SIGNATURE_HEADERS),
            "requestBody": {"required": True, "content": {"application/json": media}},
            "responses": copy.deepcopy(RESPONSES),
        }
        if description:
            operation["description"] = description
        webhooks[name] = {"post": operation}
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": DIALECT,
        "info": {
            "title": title,
            "version": _version(rows),
            "description": (
                "The events this Dispatcher sends: each entry under `webhooks` is the POST a "
                "receiver gets for one event type, signed per Standard Webhooks. "
                f"Generated by Dispatcher {__version__}."
            ),
        },
        "webhooks": webhooks,
        "components": {"schemas": schemas},
    }
