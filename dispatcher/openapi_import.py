"""``dispatcher event-types import FILE``: event types read from an OpenAPI 3.1 ``webhooks`` map.

Each ``webhooks`` entry becomes an event type: its name, its operation's description (or
summary), the request body's schema as the data schema, and its examples. Two shapes of body
schema are understood: an envelope (an object with a ``data`` property beside ``type``, ``id``
or ``timestamp``, as ``GET /v1/catalogue`` writes it), whose ``data`` is the data schema; and
anything else, which is the data schema itself. The entry's name is the type's, unless the
envelope pins ``type`` to one value (``const``, or a one-value ``enum``).

Stored schemas refer only inside themselves, so ``#/components/schemas/X`` references are
bundled: X is copied into the schema's ``$defs`` (a reference to the component the data schema
itself came from points at ``#``). JSON or YAML; the result is an import document (the same
validation and idempotence as ``dispatcher import``; types already stored keep their enabled
flag).
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
import yaml
from pydantic import ValidationError

from dispatcher.problems import validation_problem
from dispatcher.transfer import Document, EventTypeRecord, TransferError, schema_problems

_COMPONENT = "#/components/schemas/"
_ENVELOPE_KEYS = ("type", "id", "timestamp")


def load(raw: bytes) -> Any:
    """The document parsed: JSON, or else YAML."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise TransferError(f"the file is neither JSON nor YAML: {exc}") from None


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _resolve(document: dict[str, Any], node: Any, what: str) -> Any:
    """Follow a local ``$ref`` (``#/components/...``) to what it names."""
    seen = 0
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and len(node) == 1:
        ref: str = node["$ref"]
        if not ref.startswith("#/"):
            raise TransferError(f"{what}: {ref!r} is not a reference inside the document")
        target: Any = document
        for token in ref[2:].split("/"):
            if not isinstance(target, dict) or _unescape(token) not in target:
                raise TransferError(f"{what}: {ref!r} points at nothing")
            target = target[_unescape(token)]
        node = target
        seen += 1
        if seen > 20:
            raise TransferError(f"{what}: references go round in a circle")
    return node


def _component_of(ref: Any) -> str | None:
    if isinstance(ref, str) and ref.startswith(_COMPONENT):
        return _unescape(ref[len(_COMPONENT) :].split("/", 1)[0])
    return None


def bundle(document: dict[str, Any], schema: Any, own: str | None) -> Any:
    """``schema`` with the components it refers to copied into its ``$defs`` and its references
    rewritten to them; ``own`` (the component ``schema`` is) becomes ``#``."""
    components = document.get("components", {}).get("schemas", {})
    needed: dict[str, Any] = {}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for key, value in node.items():
                name = _component_of(value) if key in ("$ref", "$dynamicRef") else None
                if name is None:
                    out[key] = walk(value)
                    continue
                rest = value[len(_COMPONENT) :].partition("/")[2]
                rest = "/" + rest if rest else ""
                if name == own:
                    out[key] = "#" + rest
                    continue
                if name not in components:
                    raise TransferError(f"{value!r} points at no component")
                if name not in needed:
                    needed[name] = None  # placeholder first: a component may refer to itself
                    needed[name] = walk(components[name])
                out[key] = f"#/$defs/{name.replace('~', '~0').replace('/', '~1')}{rest}"
            return out
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    result = walk(copy.deepcopy(schema))
    if needed:
        if not isinstance(result, dict):
            result = {"allOf": [result]}
        defs = result.setdefault("$defs", {})
        for name, value in needed.items():
            if name in defs and defs[name] != value:
                raise TransferError(f"$defs already holds a different {name!r}")
            defs[name] = value
    return result


