"""How deeply JSON may nest: a cap on what is accepted, and reads that survive what is not.

orjson reads 1,024 levels but writes only 254, so a value accepted deeper than that could be
stored and then never answered again. Every free JSON value a request carries (event ``data``,
webhook ``metadata``) may nest at most :data:`MAX_JSON_DEPTH` levels, and a whole body at most
:data:`MAX_BODY_DEPTH`. Rows stored before the cap existed are read back as their raw text
(:func:`loads_stored`), so serializing them cannot fail.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

# Levels of arrays/objects one free JSON value may nest (``[[1]]`` is 2, ``1`` is 0).
MAX_JSON_DEPTH = 64
# Levels a whole request body or import file may nest: a value plus the envelope around it
# (a batch's ``events[i].data`` sits three levels down), with room to spare.
MAX_BODY_DEPTH = 2 * MAX_JSON_DEPTH
# The deepest value orjson can serialize.
_ORJSON_WRITE_DEPTH = 254
# A run of digits that may be an integer beyond 64 bits, which orjson reads as a float.
_LONG_NUMBER = re.compile(r"\d{19}")


def deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests more than ``limit`` levels; any depth is safe."""
    if not isinstance(value, (dict, list)):
        return False
    try:
        # Serializing in C and counting brackets is several times faster than walking in
        # Python, and settles nearly every value: few brackets, shallow enough.
        if not text_deeper_than(orjson.dumps(value), limit):
            return False
    except orjson.JSONEncodeError:
        pass  # past orjson's own depth, or integers beyond 64 bits: walk it
    return _walk_deeper_than(value, limit)


def _walk_deeper_than(value: Any, limit: int) -> bool:
    # Level by level, never recursing: a thousand levels cost no stack.
    level = [value]
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        for item in level:
            children = item.values() if isinstance(item, dict) else item
            below.extend(c for c in children if isinstance(c, (dict, list)))
        level = below
    return False


def text_deeper_than(text: bytes | str, limit: int) -> bool:
    """A cheap sufficient test: JSON text with at most ``limit`` brackets cannot nest deeper."""
    if isinstance(text, str):
        return text.count("[") + text.count("{") > limit
    return text.count(b"[") + text.count(b"{") > limit


def too_deep(limit: int = MAX_JSON_DEPTH) -> str:
    """The field error for a value nested too deeply."""
    return f"must not nest more than {limit} levels of arrays and objects"


def loads_stored(text: str) -> Any:
    """A json/jsonb column's value; one too deep for orjson to write back stays raw text.

    Only rows stored before the cap can be that deep; as an :class:`orjson.Fragment` they are
    answered exactly as stored instead of failing every response that includes them.
    """
    try:
        # orjson reads integers beyond 64 bits as floats; the stdlib keeps them exact (and
        # the answer is written by the stdlib too: see api.common.json_response).
        value = json.loads(text) if _LONG_NUMBER.search(text) else orjson.loads(text)
    except (ValueError, RecursionError):
        # Postgres validated it; what orjson refuses (over 1,024 levels) is passed on as is.
        return orjson.Fragment(text)
    if text_deeper_than(text, _ORJSON_WRITE_DEPTH) and deeper_than(value, _ORJSON_WRITE_DEPTH):
        return orjson.Fragment(text)
    return value
