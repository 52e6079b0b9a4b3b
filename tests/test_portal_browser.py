"""The tenant portal in Chromium: a link signs in once and shows only that tenant's endpoints
and deliveries; the portal works inside an iframe of an allowed origin (a page served from
another loopback origin) and is refused by the CSP in any other's. Screenshots of the walk
go to ``$DISPATCHER_ARTIFACTS_DIR/screenshots`` (``portal-*``)."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Browser, Frame, expect

from tests.helpers import PUBLISHER
from tests.test_admin_browser import CHROMIUM, Client, Operator, api, browser, wait_for_delivery

__all__ = ["browser"]  # the fixture, imported for this module's tests

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs /usr/bin/chromium")

Make = Callable[..., Awaitable[Operator]]


@pytest.fixture
async def visitor(browser: Browser) -> AsyncIterator[Make]:
    """A fresh browser (its own cookie jar) per call."""
    contexts = []

    async def make(client: Client, name: str) -> Operator:
        context = await browser.new_context(viewport={"width": 1360, "height": 860})
        context.set_default_timeout(10_000)
        contexts.append(context)
        return Operator(await context.new_page(), client, name)

    yield make
    for context in contexts:
        await context.close()


class Embedder:
    """A customer's own site on another origin (``http://localhost:<port>``), whose page
    embeds whatever portal link it is given in an iframe."""

    def __init__(self) -> None:
        self.runner: web.AppRunner | None = None
        self.origin = ""

    async def start(self) -> None:
        async def page(request: web.Request) -> web.Response:
            src = html.escape(request.query.get("src", ""))
            body = (
                "<!doctype html><title>Customer dashboard</title>"
                "<body style='font-family:sans-serif;margin:16px;background:#f4f4f5'>"
                "<h1 style='font-size:18px'>Customer dashboard: webhooks</h1>"
                f"<iframe src='{src}' title='Webhooks portal' "
                "style='width:1200px;height:700px;border:1px solid #ccc;background:#fff'>"
                "</iframe></body>"
            )
            return web.Response(text=body, content_type="text/html")

        app = web.Application()
        app.router.add_get("/", page)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "localhost", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.origin = f"http://localhost:{port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def embedders() -> AsyncIterator[tuple[Embedder, Embedder]]:
    allowed, other = Embedder(), Embedder()
    await allowed.start()
    await other.start()
    try:
        yield allowed, other
    finally:
        await allowed.stop()
        await other.stop()


async def link(client: Client, tenant_id: str) -> str:
    created = await api(client, "POST", f"/v1/tenants/{tenant_id}/portal", json={})
    url: str = created["url"]
    # The link names the configured public URL; the test server listens elsewhere.
    return str(client.make_url(url[url.index("/portal/signin/") :]))


async def publish(client: Client, tenant_id: str | None, **data: Any) -> None:
    event: dict[str, Any] = {"type": "order.created", "data": data}
    if tenant_id:
        event["tenant_id"] = tenant_id
    answer = await client.post("/v1/events", json=event, headers=PUBLISHER)
    assert answer.status == 202, await answer.text()


def portal_frame(op: Operator) -> Frame:
    [frame] = [f for f in op.page.frames if f.parent_frame is op.page.main_frame]
    return frame


async def test_a_tenant_uses_its_portal_alone_and_embedded(
    visitor: Make, make_client: Any, receiver: Any, embedders: tuple[Embedder, Embedder]
) -> None:
    allowed, other = embedders
    client = await make_client(portal_frame_ancestors=f"'self' {allowed.origin}")
    for key, title in (("acme", "Acme Inc."), ("globex", "Globex Corp.")):
        await api(client, "POST", "/v1/tenants", json={"id": key, "name": title})
    hooks: dict[str | None, dict[str, Any]] = {}
    owners: list[tuple[str | None, str]] = [
        ("acme", "Acme orders"),
        ("globex", "Globex orders"),
        (None, "Ops"),
    ]
    for tenant_id, name in owners:
        body: dict[str, Any] = {
            "name": name,
            "url": receiver.url(f"/{tenant_id or 'ops'}"),
            "event_types": ["order.*"],
        }
        if tenant_id:
            body["tenant_id"] = tenant_id
        hooks[tenant_id] = await api(client, "POST", "/v1/webhooks", json=body)
    await api(
        client,
        "POST",
        "/v1/event-types",
        json={
            "name": "order.created",
            "description": "An order was placed.",
            "schema": {"type": "object", "properties": {"order": {"type": "integer"}}},
            "examples": [{"order": 1}],
        },
    )
    for owner, _name in owners:
        await publish(client, owner, order=42)
    for hook in hooks.values():
        await wait_for_delivery(client, hook["id"], "success")

    # Signed in by the link, at the top level.
    op = await visitor(client, "portal")
    page = op.page
    first_link = await link(client, "acme")
    await page.goto(first_link)
    await expect(page).to_have_title("Endpoints · Acme Inc.")
    await expect(page.get_by_role("link", name="Acme orders")).to_be_visible()
    await expect(page.get_by_text("Globex orders")).to_have_count(0)
    await expect(page.get_by_text("Ops", exact=True)).to_have_count(0)
    await op.assert_accessible()
    await op.shot("endpoints")

    await page.get_by_role("link", name="Acme orders").click()
    await expect(page.get_by_role("heading", name="Acme orders")).to_be_visible()
    await page.get_by_role("link", name="Reveal secret").click()
    await expect(page.locator("#secret-value")).to_have_text(hooks["acme"]["secret"])
    await op.shot("endpoint")
    await page.get_by_role("button", name="Send test event").click()
    await op.flash("Test order.created sent")

    await op.nav("Deliveries")
    rows = page.locator("table.table tbody tr")
    await expect(rows.first).to_be_visible()
    await expect(page.get_by_text("Globex orders")).to_have_count(0)
    await expect(page.get_by_text("Ops", exact=True)).to_have_count(0)
    await op.shot("deliveries")
    await rows.last.get_by_role("link", name="order.created").click()
    await expect(page.get_by_label("Event payload as JSON")).to_contain_text('"order": 42')
    await op.shot("delivery")

    await op.nav("Event types")
    await expect(page.get_by_role("heading", name="order.created")).to_be_visible()
    await op.shot("event-types")

    # The same link again, in another browser: refused, with a page that says why.
    again = await visitor(client, "portal-used")
    await again.page.goto(first_link)
    await expect(again.page.get_by_role("heading", name="already been used")).to_be_visible()
    await expect(again.page.get_by_text("Acme orders")).to_have_count(0)
    await again.shot("link-used")

    # Embedded by the allowed origin: signs in and works inside the iframe (cookie included).
    embedded = await visitor(client, "portal-embedded")
    await embedded.page.goto(f"{allowed.origin}/?src={await link(client, 'globex')}")
    frame = embedded.page.frame_locator("iframe")
    await expect(frame.get_by_role("link", name="Globex orders")).to_be_visible()
    await expect(frame.get_by_text("Acme orders")).to_have_count(0)
    await (
        frame.get_by_role("navigation", name="Main").get_by_role("link", name="Deliveries").click()
    )
    await expect(frame.get_by_role("heading", name="Deliveries")).to_be_visible()
    await expect(frame.locator("table.table tbody tr").first).to_be_visible()
    await embedded.shot("embedded")

    # Embedded by another origin: the CSP refuses to show it.
    refused = await visitor(client, "portal-refused")
    messages: list[str] = []
    refused.page.on("console", lambda m: messages.append(m.text))
    await refused.page.goto(f"{other.origin}/?src={await link(client, 'globex')}")
    await expect(refused.page.get_by_role("heading", name="Customer dashboard")).to_be_visible()
    blocked = portal_frame(refused)
    await expect(blocked.get_by_text("Globex orders")).to_have_count(0)
    assert not blocked.url.startswith(str(client.make_url("/portal"))), blocked.url
    await refused.shot("refused")
