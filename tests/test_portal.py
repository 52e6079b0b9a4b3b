"""The tenant portal without a browser: sign-in links, the session cookie, CSRF, the CSP,
and that every page stays inside the signed-in tenant."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from admin.portal.session import COOKIE_PATH, SESSION_COOKIE
from dispatcher.store import tenants as tenant_store
from tests.helpers import ADMIN, PUBLISHER, eventually, webhook_body

Client = TestClient[Any, Any]
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def make_tenant(client: Client, tenant_id: str, name: str) -> None:
    answer = await client.post("/v1/tenants", json={"id": tenant_id, "name": name}, headers=ADMIN)
    assert answer.status == 201, await answer.text()


async def portal_link(client: Client, tenant_id: str) -> str:
    """The path of a fresh sign-in link (``/portal/signin/<secret>``)."""
    answer = await client.post(f"/v1/tenants/{tenant_id}/portal", json={}, headers=ADMIN)
    assert answer.status == 201, await answer.text()
    url: str = (await answer.json())["url"]
    return url[url.index("/portal/signin/") :]


async def tenant_webhook(client: Client, tenant_id: str | None, name: str) -> dict[str, Any]:
    body = webhook_body(name=name, url=f"http://127.0.0.1:9/{name}")
    if tenant_id is not None:
        body["tenant_id"] = tenant_id
    answer = await client.post("/v1/webhooks", json=body, headers=ADMIN)
    assert answer.status == 201, await answer.text()
    created: dict[str, Any] = await answer.json()
    return created


class Portal:
    """A browser signed in to one tenant's portal: sends its session cookie with every call."""

    def __init__(self, client: Client, cookie: str) -> None:
        self.client = client
        self.cookie = cookie

    async def get(self, path: str, **kw: Any) -> Any:
        return await self.client.get(
            path, headers={"Cookie": f"{SESSION_COOKIE}={self.cookie}"}, allow_redirects=False, **kw
        )

    async def post(self, path: str, data: dict[str, str] | None = None) -> Any:
        return await self.client.post(
            path,
            data=data or {},
            headers={"Cookie": f"{SESSION_COOKIE}={self.cookie}"},
            allow_redirects=False,
        )

    async def csrf(self) -> str:
        page = await self.get("/portal/webhooks")
        assert page.status == 200, await page.text()
        match = CSRF.search(await page.text())
        assert match
        return match.group(1)


async def sign_in(client: Client, tenant_id: str) -> Portal:
    link = await portal_link(client, tenant_id)
    answer = await client.get(link, allow_redirects=False)
    assert answer.status == 303, await answer.text()
    assert answer.headers["Location"] == "/portal/"
    morsel = answer.cookies[SESSION_COOKIE]
    return Portal(client, morsel.value)


async def two_tenants(client: Client) -> dict[str, dict[str, Any]]:
    """Tenants acme and globex, each with a webhook and a delivery, and the operator's own."""
    await make_tenant(client, "acme", "Acme Inc.")
    await make_tenant(client, "globex", "Globex Corp.")
    hooks = {
        "acme": await tenant_webhook(client, "acme", "acme-orders"),
        "globex": await tenant_webhook(client, "globex", "globex-orders"),
        "operator": await tenant_webhook(client, None, "operator-orders"),
    }
    for tenant in ("acme", "globex", None):
        event: dict[str, Any] = {"type": "order.created", "data": {"order": 1}}
        if tenant:
            event["tenant_id"] = tenant
        answer = await client.post("/v1/events", json=event, headers=PUBLISHER)
        assert answer.status == 202, await answer.text()
    found: dict[str, dict[str, Any]] = {}
    for key, hook in hooks.items():

        async def delivery(hook: dict[str, Any] = hook) -> Any:
            answer = await client.get(f"/v1/deliveries?webhook_id={hook['id']}", headers=ADMIN)
            return (await answer.json())["data"]

        [first] = await eventually(delivery, what=f"a delivery to {key}")
        found[key] = {"webhook": hook, "delivery": first}
    return found


