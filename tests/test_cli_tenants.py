"""``dispatcher tenants create|list|show|update|delete|token|tokens|revoke|portal``."""

from __future__ import annotations

import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestServer

from dispatcher.app_keys import SETTINGS
from tests.test_cli import (
    Invoke,
    _keep_logging,
    as_json,
    base_env,
    http,
    invoke,
    ok,
    server,
    settings,
)

__all__ = ["_keep_logging", "base_env", "http", "invoke", "server", "settings"]  # fixtures


async def test_tenants_commands(http: Invoke, server: TestServer, db: asyncpg.Connection) -> None:
    created = as_json(
        await http(
            "tenants",
            "create",
            "acme",
            "--name",
            "Acme Inc.",
            "--metadata",
            '{"plan": "pro"}',
            "--json",
        )
    )
    assert created["id"] == "acme" and created["metadata"] == {"plan": "pro"}
    ok(await http("tenants", "create", "beta", "--name", "Beta"))

    again = await http("tenants", "create", "acme", "--name", "Again")
    assert again.exit_code == 1 and "already exists" in again.stderr
    bad = await http("tenants", "create", "a b", "--name", "x", "--json")
    assert bad.exit_code == 1 and orjson.loads(bad.stderr)["errors"][0]["field"] == "id"
    assert (
        "not valid JSON"
        in (await http("tenants", "create", "c", "--name", "c", "--metadata", "{")).output
    )

    listed = ok(await http("tenants", "list"))
    assert "acme" in listed.stdout and "Acme Inc." in listed.stdout and "beta" in listed.stdout
    found = as_json(await http("tenants", "list", "--search", "acm", "--json"))
    assert [t["id"] for t in found["data"]] == ["acme"]

    updated = as_json(await http("tenants", "update", "acme", "--name", "Acme", "--json"))
    assert updated["name"] == "Acme" and updated["metadata"] == {"plan": "pro"}

    token = ok(await http("tenants", "token", "acme", "--expires-in", "2h"))
    secret = token.stdout.strip()
    assert secret.startswith("dsp_tenant_") and "expires" in token.stderr
    forever = as_json(await http("tenants", "token", "acme", "--json"))
    assert forever["expires_at"] is None
    # The printed token works, as a tenant's.
    tenant_list = await http("webhooks", "list", "--json", DISPATCHER_TOKEN=secret)
    assert as_json(tenant_list)["data"] == []

    shown = ok(await http("tenants", "show", "acme"))
    assert "Acme" in shown.stdout and forever["id"] in shown.stdout
    assert secret not in shown.stdout
    tokens = as_json(await http("tenants", "tokens", "acme", "--json"))
    assert len(tokens["data"]) == 2 and all("token" not in t for t in tokens["data"])

    ok(await http("tenants", "revoke", "acme", forever["id"]))
    assert len(as_json(await http("tenants", "tokens", "acme", "--json"))["data"]) == 1

    link = ok(await http("tenants", "portal", "acme", "--expires-in", "30m"))
    # Under DISPATCHER_PUBLIC_URL, here unset: http://HOST:PORT of the server's settings.
    base = server.app[SETTINGS].public_base_url()
    assert link.stdout.startswith(f"{base}/portal/signin/")
    assert "one use" in link.stderr
    expiry = await db.fetchval("SELECT expires_at - created_at FROM portal_links")
    assert 29 * 60 <= expiry.total_seconds() <= 30 * 60 + 5

    refused = await http("tenants", "delete", "acme", input="n\n")
    assert refused.exit_code != 0
    assert as_json(await http("tenants", "show", "acme", "--json"))["id"] == "acme"
    ok(await http("tenants", "delete", "acme", "--yes"))
    missing = await http("tenants", "show", "acme")
    assert missing.exit_code == 1 and "does not exist" in missing.stderr
    assert (await http("webhooks", "list", DISPATCHER_TOKEN=secret)).exit_code == 1


@pytest.mark.parametrize("value", ["soon", "-5", "1w", "5 minutes"])
async def test_a_bad_expiry_is_a_usage_error(http: Invoke, value: str) -> None:
    result = await http("tenants", "token", "acme", "--expires-in", value)
    assert result.exit_code == 2 and "--expires-in" in result.output
