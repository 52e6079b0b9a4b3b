"""The command line beyond ``serve``: export/import on a real database, and the HTTP commands
(``webhooks``, ``events``, ``deliveries``) against the real server on a real port.

Commands run in-process through click's CliRunner, in a worker thread so the test's event
loop keeps serving the application they talk to. One export also runs as a real process to
show that its stdout is nothing but the JSON document.
"""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner, Result

from dispatcher import db as dbmod
from dispatcher import logs, migrate, transfer
from dispatcher.app import create_app
from dispatcher.app_keys import REGISTRY
from dispatcher.auth import Tokens
from dispatcher.cli import main
from dispatcher.config import Settings
from dispatcher.store import webhooks as webhook_store
from tests.conftest import make_settings
from tests.helpers import ADMIN, ADMIN_TOKEN, PUBLISH_TOKEN, webhook_body
from tests.receiver import Receiver

REPO = Path(__file__).resolve().parent.parent

Invoke = Callable[..., Awaitable[Result]]


@pytest.fixture(autouse=True)
def _keep_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """CLI commands configure structlog for their process; in-process they must not
    redirect this test session's logs into the runner's captured streams."""
    monkeypatch.setattr(logs, "configure", lambda *_a, **_k: None)


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str | None]:
    """An environment free of the developer's DISPATCHER_* settings."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("DISPATCHER_")}
    env["DISPATCHER_DATA_DIR"] = str(tmp_path / "data")
    return env


@pytest.fixture
def invoke(base_env: dict[str, str | None]) -> Invoke:
    """Run ``dispatcher ARGS`` in-process, off the event loop; returns click's Result."""

    async def run(*args: str, input: str | bytes | None = None, **env: str | None) -> Result:
        runner = CliRunner()
        return await asyncio.to_thread(
            runner.invoke, main, list(args), input=input, env={**base_env, **env}
        )

    return run


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.output, result.stderr, result.exception)
    return result


def as_json(result: Result) -> Any:
    return orjson.loads(ok(result).stdout)


