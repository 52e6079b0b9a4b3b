"""Shared fixtures: a real PostgreSQL (embedded unless DISPATCHER_TEST_DATABASE_URL is set),
a migrated database cleaned between tests, and the application under test."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from dispatcher import logs, migrate
from dispatcher.app import create_app
from dispatcher.auth import Tokens
from dispatcher.config import Settings
from dispatcher.embedded import EmbeddedPostgres
from tests.helpers import ADMIN_TOKEN, PUBLISH_TOKEN, with_database

logs.configure("json")

TABLES = (
    "attempts, deliveries, events, webhook_secrets, webhooks, event_types,"
    " tenant_tokens, portal_links, tenants"
)


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    """DSN of a PostgreSQL server the suite may create databases on."""
    external = os.environ.get("DISPATCHER_TEST_DATABASE_URL")
    if external:
        yield external
        return
    # Short path: the Unix socket lives in the data dir and has a 107-byte limit.
    data_dir = Path(tempfile.mkdtemp(prefix="dsp-", dir="/tmp"))
    embedded = EmbeddedPostgres(data_dir)
    try:
        yield embedded.start()
    finally:
        embedded.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


async def _recreate(server: str, name: str) -> str:
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(server, name)


@pytest.fixture(scope="session")
def database_url(server_dsn: str) -> str:
    """A freshly created and migrated database for this test session."""
    name = f"dispatcher_test_{os.getpid()}"

    async def setup() -> str:
        dsn = await _recreate(server_dsn, name)
        await migrate.migrate_dsn(dsn)
        return dsn

    return asyncio.run(setup())


@pytest.fixture
def empty_database(server_dsn: str) -> Iterator[str]:
    """A brand-new, unmigrated database, dropped afterwards."""
    name = f"dispatcher_empty_{os.getpid()}"
    dsn = asyncio.run(_recreate(server_dsn, name))
    yield dsn

    async def drop() -> None:
        conn = await asyncpg.connect(server_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test database, emptied before the test."""
    conn = await asyncpg.connect(database_url)
    await conn.execute(f"TRUNCATE {TABLES}")
    try:
        yield conn
    finally:
        await conn.close()


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    """Settings for an app under test: loopback receivers allowed, fixed tokens."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "admin_token": ADMIN_TOKEN,
        "publish_tokens": (PUBLISH_TOKEN,),
        "allow_private_targets": True,
        "log_format": "json",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Default settings for the app under test."""
    return make_settings(database_url, tmp_path)


@pytest.fixture
async def client(
    aiohttp_client: Any, settings: Settings, db: asyncpg.Connection
) -> TestClient[Any, Any]:
    """A test client for the full application, talking to the test database."""
    app = create_app(settings, settings.database_url or "", Tokens(ADMIN_TOKEN, (PUBLISH_TOKEN,)))
    result: TestClient[Any, Any] = await aiohttp_client(app)
    return result


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failure: every test must really run there."""
    if os.environ.get("CI") and exitstatus == 0:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        skipped = reporter.stats.get("skipped", []) if reporter else []
        if skipped:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
async def receiver() -> AsyncIterator[Any]:
    """A real HTTP receiver on 127.0.0.1."""
    from tests.receiver import Receiver

    r = Receiver()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


@pytest.fixture
async def make_client(
    aiohttp_client: Any, database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> Any:
    """Build a client for an app with settings overrides, e.g. ``await make_client(max_retries=2)``.

    Several clients made in one test share the database, like instances of one deployment.
    """

    async def make(**overrides: Any) -> TestClient[Any, Any]:
        settings = make_settings(database_url, tmp_path, **overrides)
        app = create_app(settings, database_url, Tokens(ADMIN_TOKEN, (PUBLISH_TOKEN,)))
        result: TestClient[Any, Any] = await aiohttp_client(app)
        return result

    return make
