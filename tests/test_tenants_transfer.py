"""``dispatcher export`` / ``import`` carry tenants: idempotent, tenants before the webhooks
that name them, and a webhook naming a tenant nobody has imports nothing."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
import pytest

from dispatcher import migrate, transfer
from tests.helpers import Client, call, webhook_body


async def tenants_of(dsn: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT id, name, metadata::text, created_at FROM tenants ORDER BY id"
        )
    finally:
        await conn.close()
    return [dict(r) for r in rows]


async def test_tenants_round_trip_and_a_second_import_changes_nothing(
    client: Client, database_url: str, empty_database: str
) -> None:
    await call(client, "POST", "/v1/tenants", 201, json={"id": "acme", "name": "Acme"})
    await call(
        client, "POST", "/v1/tenants", 201, json={"id": "b:2", "name": "B", "metadata": {"k": [1]}}
    )
    document = await transfer.export_dsn(database_url)
    assert [(t["id"], t["name"], t["metadata"]) for t in document["tenants"]] == [
        ("acme", "Acme", {}),
        ("b:2", "B", {"k": [1]}),
    ]
    await migrate.migrate_dsn(empty_database)
    parsed = transfer.parse(transfer.dumps(document))
    first = await transfer.import_dsn(empty_database, parsed, grace_seconds=0)
    assert str(first.tenants) == "2 created, 0 updated, 0 unchanged"
    assert await tenants_of(empty_database) == await tenants_of(database_url)
    again = await transfer.import_dsn(empty_database, parsed, grace_seconds=0)
    assert str(again.tenants) == "0 created, 0 updated, 2 unchanged"
    document["tenants"][0]["name"] = "Acme Inc."
    changed = await transfer.import_dsn(
        empty_database, transfer.parse(transfer.dumps(document)), grace_seconds=0
    )
    assert str(changed.tenants) == "0 created, 1 updated, 1 unchanged"
    assert (await tenants_of(empty_database))[0]["name"] == "Acme Inc."


@pytest.mark.parametrize(
    ("tenants", "message"),
    [
        ([{"id": "a b", "name": "x"}], "tenants[0].id"),
        ([{"id": "a", "name": "x"}, {"id": "a", "name": "y"}], "tenants[1].id: 'a' repeats"),
        ({"id": "a"}, "tenants: must be a list"),
        ([{"id": "a", "name": "x", "extra": 1}], "tenants[0].extra"),
    ],
)
def test_bad_tenant_records_are_refused_before_anything_is_written(
    tenants: Any, message: str
) -> None:
    with pytest.raises(transfer.TransferError) as caught:
        transfer.parse(orjson.dumps({"tenants": tenants}))
    assert any(message in p for p in caught.value.problems), caught.value.problems


async def test_a_webhook_naming_an_unknown_tenant_imports_nothing(
    client: Client, database_url: str, db: asyncpg.Connection
) -> None:
    document = {
        "tenants": [{"id": "new", "name": "New"}],
        "webhooks": [{**webhook_body(), "id": "wh_1", "tenant_id": "ghost"}],
    }
    with pytest.raises(transfer.TransferError) as caught:
        await transfer.import_dsn(
            database_url, transfer.parse(orjson.dumps(document)), grace_seconds=0
        )
    assert caught.value.problems == ["tenant 'ghost' does not exist"]
    assert await db.fetchval("SELECT count(*) FROM tenants") == 0
    assert await db.fetchval("SELECT count(*) FROM webhooks") == 0


async def test_a_tenants_webhook_keeps_its_tenant_through_export_and_import(
    client: Client, database_url: str, empty_database: str
) -> None:
    await call(client, "POST", "/v1/tenants", 201, json={"id": "acme", "name": "Acme"})
    hook = await call(
        client, "POST", "/v1/webhooks", 201, json={**webhook_body(), "tenant_id": "acme"}
    )
    document = await transfer.export_dsn(database_url)
    [exported] = [w for w in document["webhooks"] if w["id"] == hook["id"]]
    assert exported["tenant_id"] == "acme"
    await migrate.migrate_dsn(empty_database)
    await transfer.import_dsn(
        empty_database, transfer.parse(transfer.dumps(document)), grace_seconds=0
    )
    conn = await asyncpg.connect(empty_database)
    try:
        assert (
            await conn.fetchval("SELECT tenant_id FROM webhooks WHERE id = $1", hook["id"])
            == "acme"
        )
    finally:
        await conn.close()
