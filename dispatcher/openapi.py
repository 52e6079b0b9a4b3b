"""The OpenAPI 3.1 document, generated from the handlers and the models they validate with.

Each handler declares its operation with :func:`operation` (summary, body model, response
models, query parameters); :func:`build` walks the application's router, so a route without a
declaration is an error, not a silent gap in the document.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from dispatcher import __version__, matching
from dispatcher.schemas import ProblemOut

F = TypeVar("F", bound=Callable[..., Any])
Auth = Literal["admin", "publish", "none"]


@dataclass(frozen=True, slots=True)
class Param:
    """A query parameter."""

    name: str
    schema: dict[str, Any]
    description: str = ""
    required: bool = False


@dataclass(frozen=True, slots=True)
class Operation:
    """What the document says about one handler."""

    summary: str
    tag: str
    body: type[BaseModel] | None = None
    responses: dict[int, type[BaseModel] | str | None] = field(default_factory=dict)
    query: Sequence[Param] = ()
    auth: Auth = "admin"
    # Problem answers this operation can give besides 401/403/422/500.
    problems: Sequence[int] = ()
    # The body may be left out (every field has a default).
    body_optional: bool = False


def operation(**kwargs: Any) -> Callable[[F], F]:
    """Attach an :class:`Operation` to a handler."""
    op = Operation(**kwargs)

    def mark(fn: F) -> F:
        fn.__dict__["openapi_operation"] = op
        return fn

    return mark


# A filter value: what dispatcher.api.common.query_str accepts (non-empty, no NUL).
STR = {"type": "string", "minLength": 1, "pattern": "^[^\\u0000]*$"}
# An id in a path or a filter: what dispatcher.api.common.path_id lets through.
ID = {"type": "string", "pattern": "^[A-Za-z0-9_.:~-]{1,255}$"}
# An event-type name (a ``?type=`` filter, an ``{name}`` in a path).
NAME = {"type": "string", "pattern": matching.NAME_PATTERN, "maxLength": matching.MAX_NAME}
BOOL = {"type": "boolean"}
STATUS = {"type": "string", "enum": ["created", "retrying", "success", "failed", "cancelled"]}

PAGINATION = (
    Param("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "page size"),
    Param(
        "cursor",
        {"type": "string", "minLength": 1, "pattern": "^[A-Za-z0-9_-]+$"},
        "next_cursor of the previous page",
    ),
)

_PROBLEM_TEXT = {
    400: "Malformed JSON",
    401: "Missing or invalid token",
    403: "The token may not call this route",
    404: "Not found",
    409: "Conflict with the resource's state",
    413: "Body too large",
    422: "Validation failed",
    500: "Internal error (never expected)",
    503: "Unavailable (database unreachable, ingestion switched off, or starting)",
}

# The console and the tenant portal are HTML pages, not API.
IGNORED_PREFIXES = ("/admin", "/portal")


def operations(app: web.Application) -> list[tuple[str, str, Operation | None]]:
    """Every (method, path, operation) the router serves, documented or not."""
    found = []
    for route in app.router.routes():
        method = route.method.upper()
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("formatter") or info.get("path") or ""
        if method in ("HEAD", "*") or not path or path.startswith(IGNORED_PREFIXES):
            continue
        op = getattr(route.handler, "openapi_operation", None)
        found.append((method, path, op))
    return found


def _operation_id(method: str, path: str) -> str:
    words = path.strip("/").replace("{", "").replace("}", "").replace("-", "_").split("/")
    return "_".join([method.lower(), *words])


def _path_params(path: str) -> list[dict[str, Any]]:
    import re

    return [
        {"name": n, "in": "path", "required": True, "schema": NAME if n == "name" else ID}
        for n in re.findall(r"{(\w+)}", path)
    ]


def build(app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``app``."""
    ops = operations(app)
    missing = [f"{m} {p}" for m, p, op in ops if op is None]
    if missing:
        raise RuntimeError(f"routes without an OpenAPI operation: {missing}")
    Mode = Literal["validation", "serialization"]
    models: dict[tuple[type[BaseModel], Mode], None] = {(ProblemOut, "serialization"): None}
    for _, _, op in ops:
        assert op is not None
        if op.body is not None:
            models[(op.body, "validation")] = None
        for resp in op.responses.values():
            if isinstance(resp, type):
                models[(resp, "serialization")] = None
    keys, defs = models_json_schema(list(models), ref_template="#/components/schemas/{model}")
    schemas = defs.get("$defs", {})
    ref = {k: v for k, v in keys.items()}

    def problem(status: int) -> dict[str, Any]:
        return {
            "description": _PROBLEM_TEXT.get(status, "Problem"),
            "content": {"application/problem+json": {"schema": ref[(ProblemOut, "serialization")]}},
        }

    paths: dict[str, dict[str, Any]] = {}
    for method, path, op in sorted(ops, key=lambda x: (x[1], x[0])):
        assert op is not None
        responses: dict[str, Any] = {}
        for status, resp in op.responses.items():
            if resp is None:
                responses[str(status)] = {"description": "No content"}
            elif isinstance(resp, str):
                responses[str(status)] = {
                    "description": "OK",
                    "content": {resp: {"schema": {"type": "string"}}},
                }
            else:
                responses[str(status)] = {
                    "description": resp.__doc__.strip().splitlines()[0] if resp.__doc__ else "OK",
                    "content": {"application/json": {"schema": ref[(resp, "serialization")]}},
                }
        extra = set(op.problems)
        if op.body is not None:
            extra |= {400, 413, 422}
        if op.query or _path_params(path):
            extra.add(422)
        if op.auth != "none":
            extra |= {401, 403, 503}
        for status in sorted(extra):
            responses.setdefault(str(status), problem(status))
        entry: dict[str, Any] = {
            "summary": op.summary,
            "tags": [op.tag],
            "operationId": _operation_id(method, path),
            "parameters": _path_params(path)
            + [
                {
                    "name": p.name,
                    "in": "query",
                    "required": p.required,
                    "schema": p.schema,
                    "description": p.description,
                }
                for p in op.query
            ],
            "responses": responses,
        }
        if op.auth == "none":
            entry["security"] = []
        elif op.auth == "publish":
            entry["security"] = [{"bearer": []}]
            entry["description"] = "Admin token or a publish token."
        if op.body is not None:
            entry["requestBody"] = {
                "required": not op.body_optional,
                "content": {"application/json": {"schema": ref[(op.body, "validation")]}},
            }
        paths.setdefault(path, {})[method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Dispatcher",
            "version": __version__,
            "description": "Self-hosted webhook dispatcher: registration, ingestion, delivery log.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


# Filled on the first request (the app is frozen by then, so the dict itself is stored early).
CACHE = web.AppKey("openapi_document", dict)


@operation(summary="This document", tag="meta", auth="none", responses={200: "application/json"})
async def handler(request: web.Request) -> web.Response:
    """``GET /v1/openapi.json``."""
    import orjson

    cache = request.app[CACHE]
    if "body" not in cache:
        cache["body"] = orjson.dumps(build(request.app))
    return web.Response(body=cache["body"], content_type="application/json")