def _is_envelope(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    props = schema.get("properties")
    return isinstance(props, dict) and "data" in props and any(k in props for k in _ENVELOPE_KEYS)


def _pinned_type(document: dict[str, Any], envelope: dict[str, Any]) -> str | None:
    spec = _resolve(document, envelope["properties"].get("type"), "type")
    if isinstance(spec, dict):
        if isinstance(spec.get("const"), str):
            return str(spec["const"])
        enum = spec.get("enum")
        if isinstance(enum, list) and len(enum) == 1 and isinstance(enum[0], str):
            return enum[0]
    return None


def entry(document: dict[str, Any], key: str, path_item: Any) -> dict[str, Any]:
    """One ``webhooks`` entry as an event type record (not yet validated)."""
    path_item = _resolve(document, path_item, key)
    if not isinstance(path_item, dict):
        raise TransferError(f"webhooks.{key}: must be a Path Item object")
    operation = next(
        (path_item[m] for m in ("post", "put", "patch") if isinstance(path_item.get(m), dict)),
        None,
    )
    if operation is None:
        raise TransferError(f"webhooks.{key}: has no post operation")
    description = operation.get("description") or operation.get("summary") or ""
    description = description or path_item.get("description") or path_item.get("summary") or ""
    record: dict[str, Any] = {"name": key, "description": str(description).strip()}
    body = _resolve(document, operation.get("requestBody"), f"webhooks.{key}.requestBody")
    content = body.get("content", {}) if isinstance(body, dict) else {}
    media = content.get("application/json") or next(
        (v for k, v in content.items() if k.endswith("json")), None
    )
    if not isinstance(media, dict):
        return record
    raw_schema = media.get("schema")
    own = _component_of(raw_schema.get("$ref")) if isinstance(raw_schema, dict) else None
    schema = _resolve(document, raw_schema, f"webhooks.{key}.schema")
    examples = [
        _resolve(document, ex, f"webhooks.{key}.examples").get("value")
        for ex in (media.get("examples") or {}).values()
        if isinstance(_resolve(document, ex, f"webhooks.{key}.examples"), dict)
    ]
    if "example" in media:
        examples.insert(0, media["example"])
    if _is_envelope(schema):
        record["name"] = _pinned_type(document, schema) or key
        data = schema["properties"]["data"]
        own = _component_of(data.get("$ref")) if isinstance(data, dict) else None
        if isinstance(data, dict) and own is not None:
            data = _resolve(document, {"$ref": data["$ref"]}, f"webhooks.{key}.data")
        examples = [ex["data"] for ex in examples if isinstance(ex, dict) and "data" in ex]
        schema = data
    if schema is not None:
        bundled = bundle(document, schema, own)
        if isinstance(bundled, dict) and "examples" in bundled and not examples:
            examples = list(bundled["examples"]) if isinstance(bundled["examples"], list) else []
        record["schema"] = bundled
    record["examples"] = examples[:20]
    return record


def parse(raw: bytes) -> Document:
    """An import document of the event types an OpenAPI 3.1 document's ``webhooks`` describe;
    :class:`TransferError` lists every problem found."""
    document = load(raw)
    if not isinstance(document, dict) or not isinstance(document.get("webhooks"), dict):
        raise TransferError("the file must be an OpenAPI 3.1 document with a 'webhooks' map")
    version = str(document.get("openapi", ""))
    if not version.startswith("3.1"):
        raise TransferError(f"openapi: {version!r}; webhooks need OpenAPI 3.1")
    problems: list[str] = []
    records: list[EventTypeRecord] = []
    seen: dict[str, str] = {}
    for key, path_item in document["webhooks"].items():
        try:
            item = entry(document, str(key), path_item)
        except TransferError as exc:
            problems.append(str(exc))
            continue
        try:
            record = EventTypeRecord.model_validate(item)
        except ValidationError as exc:
            for err in validation_problem(exc, prefix=("webhooks", str(key))).errors or []:
                problems.append(f"{err['field']}: {err['message']}")
            continue
        if record.name in seen:
            problems.append(f"webhooks.{key}: {record.name!r} is also webhooks.{seen[record.name]}")
            continue
        seen[record.name] = str(key)
        records.append(record)
    problems.extend(schema_problems(records))
    if problems:
        raise TransferError(
            f"the document has {len(problems)} problem(s); nothing was imported", problems
        )
    return Document([], records, keep_enabled=True)
