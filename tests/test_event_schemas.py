"""Unit tests of the pure parts: checking schemas, error paths, bundling OpenAPI references."""

from __future__ import annotations

from typing import Any

import pytest

from dispatcher import event_schemas, openapi_import
from dispatcher.event_schemas import SchemaError, catalogue_errors, compile_schema, errors_in
from dispatcher.transfer import TransferError


@pytest.mark.parametrize(
    ("schema", "path"),
    [
        ({"type": "strng"}, "type"),
        ({"properties": {"a": {"minimum": "1"}}}, "properties.a.minimum"),
        ({"items": {"$ref": "https://example.com/item.json"}}, "items.$ref"),
        ({"$defs": {"a": {"$dynamicRef": "other.json#x"}}}, "$defs.a.$dynamicRef"),
        ({"$schema": "http://json-schema.org/draft-07/schema#"}, "$schema"),
        ({"pattern": "("}, "pattern"),
        ({"$ref": "#/$defs/missing"}, ""),
        ([], ""),
        ({"description": "x" * (event_schemas.MAX_SCHEMA_BYTES + 1)}, ""),
    ],
)
def test_unusable_schemas_say_where(schema: Any, path: str) -> None:
    with pytest.raises(SchemaError) as info:
        compile_schema(schema)
    assert info.value.path == path
    assert info.value.message


def test_remote_references_are_never_fetched_even_through_an_id() -> None:
    # A relative $ref under a remote $id would resolve to another document: refused before
    # any resolution could fetch it.
    with pytest.raises(SchemaError):
        compile_schema({"$id": "http://127.0.0.1:9/s.json", "$ref": "other.json"})


def test_local_references_and_booleans_compile() -> None:
    assert compile_schema(True).is_valid(1)
    assert not compile_schema(False).is_valid(1)
    validator = compile_schema({"$ref": "#/$defs/a", "$defs": {"a": {"type": "integer"}}})
    assert validator.is_valid(1) and not validator.is_valid("1")


def test_error_paths_point_into_the_value() -> None:
    validator = compile_schema(
        {
            "type": "object",
            "properties": {
                "lines": {
                    "type": "array",
                    "items": {"type": "object", "required": ["sku"], "properties": {"n": {}}},
                }
            },
        }
    )
    errors = errors_in(validator, {"lines": [{"sku": 1}, {}]}, ["events", 3, "data"])
    assert errors == [{"field": "events[3].data.lines[1].sku", "message": "is a required property"}]
    assert errors_in(validator, {"lines": []}, ["data"]) == []


def test_errors_are_capped_and_messages_shortened() -> None:
    validator = compile_schema({"type": "array", "items": {"type": "integer"}})
    errors = errors_in(validator, ["x" * 1000] * 100, ["data"])
    assert len(errors) == event_schemas.MAX_ERRORS
    assert all(len(e["message"]) <= event_schemas.MAX_MESSAGE for e in errors)


def test_catalogue_errors_name_schema_or_each_example() -> None:
    schema = {"type": "object", "required": ["a"]}
    assert catalogue_errors(None, [1, "x"]) == []
    assert catalogue_errors(schema, [{"a": 1}]) == []
    assert [e["field"] for e in catalogue_errors(schema, [{"a": 1}, {}, 3])] == [
        "examples[1]",
        "examples[2]",
    ]
    [err] = catalogue_errors({"type": 5}, [], ("event_types", 2))
    assert err["field"] == "event_types[2].schema" and err["message"].startswith("at type:")


def test_bundle_copies_components_into_defs_and_the_own_component_becomes_root() -> None:
    document = {
        "components": {
            "schemas": {
                "Node": {
                    "type": "object",
                    "properties": {
                        "next": {"$ref": "#/components/schemas/Node"},
                        "tag": {"$ref": "#/components/schemas/Tag"},
                    },
                },
                "Tag": {"type": "string"},
            }
        }
    }
    node = document["components"]["schemas"]["Node"]
    bundled = openapi_import.bundle(document, node, "Node")
    assert bundled["properties"]["next"] == {"$ref": "#"}
    assert bundled["properties"]["tag"] == {"$ref": "#/$defs/Tag"}
    assert bundled["$defs"] == {"Tag": {"type": "string"}}
    compile_schema(bundled)
    with pytest.raises(TransferError):
        openapi_import.bundle(document, {"$ref": "#/components/schemas/Missing"}, None)
