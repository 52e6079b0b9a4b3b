"""Helpers shared by the API handlers: JSON in and out, path and query parameters."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, TypeVar

import orjson
from aiohttp import hdrs, web
from pydantic import BaseModel

from dispatcher import nesting
from dispatcher.app_keys import SETTINGS
from dispatcher.problems import (
    ClientDisconnected,
    Problem,
    invalid,
    not_found,
    unreadable_body,
    unsupported_encoding,
)

M = TypeVar("M", bound=BaseModel)

_LONG_NUMBER = re.compile(rb"\d{19}")

# Ids we issue and producer ids we accept: printable ASCII without spaces or slashes.
_ID = re.compile(r"^[A-Za-z0-9_.:~-]{1,255}\Z")


def json_response(data: Any, status: int = 200) -> web.Response:
    """Serialize with orjson; the stdlib for what orjson cannot write.

    The answer to a change is built after its commit, so it must not fail: stored JSON too
    deep for orjson arrives as raw text (see :mod:`dispatcher.nesting`), and anything else
    orjson refuses is written by the stdlib, which escapes what UTF-8 cannot carry.
    """
    try:
        body = orjson.dumps(data)
    except orjson.JSONEncodeError:
        body = json.dumps(data, default=_as_orjson_would).encode()
    return web.Response(body=body, status=status, content_type="application/json")


def _as_orjson_would(value: Any) -> Any:
    # The stdlib fallback (integers beyond 64 bits, lone surrogates) must write what orjson
    # writes: RFC 3339 timestamps, not str(datetime)'s "2026-12-01 16:25:53+00:00".
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


async def read_json(
    request: web.Request,
    max_bytes: int = 1024 * 1024,
    reserve: Callable[[int], None] | None = None,
) -> Any:
    """The request body parsed as JSON; 413 when too big, 400 when not JSON.

    ``reserve(n)``, if given, is told how many bytes the body will hold before they are
    buffered: the Content-Length first, then the running total whenever it grows (chunked
    or decompressed bodies). It raises to refuse the request.
    """
    if request.content_length is not None and request.content_length > max_bytes:
        raise Problem(413, f"The body is larger than {max_bytes} bytes.", slug="too-large")
    if reserve is not None and request.content_length is not None:
        reserve(request.content_length)
    refused = unsupported_encoding(request.headers.get(hdrs.CONTENT_ENCODING, ""))
    if refused is not None:
        raise refused
    # A body trickled in byte by byte would hold its reservation (and a connection) for as
    # long as the sender likes: the whole body must arrive within the deadline.
    deadline = request.app[SETTINGS].body_timeout_seconds
    try:
        async with asyncio.timeout(deadline):
            body = await _read_body(request, max_bytes, reserve)
    except TimeoutError:
        raise Problem(
            408,
            f"The body did not arrive within {deadline:g} seconds.",
            slug="body-timeout",
            headers={"Connection": "close"},
        ) from None
    if not body.strip():
        raise Problem(400, "The request needs a JSON body.", slug="malformed")
    try:
        if _LONG_NUMBER.search(body):
            # orjson cannot hold integers beyond 64 bits; the stdlib keeps them exact.
            value = json.loads(body, parse_constant=_reject_constant, parse_float=_finite_float)
        else:
            value = orjson.loads(body)
    except (orjson.JSONDecodeError, ValueError, RecursionError) as exc:
        raise Problem(400, f"The body is not valid JSON: {exc}", slug="malformed") from None
    # The models cap each value at MAX_JSON_DEPTH and name the field; this bounds what any
    # handler (and the models' own walk) is handed at all.
    limit = nesting.MAX_BODY_DEPTH
    if nesting.text_deeper_than(body, limit) and nesting.deeper_than(value, limit):
        raise too_deep_body(value)
    return value


async def _read_body(
    request: web.Request, max_bytes: int, reserve: Callable[[int], None] | None
) -> bytes:
    # Read in chunks and stop as soon as the limit is passed: a chunked upload without a
    # Content-Length is never buffered beyond the limit.
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            chunk = await request.content.read(65536)
        except web.RequestPayloadError as exc:
            raise unreadable_body(exc) from None
        except ConnectionError:
            raise ClientDisconnected from None
        if not chunk:
            break
        size += len(chunk)
        if size > max_bytes:
            raise Problem(413, f"The body is larger than {max_bytes} bytes.", slug="too-large")
        if reserve is not None:
            reserve(size)
        chunks.append(chunk)
    return b"".join(chunks)


def too_deep_body(value: Any) -> Problem:
    """The 422 for a document nested deeper than ``MAX_BODY_DEPTH``, naming its top field."""
    limit = nesting.MAX_BODY_DEPTH
    field = "body"
    if isinstance(value, dict):
        field = next((k for k, v in value.items() if nesting.deeper_than(v, limit - 1)), field)
    message = (
        f"nests more than {limit} levels deep; a value (such as data or metadata) may nest "
        f"at most {nesting.MAX_JSON_DEPTH}"
    )
    return invalid(field, message, f"The body nests more than {limit} levels deep.")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is out of range for a JSON number")
    return value


async def read_model(request: web.Request, model: type[M], max_bytes: int = 1024 * 1024) -> M:
    """The request body validated against ``model`` (422 with field errors otherwise)."""
    return model.model_validate(await read_json(request, max_bytes))


def path_id(request: web.Request, what: str, key: str = "id") -> str:
    """A resource id from the path; ids that cannot exist answer 404 without a query."""
    value = request.match_info[key]
    if not _ID.match(value):
        raise not_found(what, value[:100])
    return value


def query_str(request: web.Request, name: str) -> str | None:
    """``?name=value``; None when absent, a 422 when present but empty."""
    raw = request.query.get(name)
    if raw is not None and not raw:
        raise invalid(name, "must not be empty")
    if raw is not None and "\x00" in raw:
        raise invalid(name, "must not contain NUL characters")
    return raw


def query_bool(request: web.Request, name: str) -> bool | None:
    """``?name=true|false`` (also 1/0, yes/no); None when absent."""
    raw = query_str(request, name)
    if raw is None:
        return None
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise invalid(name, "must be true or false")