# --------------------------------------------------------------------------------------------
# HTTP commands


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Retries far apart, so a failing delivery stays waiting while the test looks at it."""
    return make_settings(database_url, tmp_path, retry_base_seconds=3600)


@pytest.fixture
async def server(aiohttp_server: Any, settings: Settings, db: asyncpg.Connection) -> TestServer:
    app = create_app(settings, settings.database_url or "", Tokens(ADMIN_TOKEN, (PUBLISH_TOKEN,)))
    result: TestServer = await aiohttp_server(app)
    return result


@pytest.fixture
def http(invoke: Invoke, server: TestServer) -> Invoke:
    """Like ``invoke``, with DISPATCHER_URL and DISPATCHER_TOKEN pointing at the server."""

    async def run(*args: str, input: str | bytes | None = None, **env: str | None) -> Result:
        env = {
            "DISPATCHER_URL": f"http://{server.host}:{server.port}",
            "DISPATCHER_TOKEN": ADMIN_TOKEN,
            **env,
        }
        return await invoke(*args, input=input, **env)

    return run


async def test_webhooks_commands(http: Invoke, receiver: Receiver) -> None:
    created = as_json(
        await http(
            "webhooks",
            "create",
            "billing",
            receiver.url("/billing"),
            "-e",
            "invoice.*",
            "-e",
            "refund.created",
            "--description",
            "to billing",
            "--header",
            "X-Team: billing",
            "--header",
            "X-Env=prod",
            "--metadata",
            '{"owner": "ana"}',
            "--max-retries",
            "3",
            "--timeout",
            "2.5",
            "--rate-limit",
            "10",
            "--max-in-flight",
            "4",
            "--no-payload",
            "--json",
        )
    )
    hook_id = created["id"]
    assert created["secret"].startswith("whsec_")
    assert created["event_types"] == ["invoice.*", "refund.created"]
    assert created["headers"] == {"X-Team": "billing", "X-Env": "prod"}
    assert created["metadata"] == {"owner": "ana"}
    assert (created["max_retries"], created["timeout_seconds"]) == (3, 2.5)
    assert (created["rate_limit_per_second"], created["max_in_flight"]) == (10, 4)
    assert created["include_payload"] is False

    # The human form of create shows the secret too.
    human = ok(
        await http("webhooks", "create", "audit", receiver.url("/a"), "-e", "*", "--disabled")
    )
    assert "secret" in human.stdout and "whsec_" in human.stdout
    assert "disabled (manual)" in human.stdout

    table = ok(await http("webhooks", "list")).stdout
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["ID", "NAME", "URL"]
    assert any(hook_id in ln and "billing" in ln and "enabled" in ln for ln in lines[1:])
    assert any("audit" in ln and "disabled (manual)" in ln for ln in lines[1:])

    listed = as_json(await http("webhooks", "list", "--json"))
    assert len(listed["data"]) == 2 and listed["next_cursor"] is None
    assert [
        w["name"] for w in as_json(await http("webhooks", "list", "--disabled", "--json"))["data"]
    ] == ["audit"]
    first = await http("webhooks", "list", "--limit", "1", "--json")
    page = as_json(first)
    assert len(page["data"]) == 1 and page["next_cursor"]
    assert "--cursor" not in first.stdout
    everything = as_json(await http("webhooks", "list", "--limit", "1", "--all", "--json"))
    assert len(everything["data"]) == 2 and everything["next_cursor"] is None
    more = await http("webhooks", "list", "--limit", "1")
    assert "--cursor" in more.stderr
    rest = as_json(await http("webhooks", "list", "--cursor", page["next_cursor"], "--json"))
    assert [w["name"] for w in rest["data"]] == ["billing"]

    shown = as_json(await http("webhooks", "show", hook_id, "--json"))
    assert "secret" not in shown and shown["url"] == receiver.url("/billing")
    with_secret = as_json(await http("webhooks", "show", hook_id, "--secret", "--json"))
    assert with_secret["secret"] == created["secret"]
    human_show = ok(await http("webhooks", "show", hook_id)).stdout
    assert "X-Team: billing" in human_show and "invoice.*, refund.created" in human_show
    assert "whsec_" not in human_show

    assert ok(await http("webhooks", "disable", hook_id)).stdout.strip() == (
        f"{hook_id}: disabled (manual)"
    )
    assert as_json(await http("webhooks", "disable", hook_id, "--json"))["enabled"] is False
    assert ok(await http("webhooks", "enable", hook_id)).stdout.strip() == f"{hook_id}: enabled"

    new_secret = ok(await http("webhooks", "rotate-secret", hook_id)).stdout.strip()
    assert new_secret.startswith("whsec_") and new_secret != created["secret"]
    rotated = as_json(await http("webhooks", "rotate-secret", hook_id, "--json"))
    assert rotated["secret"] not in (new_secret, created["secret"])

    declined = await http("webhooks", "delete", hook_id, input="n\n")
    assert declined.exit_code == 1
    assert as_json(await http("webhooks", "show", hook_id, "--json"))["id"] == hook_id
    confirmed = ok(await http("webhooks", "delete", hook_id, input="y\n"))
    assert f"{hook_id}: deleted" in confirmed.stdout

    missing = await http("webhooks", "show", hook_id)
    assert missing.exit_code == 1
    assert "404" in missing.stderr and hook_id in missing.stderr
    missing_json = await http("webhooks", "delete", hook_id, "--yes", "--json")
    assert missing_json.exit_code == 1
    assert orjson.loads(missing_json.stderr)["status"] == 404

    bad = await http("webhooks", "create", "x", "ftp://nope", "-e", "a.b")
    assert bad.exit_code == 1
    assert "422" in bad.stderr and "url" in bad.stderr


async def test_events_and_deliveries_commands(http: Invoke, receiver: Receiver) -> None:
    async def failing(_request: Any, _n: int) -> Any:
        from aiohttp import web

        return web.Response(status=500, text="down")

    receiver.responders["/down"] = failing
    ok_hook = as_json(
        await http("webhooks", "create", "ok", receiver.url(), "-e", "order.*", "--json")
    )
    down = as_json(
        await http("webhooks", "create", "down", receiver.url("/down"), "-e", "order.*", "--json")
    )

    sent = as_json(await http("events", "send", "order.created", '{"order": 1}', "--json"))
    assert sent["deliveries"] == 2 and sent["duplicate"] is False
    assert sent["id"].startswith("evt_")
    human = ok(
        await http(
            "events", "send", "order.paid", "-", "--id", "order-1-paid", input='{"order": 1}'
        )
    ).stdout
    assert human.strip() == "order-1-paid: order.paid, 2 deliveries"
    again = ok(await http("events", "send", "order.paid", "{}", "--id", "order-1-paid")).stdout
    assert "duplicate" in again
    stamped = as_json(
        await http(
            "events",
            "send",
            "user.created",
            "[1, 2]",
            "--occurred-at",
            "2026-01-02T03:04:05Z",
            "--json",
        )
    )
    assert stamped["deliveries"] == 0
    bad_json = await http("events", "send", "order.created", "{nope")
    assert bad_json.exit_code == 2 and "JSON" in bad_json.stderr
    bad_type = await http("events", "send", "no spaces allowed", "{}")
    assert bad_type.exit_code == 1 and "422" in bad_type.stderr

    await receiver.wait_for(2, "/hook")
    await receiver.wait_for(2, "/down")

    listed = as_json(await http("deliveries", "list", "--json"))
    assert len(listed["data"]) == 4
    mine = as_json(await http("deliveries", "list", "--webhook-id", down["id"], "--json"))["data"]
    assert {d["event_id"] for d in mine} == {sent["id"], "order-1-paid"}
    by_event = as_json(await http("deliveries", "list", "--event-id", sent["id"], "--json"))
    assert {d["webhook_id"] for d in by_event["data"]} == {ok_hook["id"], down["id"]}

    # Wait for every outcome to be recorded: success on one webhook, retrying on the other.
    async def statuses() -> dict[tuple[str, str], str]:
        rows = as_json(await http("deliveries", "list", "--json"))["data"]
        return {(d["webhook_id"], d["event_id"]): d["status"] for d in rows}

    expected = {
        (hook, event): status
        for hook, status in ((ok_hook["id"], "success"), (down["id"], "retrying"))
        for event in (sent["id"], "order-1-paid")
    }
    for _ in range(100):
        got = await statuses()
        if got == expected:
            break
        await asyncio.sleep(0.1)
    assert got == expected

    [waiting] = [d for d in by_event["data"] if d["webhook_id"] == down["id"]]
    [done] = [d for d in by_event["data"] if d["webhook_id"] == ok_hook["id"]]

    table = ok(await http("deliveries", "list", "--status", "retrying")).stdout.splitlines()
    assert table[0].split()[:2] == ["ID", "STATUS"]
    assert len(table) == 3 and all("retrying" in ln for ln in table[1:])
    assert as_json(await http("deliveries", "list", "--status", "failed", "--json"))["data"] == []
    assert (
        ok(await http("deliveries", "list", "--status", "failed")).stdout.strip().endswith("(none)")
    )

    shown = as_json(await http("deliveries", "show", waiting["id"], "--json"))
    assert shown["attempts"][0]["status_code"] == 500
    human_show = ok(await http("deliveries", "show", waiting["id"])).stdout
    assert "retrying" in human_show and "down" in human_show and "500" in human_show

    cancelled = ok(await http("deliveries", "cancel", waiting["id"])).stdout
    assert cancelled.strip() == f"{waiting['id']}: cancelled"
    again_cancel = await http("deliveries", "cancel", waiting["id"])
    assert again_cancel.exit_code == 1 and "409" in again_cancel.stderr
    retried = as_json(await http("deliveries", "retry", waiting["id"], "--json"))
    assert retried["status"] == "retrying"
    refused = await http("deliveries", "retry", done["id"], "--json")
    assert refused.exit_code == 1
    assert orjson.loads(refused.stderr)["status"] == 409
    assert (await http("deliveries", "show", "dlv_nope")).exit_code == 1


async def test_token_comes_from_the_data_dir_like_the_token_command(
    http: Invoke, invoke: Invoke, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    # No token anywhere: a clear error, and no token file is created behind the user's back.
    none = await http("webhooks", "list", DISPATCHER_TOKEN=None)
    assert none.exit_code == 2 and "no token" in none.stderr
    assert not (data_dir / "admin_token").exists()

    data_dir.mkdir()
    (data_dir / "admin_token").write_text(ADMIN_TOKEN + "\n")
    assert ok(await invoke("token")).stdout.strip() == ADMIN_TOKEN
    assert as_json(await http("webhooks", "list", "--json", DISPATCHER_TOKEN=None))["data"] == []
    # DISPATCHER_ADMIN_TOKEN wins over the file; a wrong one is a 401.
    wrong = await http("webhooks", "list", DISPATCHER_TOKEN=None, DISPATCHER_ADMIN_TOKEN="x" * 20)
    assert wrong.exit_code == 1 and "401" in wrong.stderr
    # --token wins over everything; a publish token may publish but not list.
    assert ok(await http("events", "send", "a.b", "1", "--token", PUBLISH_TOKEN))
    forbidden = await http("webhooks", "list", "--token", PUBLISH_TOKEN)
    assert forbidden.exit_code == 1 and "403" in forbidden.stderr


async def test_token_never_creates_one_and_says_where_it_looked(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Run from another directory with the default (relative) data dir, as a newcomer would
    # who opens a second terminal elsewhere: the message names the absolute path it tried.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    missing = await invoke("token", DISPATCHER_DATA_DIR=None)
    assert missing.exit_code == 2 and missing.stdout == ""
    assert str(elsewhere / ".dispatcher" / "admin_token") in missing.stderr
    assert "make run" in missing.stderr
    assert "DISPATCHER_DATA_DIR" in missing.stderr and "DISPATCHER_ADMIN_TOKEN" in missing.stderr
    assert not (elsewhere / ".dispatcher").exists()

    # An empty token file is no token either, and is left as it was.
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "admin_token").write_text("")
    assert (await invoke("token")).exit_code == 2
    assert (data_dir / "admin_token").read_text() == ""

    configured = "c" * 24
    assert ok(await invoke("token", DISPATCHER_ADMIN_TOKEN=configured)).stdout == configured + "\n"


async def test_unreachable_server(invoke: Invoke) -> None:
    from tests.test_client import free_port

    result = await invoke(
        "webhooks",
        "list",
        "--url",
        f"http://127.0.0.1:{free_port()}",
        "--token",
        ADMIN_TOKEN,
    )
    assert result.exit_code == 1
    assert "cannot reach" in result.stderr
    assert "Traceback" not in result.output + result.stderr


# --------------------------------------------------------------------------------------------
# export / import


async def _connect(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn)
    await dbmod.init_connection(conn)
    return conn


async def _snapshot(dsn: str) -> dict[str, Any]:
    """Everything registration-related in a database, for before/after comparisons."""
    conn = await _connect(dsn)
    try:
        return {
            "webhooks": [dict(r) for r in await conn.fetch("SELECT * FROM webhooks ORDER BY id")],
            "secrets": [
                dict(r)
                for r in await conn.fetch(
                    "SELECT webhook_id, secret, created_at, expires_at FROM webhook_secrets "
                    "ORDER BY id"
                )
            ],
            "event_types": [
                dict(r) for r in await conn.fetch("SELECT * FROM event_types ORDER BY name")
            ],
        }
    finally:
        await conn.close()


async def _populate(client: TestClient[Any, Any]) -> list[dict[str, Any]]:
    """Webhooks and event types with every kind of field, created through the API."""
    hooks = []
    for body in (
        webhook_body(name="plain"),
        webhook_body(
            name="full",
            url="https://billing.example.com/hooks?x=1",
            event_types=["invoice.*", "refund.created", "*"],
            description="everything set",
            headers={"X-Team": "billing", "X-Env": "prod"},
            metadata={"owner": "ana", "nested": {"list": [1, 2.5, None, "ü"]}},
            include_payload=False,
            max_retries=3,
            timeout_seconds=2.5,
            rate_limit_per_second=0.5,
            max_in_flight=7,
        ),
        webhook_body(name="off", enabled=False),
    ):
        resp = await client.post("/v1/webhooks", json=body, headers=ADMIN)
        assert resp.status == 201, await resp.text()
        hooks.append(await resp.json())
    # A rotated secret: the export carries the current one.
    resp = await client.post(f"/v1/webhooks/{hooks[0]['id']}/secret/rotate", headers=ADMIN)
    hooks[0]["secret"] = (await resp.json())["secret"]
    for et in (
        {"name": "order.created", "description": "An order was placed"},
        {"name": "audit.noise", "enabled": False},
    ):
        resp = await client.post("/v1/event-types", json=et, headers=ADMIN)
        assert resp.status == 201, await resp.text()
    return hooks


async def test_export_import_round_trip(
    client: TestClient[Any, Any],
    invoke: Invoke,
    database_url: str,
    empty_database: str,
    db: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    hooks = await _populate(client)
    await db.execute(
        "UPDATE webhooks SET enabled = false, disabled_reason = 'auto', disabled_at = now() "
        "WHERE name = 'plain'"
    )
    document = as_json(await invoke("export", DISPATCHER_DATABASE_URL=database_url))
    assert document["format"] == "dispatcher-export" and document["version"] == 1
    assert [w["id"] for w in document["webhooks"]] == sorted(h["id"] for h in hooks)
    by_name = {w["name"]: w for w in document["webhooks"]}
    assert {n: w["secret"] for n, w in by_name.items()} == {h["name"]: h["secret"] for h in hooks}
    assert by_name["plain"]["disabled_reason"] == "auto"
    assert by_name["off"]["disabled_reason"] == "manual"
    assert by_name["full"]["headers"] == {"X-Team": "billing", "X-Env": "prod"}
    assert by_name["full"]["metadata"]["nested"] == {"list": [1, 2.5, None, "ü"]}
    assert by_name["full"]["rate_limit_per_second"] == 0.5
    assert [t["name"] for t in document["event_types"]] == ["audit.noise", "order.created"]

    # Into an empty, migrated database.
    await migrate.migrate_dsn(empty_database)
    path = tmp_path / "backup.json"
    path.write_bytes(orjson.dumps(document))
    result = ok(await invoke("import", str(path), DISPATCHER_DATABASE_URL=empty_database))
    assert "webhooks: 3 created, 0 updated, 0 unchanged" in result.stdout
    assert "event types: 2 created, 0 updated, 0 unchanged" in result.stdout

    source, copy = await _snapshot(database_url), await _snapshot(empty_database)

    def comparable(snap: dict[str, Any]) -> dict[str, Any]:
        current = {s["webhook_id"]: s["secret"] for s in snap["secrets"] if s["expires_at"] is None}
        return {
            "webhooks": [
                {k: v for k, v in w.items() if k != "updated_at"} for w in snap["webhooks"]
            ],
            "current_secrets": current,
            "event_types": [
                {k: v for k, v in t.items() if k != "updated_at"} for t in snap["event_types"]
            ],
        }

    assert comparable(copy) == comparable(source)
    # Exporting the copy gives the same document.
    again = as_json(await invoke("export", DISPATCHER_DATABASE_URL=empty_database))
    assert {**again, "exported_at": None} == {**document, "exported_at": None}

    # A second import changes nothing at all, timestamps included.
    second = ok(await invoke("import", str(path), DISPATCHER_DATABASE_URL=empty_database))
    assert "webhooks: 0 created, 0 updated, 3 unchanged" in second.stdout
    assert "event types: 0 created, 0 updated, 2 unchanged" in second.stdout
    assert await _snapshot(empty_database) == copy
    # Importing into the source itself is a no-op too.
    ok(await invoke("import", str(path), DISPATCHER_DATABASE_URL=database_url))
    assert await _snapshot(database_url) == source

    # The secret in the copy signs: the webhook's signing secrets are the exported one.
    conn = await _connect(empty_database)
    try:
        for w in document["webhooks"]:
            assert await webhook_store.signing_secrets(conn, w["id"]) == [w["secret"]]
    finally:
        await conn.close()


async def test_import_updates_what_differs(
    client: TestClient[Any, Any], invoke: Invoke, database_url: str, tmp_path: Path
) -> None:
    hooks = await _populate(client)
    document = as_json(await invoke("export", DISPATCHER_DATABASE_URL=database_url))
    before = await _snapshot(database_url)
    by_name = {w["name"]: w for w in document["webhooks"]}
    by_name["plain"]["url"] = "https://new.example.com/hook"
    by_name["off"]["enabled"] = True
    by_name["off"]["disabled_reason"] = None
    new_secret = "whsec_" + "A" * 44
    by_name["full"]["secret"] = new_secret
    document["event_types"][1]["description"] = "changed"
    document["event_types"].append({"name": "user.created"})
    document["webhooks"].append({**webhook_body(name="added"), "id": "wh_imported_1"})
    path = tmp_path / "changed.json"
    path.write_bytes(orjson.dumps(document))

    result = ok(await invoke("import", str(path), DISPATCHER_DATABASE_URL=database_url))
    assert "webhooks: 1 created, 3 updated, 0 unchanged" in result.stdout
    assert "event types: 1 created, 1 updated, 1 unchanged" in result.stdout

    after = await _snapshot(database_url)
    old = {w["id"]: w for w in before["webhooks"]}
    new = {w["id"]: w for w in after["webhooks"]}
    plain, off, full = (by_name[n]["id"] for n in ("plain", "off", "full"))
    assert new[plain]["url"] == "https://new.example.com/hook"
    assert new[plain]["updated_at"] > old[plain]["updated_at"]
    assert (new[off]["enabled"], new[off]["disabled_reason"], new[off]["disabled_at"]) == (
        True,
        None,
        None,
    )
    # Only the secret changed: the row is untouched, the old secret signs for the grace period.
    assert new[full] == old[full]
    conn = await _connect(database_url)
    try:
        assert await webhook_store.current_secret(conn, full) == new_secret
        signing = await webhook_store.signing_secrets(conn, full)
        assert signing == [new_secret, hooks[1]["secret"]]
    finally:
        await conn.close()
    assert new["wh_imported_1"]["name"] == "added"
    types = {t["name"]: t for t in after["event_types"]}
    assert types["order.created"]["description"] == "changed"
    assert "user.created" in types

    # And again: nothing.
    again = ok(await invoke("import", str(path), DISPATCHER_DATABASE_URL=database_url))
    assert "webhooks: 0 created, 0 updated, 4 unchanged" in again.stdout
    assert await _snapshot(database_url) == after


async def test_import_reaches_running_instances(
    client: TestClient[Any, Any], invoke: Invoke, database_url: str, tmp_path: Path
) -> None:
    """The import NOTIFYs: a running server learns the webhooks without a reload."""
    document = {
        "webhooks": [{**webhook_body(name="from-file"), "id": "wh_from_file"}],
        "event_types": [{"name": "order.created", "enabled": False}],
    }
    path = tmp_path / "doc.json"
    path.write_bytes(orjson.dumps(document))
    ok(await invoke("import", str(path), DISPATCHER_DATABASE_URL=database_url))
    registry = client.app[REGISTRY]
    for _ in range(100):
        if "wh_from_file" in registry.webhooks:
            break
        await asyncio.sleep(0.02)
    assert "wh_from_file" in registry.webhooks
    # The disabled type reached the registry too: publishing it creates no delivery.
    for _ in range(100):
        resp = await client.post(
            "/v1/events", json={"type": "order.created", "data": {}}, headers=ADMIN
        )
        if (await resp.json())["deliveries"] == 0:
            break
        await asyncio.sleep(0.02)
    assert (await resp.json())["deliveries"] == 0


async def test_invalid_import_reports_every_record_and_imports_nothing(
    invoke: Invoke, database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    document = {
        "webhooks": [
            {**webhook_body(name="good"), "id": "wh_good"},
            {**webhook_body(url="ftp://nope"), "id": "wh_bad"},
            {**webhook_body(), "id": "wh_good"},
            {**webhook_body(enabled=True), "id": "wh_x", "disabled_reason": "auto"},
            {**webhook_body(), "id": "has space", "surprise": 1},
        ],
        "event_types": [{"name": "fine.type"}, {"name": "bad name"}],
    }
    path = tmp_path / "bad.json"
    path.write_bytes(orjson.dumps(document))
    result = await invoke("import", str(path), DISPATCHER_DATABASE_URL=database_url)
    assert result.exit_code == 1
    err = result.stderr
    assert "nothing was imported" in err
    assert "webhooks[1].url" in err
    assert "webhooks[2].id: 'wh_good' repeats webhooks[0]" in err
    assert "webhooks[3]" in err and "disabled_reason" in err
    assert "webhooks[4].id" in err and "webhooks[4].surprise" in err
    assert "event_types[1].name" in err
    assert "Traceback" not in err
    assert await db.fetchval("SELECT count(*) FROM webhooks") == 0
    assert await db.fetchval("SELECT count(*) FROM event_types") == 0

    for raw, message in (
        (b"{nope", "not valid JSON"),
        (b"[]", "JSON object"),
        (b'{"webhooks": {}}', "webhooks: must be a list"),
        (b'{"version": 2}', "version"),
        (b'{"hooks": []}', "unknown top-level key"),
    ):
        path.write_bytes(raw)
        bad = await invoke("import", str(path), DISPATCHER_DATABASE_URL=database_url)
        assert bad.exit_code == 1 and message in bad.stderr, (raw, bad.stderr)


async def test_a_failing_record_rolls_back_the_whole_import(
    invoke: Invoke, database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """Valid records, but the database refuses one: the transaction keeps nothing."""
    await db.execute(
        "ALTER TABLE webhooks ADD CONSTRAINT test_no_evil CHECK (name <> 'evil') NOT VALID"
    )
    try:
        document = {
            "event_types": [{"name": "order.created"}],
            "webhooks": [
                {**webhook_body(name="fine"), "id": "wh_1"},
                {**webhook_body(name="evil"), "id": "wh_2"},
            ],
        }
        path = tmp_path / "doc.json"
        path.write_bytes(orjson.dumps(document))
        result = await invoke("import", str(path), DISPATCHER_DATABASE_URL=database_url)
        assert result.exit_code == 1 and "test_no_evil" in result.stderr
        assert await db.fetchval("SELECT count(*) FROM webhooks") == 0
        assert await db.fetchval("SELECT count(*) FROM event_types") == 0
    finally:
        await db.execute("ALTER TABLE webhooks DROP CONSTRAINT test_no_evil")


async def test_long_import_shows_progress(
    invoke: Invoke, database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    document = {
        "event_types": [{"name": f"type.n{i}"} for i in range(150)],
        "webhooks": [{**webhook_body(name=f"hook {i}"), "id": f"wh_{i:04d}"} for i in range(60)],
    }
    path = tmp_path / "big.json"
    path.write_bytes(orjson.dumps(document))
    result = ok(await invoke("import", str(path), DISPATCHER_DATABASE_URL=database_url))
    assert "Importing" in result.stderr
    assert "webhooks: 60 created" in result.stdout
    assert await db.fetchval("SELECT count(*) FROM webhooks") == 60
    assert await db.fetchval("SELECT count(*) FROM webhook_secrets") == 60
    # From stdin, a second time: unchanged, and no duplicate rows.
    again = ok(
        await invoke("import", "-", input=path.read_bytes(), DISPATCHER_DATABASE_URL=database_url)
    )
    assert "webhooks: 0 created, 0 updated, 60 unchanged" in again.stdout
    assert await db.fetchval("SELECT count(*) FROM webhook_secrets") == 60
    small = ok(
        await invoke(
            "import", "-", input=b'{"event_types": []}', DISPATCHER_DATABASE_URL=database_url
        )
    )
    assert "Importing" not in small.stderr


async def test_export_to_a_file_is_private(
    invoke: Invoke, database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    out = tmp_path / "backup.json"
    out.write_text("old")
    out.chmod(0o644)
    result = ok(await invoke("export", "--output", str(out), DISPATCHER_DATABASE_URL=database_url))
    assert result.stdout == ""
    assert "exported 0 tenant(s), 0 webhook(s) and 0 event type(s)" in result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert orjson.loads(out.read_bytes())["webhooks"] == []


async def test_export_and_import_need_a_migrated_database(
    invoke: Invoke, empty_database: str, tmp_path: Path
) -> None:
    result = await invoke("export", DISPATCHER_DATABASE_URL=empty_database)
    assert result.exit_code == 1 and "dispatcher migrate" in result.stderr
    path = tmp_path / "doc.json"
    path.write_bytes(b'{"event_types": [{"name": "a.b"}]}')
    result = await invoke("import", str(path), DISPATCHER_DATABASE_URL=empty_database)
    assert result.exit_code == 1 and "dispatcher migrate" in result.stderr


def test_export_process_writes_only_json_to_stdout(database_url: str, tmp_path: Path) -> None:
    """A real ``dispatcher export``: log lines go to stderr, stdout parses as the document."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCHER_")}
    env.update(
        {
            "DISPATCHER_DATABASE_URL": database_url,
            "DISPATCHER_DATA_DIR": str(tmp_path / "data"),
            "DISPATCHER_LOG_FORMAT": "console",
        }
    )
    proc = subprocess.run(
        [sys.executable, "-m", "dispatcher", "export"],
        env=env,
        cwd=REPO,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    document = orjson.loads(proc.stdout)
    assert document["format"] == "dispatcher-export"


def test_transfer_parse_accepts_api_answers() -> None:
    """A webhook as the API shows it (with created_at/updated_at) is a valid import record."""
    record = {
        **webhook_body(),
        "id": "wh_1",
        "enabled": False,
        "disabled_reason": "gone",
        "disabled_at": "2026-01-01T00:00:00Z",
        "created_at": "2026-01-01T00:00:00+00:00",
        "updated_at": "2026-01-02T00:00:00+00:00",
        "secret": None,
    }
    doc = transfer.parse(orjson.dumps({"webhooks": [record]}))
    assert len(doc) == 1 and doc.webhooks[0].disabled_reason == "gone"