async def test_a_link_signs_in_once_with_a_cookie_for_the_portal_only(client: Client) -> None:
    await make_tenant(client, "acme", "Acme Inc.")
    link = await portal_link(client, "acme")
    answer = await client.get(link, allow_redirects=False)
    assert answer.status == 303
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    attributes = [a.strip().lower() for a in cookie.split(";")]
    assert f"path={COOKIE_PATH}" in attributes
    assert "httponly" in attributes
    # Loopback counts as a secure origin: the cookie also works inside a third-party iframe.
    assert "samesite=none" in attributes and "secure" in attributes
    # Partitioned (CHIPS): browsers that block third-party cookies still keep it, per site.
    assert "partitioned" in attributes
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    page = await Portal(client, answer.cookies[SESSION_COOKIE].value).get("/portal/webhooks")
    assert page.status == 200
    assert "<title>Endpoints · Acme Inc.</title>" in await page.text()

    again = await client.get(link, allow_redirects=False)
    assert again.status == 410
    assert "Set-Cookie" not in again.headers
    text = await again.text()
    assert "already been used" in text and "Endpoints" not in text


async def test_over_plain_http_to_a_real_host_the_cookie_is_lax(client: Client) -> None:
    await make_tenant(client, "acme", "Acme Inc.")
    link = await portal_link(client, "acme")
    answer = await client.get(link, headers={"Host": "hooks.example.com"}, allow_redirects=False)
    attributes = [a.strip().lower() for a in answer.headers["Set-Cookie"].split(";")]
    assert "samesite=lax" in attributes and "secure" not in attributes
    assert "partitioned" not in attributes
    behind_tls = await client.get(
        await portal_link(client, "acme"),
        headers={"Host": "hooks.example.com", "X-Forwarded-Proto": "https"},
        allow_redirects=False,
    )
    attributes = [a.strip().lower() for a in behind_tls.headers["Set-Cookie"].split(";")]
    assert "samesite=none" in attributes and "secure" in attributes


async def test_expired_and_unknown_links_show_a_page_not_the_portal(
    client: Client, db: asyncpg.Connection
) -> None:
    await make_tenant(client, "acme", "Acme Inc.")
    past = datetime.now(UTC) - timedelta(seconds=1)
    await tenant_store.create_portal_link(db, "acme", "an-expired-link-secret", past)
    expired = await client.get("/portal/signin/an-expired-link-secret", allow_redirects=False)
    assert expired.status == 410
    assert "has expired" in await expired.text()
    assert "Set-Cookie" not in expired.headers
    unknown = await client.get("/portal/signin/no-such-link", allow_redirects=False)
    assert unknown.status == 404
    assert "not valid" in await unknown.text()
    too_long = await client.get("/portal/signin/" + "x" * 5000, allow_redirects=False)
    assert too_long.status in (404, 414)
    # The expired link was not consumed by trying.
    assert await db.fetchval("SELECT count(*) FROM portal_links WHERE used_at IS NOT NULL") == 0


async def test_without_a_session_every_page_says_how_to_get_in(client: Client) -> None:
    for path in ("/portal/", "/portal/webhooks", "/portal/deliveries", "/portal/event-types"):
        answer = await client.get(path, allow_redirects=False)
        assert answer.status == 401, path
        assert "not signed in" in await answer.text()
    forged = await client.get("/portal/webhooks", headers={"Cookie": f"{SESSION_COOKIE}=1.2.3.4.5"})
    assert forged.status == 401


