"""JSON Schemas of event types: checked when set, compiled once, applied to events' data.

A schema is a draft 2020-12 JSON Schema, validated with ``jsonschema-rs`` (compiled; a 1 KiB
event against a 20-property schema takes a few microseconds, against ~0.5 ms for the pure
Python ``jsonschema``). A schema may only refer inside itself: nothing is ever fetched over the
network while validating, so a ``$ref`` to another document is refused when the schema is set,
and the compiled validator's retriever refuses any fetch as well.

Error fields point into the value validated: ``data.lines[2].sku`` (in a batch
``events[3].data.lines[2].sku``); a missing required property is named as the property itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema_rs

from dispatcher.db import dumps_exact
from dispatcher.schemas import EventIn

DRAFT = "https://json-schema.org/draft/2020-12/schema"
MAX_SCHEMA_BYTES = 64 * 1024
MAX_EXAMPLES = 20
MAX_EXAMPLES_BYTES = 256 * 1024
# Errors reported for one request; past that the producer has enough to go on.
MAX_ERRORS = 20
# Messages quote the offending value, which may be large.
MAX_MESSAGE = 300

_REF_KEYWORDS = ("$ref", "$dynamicRef")


class SchemaError(ValueError):
    """A schema that cannot be used; ``path`` is where in the schema ('' for the root)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


def field_path(loc: Sequence[str | int]) -> str:
    """``["data", "lines", 2, "sku"]`` -> ``data.lines[2].sku`` (as the API's error fields)."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + part
    return out


def _refuse_fetch(uri: str) -> Any:
    raise ValueError(f"{uri!r} is not fetched: a schema may only refer inside itself")


def _short(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def _remote_refs(node: Any, path: list[str | int]) -> Iterator[tuple[list[str | int], str]]:
    """Every ``$ref``/``$dynamicRef`` that does not point inside the schema itself."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _REF_KEYWORDS and isinstance(value, str) and not value.startswith("#"):
                yield [*path, key], value
            else:
                yield from _remote_refs(value, [*path, key])
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _remote_refs(item, [*path, i])


def compile_schema(schema: Any) -> jsonschema_rs.Validator:
    """A validator for a schema, or :class:`SchemaError` saying what is wrong with it where."""
    if not isinstance(schema, (dict, bool)):
        raise SchemaError("", "must be a JSON Schema: an object (or true/false)")
    if len(dumps_exact(schema).encode()) > MAX_SCHEMA_BYTES:
        raise SchemaError("", f"must serialize to at most {MAX_SCHEMA_BYTES // 1024} KiB")
    if isinstance(schema, dict):
        declared = schema.get("$schema", DRAFT)
        if declared not in (DRAFT, DRAFT + "#"):
            raise SchemaError("$schema", f"must be {DRAFT!r} (draft 2020-12) or absent")
        for path, ref in _remote_refs(schema, []):
            raise SchemaError(
                field_path(path),
                f"{ref[:200]!r} points outside this schema; only local references "
                "('#/$defs/...') are allowed, nothing is fetched",
            )
    try:
        jsonschema_rs.meta.validate(schema)
        return jsonschema_rs.Draft202012Validator(
            schema, validate_formats=True, retriever=_refuse_fetch
        )
    except jsonschema_rs.ValidationError as exc:
        raise SchemaError(field_path(exc.instance_path), _short(exc.message)) from None
    except (jsonschema_rs.ReferencingError, ValueError) as exc:
        raise SchemaError("", _short(str(exc).split("\n", 1)[0])) from None


def errors_in(
    validator: jsonschema_rs.Validator, value: Any, prefix: Sequence[str | int]
) -> list[dict[str, str]]:
    """``[{field, message}]`` for each way ``value`` breaks the schema (empty: valid)."""
    if validator.is_valid(value):  # the common case, without building error objects
        return []
    found: list[dict[str, str]] = []
    for err in validator.iter_errors(value):
        path: list[str | int] = [*prefix, *err.instance_path]
        message = err.message
        if isinstance(err.kind, jsonschema_rs.ValidationErrorKind.Required):
            path.append(str(err.kind.property))
            message = "is a required property"
        found.append({"field": field_path(path), "message": _short(message)})
        if len(found) >= MAX_ERRORS:
            break
    return found


@dataclass(frozen=True, slots=True)
class TypeSchema:
    """A type's schema as stored, and its validator compiled once."""

    schema: Any
    validator: jsonschema_rs.Validator


def catalogue_errors(
    schema: Any, examples: Sequence[Any], prefix: Sequence[str | int] = ()
) -> list[dict[str, str]]:
    """Why a type's ``schema`` and ``examples`` cannot be stored together (empty: they can).

    The schema's own problem is named ``schema`` (the place inside it leads the message); an
    example that breaks the schema is named ``examples[i]``.
    """
    if schema is None:
        return []
    try:
        validator = compile_schema(schema)
    except SchemaError as exc:
        where = f"at {exc.path}: " if exc.path else ""
        return [{"field": field_path([*prefix, "schema"]), "message": where + exc.message}]
    errors = []
    for i, example in enumerate(examples):
        for err in errors_in(validator, example, ["example"]):
            inner = err["field"].removeprefix("example").lstrip(".")
            where = f"at {inner}: " if inner else ""
            errors.append(
                {
                    "field": field_path([*prefix, "examples", i]),
                    "message": where + err["message"],
                }
            )
    return errors


def data_errors(
    schemas: Mapping[str, TypeSchema], events: Sequence[EventIn], *, batch: bool
) -> list[dict[str, str]]:
    """Errors of the events whose type has a schema; fields name ``data``, or ``events[i].data``
    in a batch. Types without a schema are not validated."""
    if not schemas:
        return []
    found: list[dict[str, str]] = []
    for i, event in enumerate(events):
        compiled = schemas.get(event.type)
        if compiled is None:
            continue
        prefix: list[str | int] = ["events", i, "data"] if batch else ["data"]
        found.extend(errors_in(compiled.validator, event.data, prefix))
        if len(found) >= MAX_ERRORS:
            return found[:MAX_ERRORS]
    return found
