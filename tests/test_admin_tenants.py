"""The console's tenant pages: create, search, edit, tokens, "open portal as this tenant",
delete with its consequences spelt out; the webhooks list filtered by tenant."""

from __future__ import annotations

import html
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from admin.portal.session import SESSION_COOKIE
from tests.helpers import ADMIN, webhook_body
from tests.test_admin import signed_in

Client = TestClient[Any, Any]


async def test_operator_manages_tenants_and_their_tokens(
    client: Client, db: asyncpg.Connection
) -> None:
    csrf = await signed_in(client)
    created = await client.post(
        "/admin/tenants/new",
        data={"csrf_token": csrf, "id": "acme", "name": "Acme Inc.", "metadata": '{"plan": "pro"}'},
        allow_redirects=False,
    )
    assert created.status == 303, await created.text()
    assert created.headers["Location"] == "/admin/tenants/acme"
    taken = await client.post(
        "/admin/tenants/new", data={"csrf_token": csrf, "id": "acme", "name": "Again"}
    )
    assert taken.status == 422
    assert "exists already" in await taken.text()
    bad = await client.post(
        "/admin/tenants/new", data={"csrf_token": csrf, "id": "a b", "name": ""}
    )
    assert bad.status == 422
    assert await db.fetchval("SELECT count(*) FROM tenants") == 1

    listed = await client.get("/admin/tenants?q=ACM")
    assert "/admin/tenants/acme" in await listed.text()
    assert "/admin/tenants/acme" not in await (await client.get("/admin/tenants?q=zzz")).text()

    edited = await client.post(
        "/admin/tenants/acme/edit",
        data={"csrf_token": csrf, "name": "Acme Corp.", "metadata": ""},
        allow_redirects=False,
    )
    assert edited.status == 303
    assert await db.fetchval("SELECT name FROM tenants WHERE id = 'acme'") == "Acme Corp."

    page = await client.post(
        "/admin/tenants/acme/tokens", data={"csrf_token": csrf, "expires_in": "86400"}
    )
    text = await page.text()
    assert page.status == 200
    token = text.split('id="token-value">')[1].split("<")[0]
    assert (
        await client.get("/v1/webhooks", headers={"Authorization": f"Bearer {token}"})
    ).status == 200
    token_id = await db.fetchval("SELECT id FROM tenant_tokens")
    assert token not in await (await client.get("/admin/tenants/acme")).text()
    revoked = await client.post(
        f"/admin/tenants/acme/tokens/{token_id}/revoke",
        data={"csrf_token": csrf},
        allow_redirects=False,
    )
    assert revoked.status == 303
    assert (
        await client.get("/v1/webhooks", headers={"Authorization": f"Bearer {token}"})
    ).status == 401


async def test_open_portal_as_a_tenant_signs_this_browser_in(client: Client) -> None:
    csrf = await signed_in(client)
    await client.post("/v1/tenants", json={"id": "acme", "name": "Acme Inc."}, headers=ADMIN)
    answer = await client.post(
        "/admin/tenants/acme/portal", data={"csrf_token": csrf}, allow_redirects=False
    )
    assert answer.status == 303
    link = answer.headers["Location"]
    assert link.startswith("/portal/signin/")
    signin = await client.get(link, allow_redirects=False)
    assert signin.status == 303
    cookie = signin.cookies[SESSION_COOKIE].value
    page = await client.get("/portal/webhooks", headers={"Cookie": f"{SESSION_COOKIE}={cookie}"})
    assert "<title>Endpoints · Acme Inc.</title>" in await page.text()


async def test_deleting_a_tenant_says_what_goes_with_it(
    client: Client, db: asyncpg.Connection
) -> None:
    csrf = await signed_in(client)
    await client.post("/v1/tenants", json={"id": "acme", "name": "Acme Inc."}, headers=ADMIN)
    for n in range(2):
        body = {**webhook_body(name=f"acme-{n}"), "tenant_id": "acme"}
        assert (await client.post("/v1/webhooks", json=body, headers=ADMIN)).status == 201
    mine = await client.post("/v1/webhooks", json=webhook_body(name="mine"), headers=ADMIN)
    assert (await client.post("/v1/tenants/acme/tokens", json={}, headers=ADMIN)).status == 201
    page = html.unescape(await (await client.get("/admin/tenants/acme/delete")).text())
    assert "Its 2 webhooks will be deleted" in page
    assert "Its 1 token stops working at once." in page
    assert "portal sessions stop working" in page

    filtered = await (await client.get("/admin/webhooks?tenant=acme")).text()
    assert "acme-0" in filtered and "acme-1" in filtered and ">mine<" not in filtered

    answer = await client.post(
        "/admin/tenants/acme/delete", data={"csrf_token": csrf}, allow_redirects=False
    )
    assert answer.status == 303
    assert await db.fetchval("SELECT count(*) FROM tenants") == 0
    assert await db.fetchval("SELECT count(*) FROM webhooks") == 1
    assert await db.fetchval("SELECT id FROM webhooks") == (await mine.json())["id"]
    assert (await client.get("/admin/tenants/acme")).status == 404


async def test_a_deleted_tenants_id_with_its_log_kept_is_refused_in_words(
    client: Client, db: asyncpg.Connection
) -> None:
    csrf = await signed_in(client)
    resp = await client.post("/v1/tenants", json={"id": "t-1", "name": "Old"}, headers=ADMIN)
    assert resp.status == 201
    resp = await client.post(
        "/v1/events", json={"type": "order.created", "data": {}, "tenant_id": "t-1"}, headers=ADMIN
    )
    assert resp.status == 202
    resp = await client.delete("/v1/tenants/t-1", headers=ADMIN)
    assert resp.status == 204
    again = await client.post(
        "/admin/tenants/new", data={"csrf_token": csrf, "id": "t-1", "name": "New"}
    )
    assert again.status == 422
    assert "still kept" in html.unescape(await again.text())
    assert await db.fetchval("SELECT count(*) FROM tenants") == 0