async def test_the_csp_names_the_configured_frame_ancestors(make_client: Any) -> None:
    client = await make_client(portal_frame_ancestors="https://app.example.com")
    answer = await client.get("/portal/webhooks", allow_redirects=False)
    csp = answer.headers["Content-Security-Policy"]
    assert "frame-ancestors https://app.example.com;" in csp
    assert "X-Frame-Options" not in answer.headers
    default = await make_client()
    answer = await default.get("/portal/signin/nothing", allow_redirects=False)
    assert "frame-ancestors 'self';" in answer.headers["Content-Security-Policy"]
    # The console stays unframeable.
    console = await default.get("/admin/login")
    assert console.headers["X-Frame-Options"] == "DENY"


async def test_pages_show_only_the_tenants_own(client: Client) -> None:
    data = await two_tenants(client)
    portal = await sign_in(client, "acme")
    for path in ("/portal/webhooks", "/portal/deliveries", "/portal/webhooks?q=orders"):
        text = await (await portal.get(path)).text()
        assert f"/portal/webhooks/{data['acme']['webhook']['id']}" in text, path
        for other in ("globex", "operator"):
            assert data[other]["webhook"]["id"] not in text, path
            assert f"{other}-" not in text, path
    mine = data["acme"]["delivery"]["id"]
    page = await portal.get(f"/portal/deliveries/{mine}")
    assert page.status == 200
    assert '"order": 1' in html.unescape(await page.text())


async def test_every_page_refuses_another_tenants_ids_with_404(
    client: Client, db: asyncpg.Connection
) -> None:
    data = await two_tenants(client)
    portal = await sign_in(client, "acme")
    csrf = await portal.csrf()
    before = await db.fetch("SELECT id, enabled, updated_at FROM webhooks ORDER BY id")
    # What a retry or cancel would change (the engine's own attempts go on meanwhile).
    touched = "SELECT id, requeued_at, status = 'cancelled' FROM deliveries ORDER BY id"
    deliveries_before = await db.fetch(touched)
    routes = [
        (r.method, r.resource.canonical)
        for r in client.app.router.routes()
        if r.resource is not None
        and r.resource.canonical.startswith("/portal/")
        and "{id}" in r.resource.canonical
        and r.method in ("GET", "POST")
    ]
    assert len(routes) >= 14, routes
    for owner in ("globex", "operator"):
        ids = {
            "/portal/webhooks/": data[owner]["webhook"]["id"],
            "/portal/deliveries/": data[owner]["delivery"]["id"],
        }
        for method, template in routes:
            prefix = next(p for p in ids if template.startswith(p))
            path = template.replace("{id}", ids[prefix])
            if method == "GET":
                answer = await portal.get(path + ("?secret=show" if path.endswith("id") else ""))
            else:
                answer = await portal.post(
                    path,
                    {
                        "csrf_token": csrf,
                        "event_type": "order.created",
                        "since": "2020-01-01T00:00",
                    },
                )
            text = await answer.text()
            assert answer.status == 404, (method, path, answer.status, text[:300])
            assert data[owner]["webhook"]["name"] not in text, (method, path)
    assert await db.fetch("SELECT id, enabled, updated_at FROM webhooks ORDER BY id") == before
    assert await db.fetch(touched) == deliveries_before


async def test_every_portal_form_needs_its_csrf_token(
    client: Client, db: asyncpg.Connection
) -> None:
    data = await two_tenants(client)
    portal = await sign_in(client, "acme")
    other = await sign_in(client, "globex")
    ids = {
        "/portal/webhooks/": data["acme"]["webhook"]["id"],
        "/portal/deliveries/": data["acme"]["delivery"]["id"],
    }
    posts = [
        r.resource.canonical
        for r in client.app.router.routes()
        if r.resource is not None
        and r.resource.canonical.startswith("/portal/")
        and r.method == "POST"
    ]
    assert "/portal/signout" in posts and "/portal/webhooks/new" in posts
    before = await db.fetch("SELECT * FROM webhooks ORDER BY id")
    wrong = await other.csrf()  # another session's token is no better than none
    for template in posts:
        path = template
        for prefix, value in ids.items():
            if template.startswith(prefix):
                path = template.replace("{id}", value)
        for token in (None, "", wrong):
            form = {"name": "x", "url": "http://127.0.0.1:9/x", "event_types": "*"}
            if token is not None:
                form["csrf_token"] = token
            answer = await portal.post(path, form)
            assert answer.status == 403, (path, token, answer.status)
            assert "could not be accepted" in await answer.text()
    assert await db.fetch("SELECT * FROM webhooks ORDER BY id") == before
    # Still signed in: the refused sign-out did nothing.
    assert (await portal.get("/portal/webhooks")).status == 200


