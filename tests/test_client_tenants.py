"""The clients' tenant calls against the real server on a real port: tenants, their tokens
(which then act only inside the tenant) and portal links; ``tenant_id`` on what is published."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from dispatcher_client._wire import batch_body, event_body

from dispatcher.app import create_app
from dispatcher.auth import Tokens
from dispatcher.client import AsyncClient, Client, Conflict, Forbidden, NotFound, Unauthorized
from dispatcher.config import Settings
from tests.helpers import ADMIN_TOKEN, PUBLISH_TOKEN

FAST: dict[str, Any] = {"retries": 2, "backoff": 0.01, "max_backoff": 0.05}


@pytest.fixture
async def server(aiohttp_server: Any, settings: Settings, db: asyncpg.Connection) -> TestServer:
    app = create_app(settings, settings.database_url or "", Tokens(ADMIN_TOKEN, (PUBLISH_TOKEN,)))
    result: TestServer = await aiohttp_server(app)
    return result


def url_of(server: TestServer) -> str:
    return f"http://{server.host}:{server.port}"


async def test_the_async_client_manages_tenants_tokens_and_links(server: TestServer) -> None:
    async with AsyncClient(url_of(server), token=ADMIN_TOKEN, **FAST) as api:
        made = await api.create_tenant("acme", "Acme Inc.", metadata={"plan": "pro"})
        assert made["id"] == "acme" and made["metadata"] == {"plan": "pro"}
        with pytest.raises(Conflict):
            await api.create_tenant("acme", "Again")
        await api.create_tenant("beta", "Beta")
        assert [t["id"] for t in (await api.list_tenants())["data"]] == ["acme", "beta"]
        assert [t["id"] for t in (await api.list_tenants(q="bet"))["data"]] == ["beta"]
        page = await api.list_tenants(limit=1)
        assert [t["id"] for t in (await api.list_tenants(cursor=page["next_cursor"]))["data"]] == [
            "beta"
        ]
        changed = await api.update_tenant("acme", name="Acme")
        assert changed["name"] == "Acme" and changed["metadata"] == {"plan": "pro"}
        assert (await api.get_tenant("acme"))["name"] == "Acme"

        token = await api.create_tenant_token("acme", expires_in=3600)
        assert token["token"].startswith("dsp_tenant_") and token["expires_at"]
        listed = await api.list_tenant_tokens("acme")
        assert [t["id"] for t in listed["data"]] == [token["id"]]
        link = await api.portal_link("acme", expires_in=600)
        assert "/portal/signin/" in link["url"] and link["expires_at"]

        async with AsyncClient(url_of(server), token=token["token"], **FAST) as tenant:
            assert (await tenant.list_webhooks())["data"] == []
            with pytest.raises(Forbidden):
                await tenant.publish("order.created", {"order": 1})
            with pytest.raises(Forbidden):
                await tenant.list_tenants()
            await api.revoke_tenant_token("acme", token["id"])
            with pytest.raises(Unauthorized):
                await tenant.list_webhooks()

        await api.delete_tenant("acme")
        with pytest.raises(NotFound):
            await api.get_tenant("acme")
        with pytest.raises(NotFound):
            await api.portal_link("acme")


async def test_the_blocking_client_has_the_same_calls(server: TestServer) -> None:
    def work() -> None:
        with Client(url_of(server), token=ADMIN_TOKEN, **FAST) as api:
            api.create_tenant("acme", "Acme")
            token = api.create_tenant_token("acme")
            assert token["expires_at"] is None
            secret = api.portal_link("acme")["url"].rsplit("/portal/signin/", 1)[1]
            assert len(secret) >= 40 and secret.replace("-", "").replace("_", "").isalnum()
            assert api.get_tenant("acme")["name"] == "Acme"
            api.update_tenant("acme", metadata={"k": 1})
            assert api.list_tenants()["data"][0]["metadata"] == {"k": 1}
            api.delete_tenant("acme")
            with pytest.raises(NotFound):
                api.list_tenant_tokens("acme")

    await asyncio.to_thread(work)


def test_tenant_id_travels_in_single_and_batched_events() -> None:
    assert event_body("a.b", {}, "e1", None, "acme")["tenant_id"] == "acme"
    assert "tenant_id" not in event_body("a.b", {}, "e1", None)
    assert batch_body({"type": "a.b", "data": 1, "tenant_id": "acme"})["tenant_id"] == "acme"
    with pytest.raises(ValueError, match="unknown event field"):
        batch_body({"type": "a.b", "data": 1, "tenant": "acme"})
