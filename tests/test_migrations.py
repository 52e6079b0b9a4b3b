"""Schema migrations: idempotent, safe when several instances start at once, checked by /readyz."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from dispatcher import migrate
from dispatcher.app import create_app
from dispatcher.auth import Tokens
from tests.conftest import make_settings
from tests.helpers import ADMIN_TOKEN, PUBLISH_TOKEN

REPO = Path(__file__).resolve().parent.parent
PROCESS_TIMEOUT = 60


async def migration_rows(dsn: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch("SELECT version, name FROM dispatcher_migrations"))
    finally:
        await conn.close()


async def table_exists(dsn: str, table: str) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table))
    finally:
        await conn.close()


def child_env(database_url: str, data_dir: Path) -> dict[str, str]:
    """The test process's environment without any DISPATCHER_* setting, plus these two."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCHER_")}
    env["DISPATCHER_DATABASE_URL"] = database_url
    env["DISPATCHER_DATA_DIR"] = str(data_dir)
    env["PYTHONPATH"] = str(REPO)
    return env


def test_there_is_at_least_one_migration() -> None:
    versions = [m.version for m in migrate.available()]
    assert versions, "no migrations shipped"
    assert versions == sorted(set(versions))
    assert migrate.latest_version() == versions[-1]


async def test_migrate_twice_applies_nothing_the_second_time(empty_database: str) -> None:
    assert not await table_exists(empty_database, "webhooks")
    first = await migrate.migrate_dsn(empty_database)
    assert first == [m.version for m in migrate.available()]
    assert await table_exists(empty_database, "webhooks")
    second = await migrate.migrate_dsn(empty_database)
    assert second == []
    rows = await migration_rows(empty_database)
    assert sorted(r["version"] for r in rows) == [m.version for m in migrate.available()]

    conn = await asyncpg.connect(empty_database)
    try:
        assert await migrate.current_version(conn) == migrate.latest_version()
    finally:
        await conn.close()


async def test_current_version_of_an_empty_database_is_zero(empty_database: str) -> None:
    conn = await asyncpg.connect(empty_database)
    try:
        assert await migrate.current_version(conn) == 0
    finally:
        await conn.close()


async def test_two_processes_migrating_at_once(empty_database: str, tmp_path: Path) -> None:
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "dispatcher",
            "migrate",
            env=child_env(empty_database, tmp_path / f"data{i}"),
            cwd=str(tmp_path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for i in range(2)
    ]
    try:
        outputs = await asyncio.wait_for(
            asyncio.gather(*(p.communicate() for p in procs)), PROCESS_TIMEOUT
        )
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
    applied_counts = []
    for proc, (out, err) in zip(procs, outputs, strict=True):
        text = out.decode() + err.decode()
        assert proc.returncode == 0, text
        match = re.search(r"applied (\d+) migration\(s\); schema at version (\d+)", text)
        assert match, text
        assert int(match.group(2)) == migrate.latest_version()
        applied_counts.append(int(match.group(1)))
    # One process did the work, the other found nothing left to do.
    assert sorted(applied_counts) == [0, len(migrate.available())]

    rows = await migration_rows(empty_database)
    versions = [r["version"] for r in rows]
    assert sorted(versions) == [m.version for m in migrate.available()]
    assert len(versions) == len(set(versions))
    assert max(versions) == migrate.latest_version()
    assert await table_exists(empty_database, "webhooks")


async def test_readyz_is_503_until_migrated(
    empty_database: str, aiohttp_client: Any, tmp_path: Path
) -> None:
    # empty_database comes first so that it is dropped only after the app has shut down.
    settings = make_settings(empty_database, tmp_path)
    app = create_app(settings, empty_database, Tokens(ADMIN_TOKEN, (PUBLISH_TOKEN,)))
    try:
        client: TestClient[Any, Any] = await aiohttp_client(app)
    except asyncpg.PostgresError as exc:
        pytest.fail(
            "the application cannot even start on an unmigrated database, so /readyz never "
            f"gets to answer 503: {type(exc).__name__}: {exc}"
        )

    resp = await client.get("/readyz")
    assert resp.status == 503, await resp.text()
    body = await resp.json()
    assert body["status"] != "ready"
    assert body["checks"]["migrations"] != "ok"
    # Alive, though not ready.
    assert (await client.get("/healthz")).status == 200

    await migrate.migrate_dsn(empty_database)
    # Once migrated, the instance becomes ready by itself (no restart needed).
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while True:
        resp = await client.get("/readyz")
        if resp.status == 200:
            break
        assert loop.time() < deadline, f"still not ready after migrating: {await resp.text()}"
        await asyncio.sleep(0.1)
    checks = (await resp.json())["checks"]
    assert checks["database"] == "ok"
    assert checks["migrations"] == "ok"


