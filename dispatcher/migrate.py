"""Versioned SQL migrations, applied in order under a Postgres advisory lock.

Files in ``migrations/`` are named ``NNNN_description.sql``; each is applied once, in its own
transaction, and recorded in ``dispatcher_migrations``. The advisory lock makes several
instances starting at the same moment safe: one migrates, the others wait and find nothing to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import asyncpg
import structlog

from dispatcher.db import load_queries
from dispatcher.store import Conn

log = structlog.get_logger(__name__)

Q = load_queries(Path(__file__).with_suffix(".sql"))
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# An arbitrary constant shared by every instance: "dispatch" in ASCII.
LOCK_KEY = 0x6469737061746368


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    """All migrations shipped with this version, in order."""
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        number, _, rest = path.stem.partition("_")
        found.append(Migration(int(number), rest, path.read_text()))
    return found


def latest_version() -> int:
    """The schema version this code expects."""
    return max(m.version for m in available())


async def current_version(conn: Conn) -> int:
    """The highest applied version, 0 on an empty database."""
    exists = await conn.fetchval(Q["table_exists"])
    if not exists:
        return 0
    return int(await conn.fetchval(Q["current_version"]))


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply pending migrations; return the versions applied by this call."""
    applied: list[int] = []
    # Nothing pending: no lock and no DDL, so a role that may not create tables (the runtime
    # role of docs/deploying.md) can start ``serve`` on a database migrated by the owner.
    if await current_version(conn) >= latest_version():
        return applied
    await conn.execute(Q["lock"], LOCK_KEY)
    try:
        await conn.execute(Q["create_table"])
        done = await current_version(conn)
        for m in available():
            if m.version <= done:
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(Q["record"], m.version, m.name)
            applied.append(m.version)
            log.info("migration_applied", version=m.version, name=m.name)
    finally:
        await conn.execute(Q["unlock"], LOCK_KEY)
    return applied


async def migrate_dsn(dsn: str) -> list[int]:
    """Connect, migrate, disconnect."""
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn)
    finally:
        await conn.close()