async def test_creating_an_endpoint_makes_it_the_tenants(client: Client) -> None:
    await make_tenant(client, "acme", "Acme Inc.")
    portal = await sign_in(client, "acme")
    csrf = await portal.csrf()
    answer = await portal.post(
        "/portal/webhooks/new",
        {
            "csrf_token": csrf,
            "name": "From the portal",
            "url": "http://127.0.0.1:9/hook",
            "event_types": "order.*",
            "include_payload": "on",
            "enabled": "on",
            # A forged field does not move it to another tenant.
            "tenant_id": "globex",
        },
    )
    assert answer.status == 303, await answer.text()
    listed = await client.get("/v1/webhooks?tenant_id=acme", headers=ADMIN)
    [hook] = (await listed.json())["data"]
    assert hook["name"] == "From the portal" and hook["tenant_id"] == "acme"
    assert answer.headers["Location"] == f"/portal/webhooks/{hook['id']}"


async def test_a_deleted_tenants_session_stops_working(client: Client) -> None:
    await make_tenant(client, "acme", "Acme Inc.")
    portal = await sign_in(client, "acme")
    assert (await portal.get("/portal/webhooks")).status == 200
    answer = await client.delete("/v1/tenants/acme", headers=ADMIN)
    assert answer.status == 204
    refused = await portal.get("/portal/webhooks")
    assert refused.status == 401
    assert "not signed in" in await refused.text()
    # A new tenant under the same id does not inherit the old session.
    await make_tenant(client, "acme", "Acme again")
    assert (await portal.get("/portal/webhooks")).status == 401


async def test_signing_out_ends_the_session(client: Client) -> None:
    await make_tenant(client, "acme", "Acme Inc.")
    portal = await sign_in(client, "acme")
    csrf = await portal.csrf()
    answer = await portal.post("/portal/signout", {"csrf_token": csrf})
    assert answer.status == 303
    assert answer.headers["Location"] == "/portal/signed-out"
    assert (await portal.get("/portal/webhooks")).status == 401


async def test_a_console_cookie_does_not_open_the_portal(client: Client) -> None:
    from tests.test_admin import login

    answer = await login(client)
    console_cookie = answer.cookies["dispatcher_session"].value
    refused = await Portal(client, console_cookie).get("/portal/webhooks")
    assert refused.status == 401


async def test_the_shared_endpoint_form_and_delete_page_stay_inside_the_portal(
    client: Client,
) -> None:
    """The portal renders the console's form and confirmation page in its own layout: every
    link and action on them is the portal's, none the console's."""
    await make_tenant(client, "acme", "Acme Inc.")
    hook = await tenant_webhook(client, "acme", "acme-orders")
    portal = await sign_in(client, "acme")
    new = await (await portal.get("/portal/webhooks/new")).text()
    assert 'action="/portal/webhooks/new"' in new and "Create endpoint" in new
    edit = await (await portal.get(f"/portal/webhooks/{hook['id']}/edit")).text()
    assert f'action="/portal/webhooks/{hook["id"]}/edit"' in edit
    delete = await portal.get(f"/portal/webhooks/{hook['id']}/delete")
    assert delete.status == 200, await delete.text()
    for page in (new, edit, await delete.text()):
        # The stylesheet is the console's; no link or form is.
        assert 'href="/admin/webhooks' not in page and 'action="/admin/' not in page
        assert "Acme Inc." in page  # the portal's layout, titled with the tenant