async def test_event_type_schemas_migration_upgrades_a_database_holding_types(
    empty_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0004 adds schema and examples to existing event types: no schema, no examples."""
    shipped = migrate.available()
    before = [m for m in shipped if m.version < 4]
    monkeypatch.setattr(migrate, "available", lambda: before)
    await migrate.migrate_dsn(empty_database)
    conn = await asyncpg.connect(empty_database)
    try:
        await conn.execute(
            "INSERT INTO event_types (name, description, enabled) "
            "VALUES ('order.created', 'x', false)"
        )
        monkeypatch.setattr(migrate, "available", lambda: shipped)
        await migrate.migrate(conn)
        row = await conn.fetchrow("SELECT * FROM event_types WHERE name = 'order.created'")
        assert row is not None
        assert (row["description"], row["enabled"]) == ("x", False)
        assert row["schema"] is None
        assert row["examples"] == "[]"
    finally:
        await conn.close()


async def test_attempts_failed_migration_classifies_the_attempts_already_logged(
    empty_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0009 stores whether each logged attempt failed: 2xx did not; 4xx, 5xx, none did."""
    shipped = migrate.available()
    monkeypatch.setattr(migrate, "available", lambda: [m for m in shipped if m.version < 9])
    await migrate.migrate_dsn(empty_database)
    conn = await asyncpg.connect(empty_database)
    try:
        # The attempts alone: their deliveries do not matter to the column (no FK checks).
        await conn.execute("SET session_replication_role = replica")
        for code in (200, 204, 299, 301, 404, 410, 429, 500, None):
            await conn.execute(
                "INSERT INTO attempts (delivery_id, number, webhook_id, started_at, "
                "duration_ms, status_code, url) VALUES ('dlv_x', 1, 'wh_x', now(), 1, $1, "
                "'http://example.com/')",
                code,
            )
        monkeypatch.setattr(migrate, "available", lambda: shipped)
        assert 9 in await migrate.migrate(conn)
        rows = await conn.fetch("SELECT status_code, failed FROM attempts ORDER BY id")
        assert len(rows) == 9
        assert {r["status_code"]: r["failed"] for r in rows} == {
            200: False,
            204: False,
            299: False,
            301: True,
            404: True,
            410: True,
            429: True,
            500: True,
            None: True,
        }
    finally:
        await conn.close()


async def test_lighter_hot_tables_migration_keeps_every_row_and_drops_the_row_checks(
    empty_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0010 drops two foreign keys and three indexes of the hot tables, keeping the rows."""
    shipped = migrate.available()
    monkeypatch.setattr(migrate, "available", lambda: [m for m in shipped if m.version < 10])
    await migrate.migrate_dsn(empty_database)
    conn = await asyncpg.connect(empty_database)
    try:
        await conn.execute(
            "INSERT INTO events (id, type, data, occurred_at) VALUES"
            " ('evt_m1', 'order.created', '{\"n\": 1}', now());"
            "INSERT INTO deliveries (id, event_id, webhook_id, event_type, status, attempt_count)"
            " VALUES ('dlv_m1', 'evt_m1', 'wh_m', 'order.created', 'success', 1),"
            " ('dlv_m2', 'evt_m1', 'wh_n', 'order.created', 'failed', 3);"
            "INSERT INTO attempts (delivery_id, number, webhook_id, started_at, duration_ms,"
            " status_code, url, failed) VALUES"
            " ('dlv_m1', 1, 'wh_m', now(), 3, 200, 'https://example.com/', false),"
            " ('dlv_m2', 3, 'wh_n', now(), 3, 500, 'https://example.com/', true)"
        )
        monkeypatch.setattr(migrate, "available", lambda: shipped)
        assert 10 in await migrate.migrate(conn)
        assert await conn.fetchval("SELECT count(*) FROM events") == 1
        rows = await conn.fetch("SELECT id, status FROM deliveries ORDER BY id")
        assert [(r["id"], r["status"]) for r in rows] == [
            ("dlv_m1", "success"),
            ("dlv_m2", "failed"),
        ]
        assert await conn.fetchval("SELECT count(*) FROM attempts") == 2
        fks = await conn.fetch(
            "SELECT conname FROM pg_constraint WHERE contype = 'f'"
            " AND conrelid IN ('deliveries'::regclass, 'attempts'::regclass)"
        )
        assert fks == []
        indexes = {
            r["indexname"]
            for r in await conn.fetch(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'deliveries'"
            )
        }
        assert "deliveries_failed" in indexes
        assert not indexes & {"deliveries_leased", "deliveries_finished", "deliveries_status"}
        # The status filter still finds the failed one.
        assert await conn.fetchval("SELECT count(*) FROM deliveries WHERE status <> 'success'") == 1
    finally:
        await conn.close()
