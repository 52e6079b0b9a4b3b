"""Database access plumbing: the asyncpg pool, JSON codecs and named SQL queries.

SQL lives in ``.sql`` files beside the module that owns the table, as named blocks::

    -- name: insert_webhook
    -- Create a webhook row.
    INSERT INTO ...

:func:`load_queries` reads such a file into a mapping of name to statement.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from dispatcher import nesting

# A deadlock or serialization failure: the statement was undone, and the same one, tried again,
# succeeds. (Not all of SQLSTATE class 40: a deferred constraint failing at commit fails every
# time.)
CONFLICT: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
)

# Errors meaning "the database is not reachable right now" (as opposed to a bad query):
# callers answer 503 or pause and retry. TimeoutError and ConnectionError are OSErrors.
# Conflicts are here too: the same answer (503, or pause and retry) is right for them.
DB_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    # A connection lost mid-transaction surfaces as "the underlying connection is closed",
    # or, while the pool resets it, as "cannot switch to state ...".
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    *CONFLICT,
)

_BLOCK = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def load_queries(path: Path) -> dict[str, str]:
    """Parse ``-- name: x`` blocks from a SQL file into ``{"x": "SELECT ..."}``."""
    text = path.read_text()
    parts = _BLOCK.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [ln for ln in body.strip().splitlines() if not ln.lstrip().startswith("--")]
        queries[name] = "\n".join(lines).strip().rstrip(";")
    return queries


def dumps_exact(value: Any) -> str:
    """JSON text of ``value``; orjson, or the stdlib for integers beyond 64 bits."""
    return _dumps(value)


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        # Integers beyond 64 bits, which orjson refuses; the stdlib writes them exactly.
        return json.dumps(value, ensure_ascii=False)


async def init_connection(conn: asyncpg.Connection) -> None:
    """Per-connection setup: json/jsonb travel as Python values through orjson."""
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(
            typ,
            encoder=_dumps,
            decoder=nesting.loads_stored,
            schema="pg_catalog",
            format="text",
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's reset query (``RESET ALL; UNLISTEN *; ...``).

    That query is a round trip on every release, on every hot path. Pooled connections never
    keep session state: nothing runs ``SET``, the listener has a connection of its own, and
    retention's advisory lock is released (or its connection closed) before it goes back.
    asyncpg still rolls back a transaction left open.
    """


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 20) -> asyncpg.Pool:
    """Open the shared connection pool."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        reset=_keep_session,
        command_timeout=60,
        server_settings={
            "application_name": "dispatcher",
            # Plan every execution with the table's current size. A generic plan cached while
            # a table was empty (a fresh install, or after a truncate) keeps seq-scanning it
            # as it grows, until autovacuum's next ANALYZE: quadratic slowdown under load.
            # Hot statements are batched, so planning each one costs little.
            "plan_cache_mode": "force_custom_plan",
        },
    )
    assert pool is not None
    return pool
