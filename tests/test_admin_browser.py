"""The admin console in a real browser (Playwright driving Debian's Chromium).

Each test is an operator's session against an app served on a real port: sign in, manage
webhooks and event types, publish through the JSON API and watch the logs, retry and cancel.
A full-page screenshot of every page visited goes to
``$DISPATCHER_ARTIFACTS_DIR/screenshots/`` (default ``/tmp/dispatcher-artifacts``).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.helpers import ADMIN, ADMIN_TOKEN, PUBLISH_TOKEN, PUBLISHER, webhook_body

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = (
    Path(os.environ.get("DISPATCHER_ARTIFACTS_DIR", "/tmp/dispatcher-artifacts")) / "screenshots"
)

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs /usr/bin/chromium")

Client = TestClient[Any, Any]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


class Operator:
    """A browser tab on the console that screenshots every page it shows."""

    def __init__(self, page: Page, client: Client, name: str) -> None:
        self.page = page
        self.client = client
        self.name = name
        self.shots = 0
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def url(self, path: str = "/admin") -> str:
        return str(self.client.make_url(path))

    async def shot(self, label: str) -> Path:
        self.shots += 1
        path = SCREENSHOTS / f"{self.name}-{self.shots:02d}-{label}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path

    async def goto(self, path: str, label: str) -> None:
        await self.page.goto(self.url(path))
        await self.shot(label)

    async def sign_in(self) -> None:
        await self.page.goto(self.url("/admin"))
        await self.page.get_by_label("Admin token").fill(ADMIN_TOKEN)
        await self.page.get_by_role("button", name="Sign in").click()
        await expect(self.page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()

    async def assert_accessible(self) -> None:
        """Every visible form control has a label and every button a name."""
        problems = await self.page.evaluate(
            """() => {
              const out = [];
              for (const el of document.querySelectorAll('input, textarea, select')) {
                if (el.type === 'hidden') continue;
                if (!el.labels || el.labels.length === 0) out.push('unlabelled ' + el.outerHTML);
              }
              for (const b of document.querySelectorAll('button')) {
                if (b.hidden) continue;
                const name = (b.getAttribute('aria-label') || b.textContent || '').trim();
                if (!name) out.push('unnamed ' + b.outerHTML);
              }
              return out;
            }"""
        )
        assert problems == [], problems

    async def nav(self, name: str) -> None:
        """Follow a link in the sidebar."""
        sidebar = self.page.get_by_role("navigation", name="Main")
        await sidebar.get_by_role("link", name=name).click()

    async def flash(self, text: str) -> None:
        await expect(self.page.locator(".alert", has_text=text)).to_be_visible()

    async def reload_until(self, text: str, timeout: float = 10.0) -> None:
        """Reload the page until ``text`` appears (pages are server-rendered)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            if await self.page.get_by_text(text, exact=True).count():
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{text!r} did not appear on {self.page.url}")
            await asyncio.sleep(0.2)
            await self.page.reload()


@pytest.fixture
async def operator_for(
    browser: Browser,
) -> AsyncIterator[Callable[[Client, str], Awaitable[Operator]]]:
    contexts = []

    async def make(client: Client, name: str) -> Operator:
        context = await browser.new_context(viewport={"width": 1360, "height": 860})
        context.set_default_timeout(10_000)
        contexts.append(context)
        return Operator(await context.new_page(), client, name)

    yield make
    for context in contexts:
        await context.close()


async def api(client: Client, method: str, path: str, **kwargs: Any) -> Any:
    answer = await client.request(method, path, headers=ADMIN, **kwargs)
    assert answer.status < 300, await answer.text()
    return await answer.json() if answer.status != 204 else None


async def wait_for_delivery(
    client: Client, webhook_id: str, status: str, timeout: float = 10.0
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        listed = await api(client, "GET", f"/v1/webhooks/{webhook_id}/deliveries")
        found = [d for d in listed["data"] if d["status"] == status]
        if found:
            return dict(found[0])
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no {status} delivery for {webhook_id}: {listed['data']}")
        await asyncio.sleep(0.1)


async def test_operator_manages_a_webhook(
    operator_for: Callable[[Client, str], Awaitable[Operator]], make_client: Any, receiver: Any
) -> None:
    client = await make_client(max_retries=0)
    op = await operator_for(client, "1-webhook")
    page = op.page

    # Not signed in: sent to the login page. Neither a publish token nor a wrong one gets in.
    await page.goto(op.url("/admin"))
    await expect(page).to_have_url(re.compile(r"/admin/login"))
    await op.shot("login")
    for token in (PUBLISH_TOKEN, "not-the-token-0123456789"):
        await page.get_by_label("Admin token").fill(token)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_text("That is not the admin token.")).to_be_visible()
    await op.shot("login-refused")
    await op.sign_in()
    await op.shot("overview-empty")

    await op.nav("Webhooks")
    await expect(page.get_by_text("No webhooks yet")).to_be_visible()
    await op.shot("webhooks-empty")

    # The form shows the API's validation errors next to the fields.
    await page.get_by_role("link", name="Add webhook").first.click()
    await page.get_by_label("Name", exact=True).fill("Orders service")
    await page.get_by_label("Endpoint URL").fill("not a url")
    await page.get_by_label("Headers").fill("X-Team orders")
    await page.get_by_role("button", name="Create webhook").click()
    await expect(page.locator("#url-error")).to_contain_text("Enter the URL without spaces")
    await expect(page.locator("#event_types-error")).to_contain_text(
        "Choose at least one event type."
    )
    await expect(page.locator("#headers-error")).to_contain_text("Name: value")
    await expect(page.get_by_label("Name", exact=True)).to_have_value("Orders service")
    await op.assert_accessible()
    await op.shot("webhook-form-errors")

    await page.get_by_label("Endpoint URL").fill("ftp://example.com/hook")
    await page.get_by_role("button", name="Create webhook").click()
    await expect(page.locator("#url-error")).to_have_text(
        "Enter a URL starting with http:// or https://."
    )

    await page.get_by_label("Endpoint URL").fill(receiver.url())
    await page.get_by_label("Event types").fill("order.*\ninvoice.paid")
    await page.get_by_label("Headers").fill("X-Team: orders")
    await page.get_by_label("Metadata (JSON object)").fill('{"owner": "ana"}')
    await page.get_by_label("Max retries").fill("2")
    await page.get_by_label("Description").fill("Receives order events for fulfilment.")
    await op.shot("webhook-form-filled")
    await page.get_by_role("button", name="Create webhook").click()
    await op.flash("Webhook “Orders service” created.")
    await expect(page.locator(".page-head .pill")).to_have_text("Active")
    await op.assert_accessible()
    await op.shot("webhook-details")
    webhook_id = page.url.rstrip("/").rsplit("/", 1)[1]
    created = await api(client, "GET", f"/v1/webhooks/{webhook_id}")
    assert created["event_types"] == ["order.*", "invoice.paid"]
    assert created["headers"] == {"X-Team": "orders"}
    assert created["max_retries"] == 2

    # An event published through the JSON API shows up in the Logs tab.
    published = await client.post(
        "/v1/events",
        json={"type": "order.created", "data": {"order_id": 1001, "items": [{"sku": "A-1"}]}},
        headers=PUBLISHER,
    )
    assert published.status == 202
    await receiver.wait_for(1)
    await page.get_by_role("link", name="Logs").click()
    await op.reload_until("Success")
    await expect(page.get_by_role("link", name="order.created")).to_be_visible()
    await op.shot("webhook-logs")

    await page.get_by_role("link", name="order.created").click()
    await expect(page.locator("pre.code")).to_contain_text('"order_id": 1001')
    await expect(page.locator(".attempt .code-badge")).to_have_text("200")
    await expect(page.get_by_role("button", name="Retry now")).to_have_count(0)
    await op.shot("delivery-success")
    assert receiver.at()[0].headers["X-Team"] == "orders"

    # Ping, then see it in the log.
    await page.locator(".crumbs").get_by_role("link", name="Orders service").click()
    await page.get_by_role("button", name="Send test ping").click()
    await op.flash("Ping sent.")
    await op.shot("webhook-pinged")
    await receiver.wait_for(2)
    assert receiver.at()[1].json()["type"] == "webhook.ping"
    await page.get_by_role("link", name="Logs").click()
    await expect(page.get_by_role("link", name="webhook.ping")).to_be_visible()

    # The secret: hidden, revealed on request, rotated and shown again.
    await page.get_by_role("link", name="Details").click()
    old = (await api(client, "GET", f"/v1/webhooks/{webhook_id}/secret"))["secret"]
    assert old not in await page.content()
    await page.get_by_role("link", name="Reveal secret").click()
    await expect(page.locator("#secret-value")).to_have_text(old)
    await op.shot("secret-revealed")
    await page.get_by_role("button", name="Rotate secret").click()
    await op.flash("Secret rotated.")
    new = (await api(client, "GET", f"/v1/webhooks/{webhook_id}/secret"))["secret"]
    assert new != old
    await expect(page.locator("#secret-value")).to_have_text(new)
    await op.shot("secret-rotated")
    await page.get_by_role("link", name="Hide").click()
    assert new not in await page.content()

    # Disable (a banner says since when) and enable again.
    await page.get_by_role("button", name="Disable").click()
    await op.flash("Webhook disabled.")
    await expect(page.locator("#disabled-banner")).to_contain_text("Disabled since")
    await expect(page.locator(".page-head .pill")).to_have_text("Disabled")
    await op.shot("webhook-disabled")
    assert (await api(client, "GET", f"/v1/webhooks/{webhook_id}"))["enabled"] is False
    await page.get_by_role("button", name="Enable webhook").click()
    await op.flash("Webhook enabled.")
    await expect(page.locator("#disabled-banner")).to_have_count(0)

    # Edit.
    await page.get_by_role("link", name="Edit").click()
    await expect(page.get_by_label("Headers")).to_have_value("X-Team: orders")
    await op.shot("webhook-edit")
    await page.get_by_label("Name", exact=True).fill("Orders (fulfilment)")
    await page.get_by_label("Max retries").fill("")
    await page.get_by_role("button", name="Save changes").click()
    await op.flash("Changes saved.")
    edited = await api(client, "GET", f"/v1/webhooks/{webhook_id}")
    assert (edited["name"], edited["max_retries"]) == ("Orders (fulfilment)", None)

    await op.nav("Webhooks")
    await expect(page.get_by_role("link", name="Orders (fulfilment)")).to_be_visible()
    await expect(page.locator("tbody .pill")).to_have_text("Active")
    await op.shot("webhooks-list")

    # Delete, confirming on a page of its own (no JavaScript needed).
    await page.get_by_role("link", name="Orders (fulfilment)").click()
    await page.get_by_role("link", name="Delete webhook…").click()
    question = page.get_by_role("heading", name="Delete webhook “Orders (fulfilment)”?")
    await expect(question).to_be_visible()
    await op.shot("webhook-delete-confirm")
    await page.get_by_role("button", name="Delete webhook").click()
    await op.flash("Webhook “Orders (fulfilment)” deleted.")
    await op.shot("webhook-deleted")
    gone = await client.get(f"/v1/webhooks/{webhook_id}", headers=ADMIN)
    assert gone.status == 404

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_text("You have been signed out.")).to_be_visible()
    await op.shot("signed-out")
    await page.goto(op.url("/admin/webhooks"))
    await expect(page).to_have_url(re.compile(r"/admin/login"))


async def test_operator_retries_cancels_and_sees_disabled_webhooks(
    operator_for: Callable[[Client, str], Awaitable[Operator]],
    make_client: Any,
    receiver: Any,
    db: asyncpg.Connection,
) -> None:
    client = await make_client(max_retries=0, retry_base_seconds=300)

    async def flaky(_request: web.Request, n: int) -> web.StreamResponse:
        if n == 0:
            return web.Response(status=500, text='{"error": "database is restarting"}')
        return web.Response(text="ok")

    async def down(_request: web.Request, _n: int) -> web.StreamResponse:
        return web.Response(status=503, text="Service Unavailable")

    async def gone(_request: web.Request, _n: int) -> web.StreamResponse:
        return web.Response(status=410, text="this endpoint was removed")

    receiver.responders.update({"/flaky": flaky, "/down": down, "/gone": gone})
    hooks = {}
    for name, path, extra in (
        ("Flaky billing", "/flaky", {}),
        ("Analytics (down)", "/down", {"max_retries": 5}),
        ("Legacy CRM", "/gone", {}),
    ):
        body = webhook_body(name=name, url=receiver.url(path), event_types=["order.*"], **extra)
        hooks[path] = (await api(client, "POST", "/v1/webhooks", json=body))["id"]
    for n in range(3):
        answer = await client.post(
            "/v1/events",
            json={"type": "order.created", "data": {"order_id": 2000 + n, "total": "19.90"}},
            headers=PUBLISHER,
        )
        assert answer.status == 202
    failed = await wait_for_delivery(client, hooks["/flaky"], "failed")
    retrying = await wait_for_delivery(client, hooks["/down"], "retrying")
    await wait_for_delivery(client, hooks["/gone"], "failed")

    op = await operator_for(client, "2-deliveries")
    page = op.page
    await op.sign_in()
    await op.reload_until("Gone")
    await op.assert_accessible()
    await op.shot("overview-traffic")
    await page.set_viewport_size({"width": 420, "height": 900})
    await op.shot("overview-narrow")
    await page.set_viewport_size({"width": 1360, "height": 860})
    await op.nav("Deliveries")
    await op.shot("deliveries")
    await op.nav("Webhooks")
    await op.shot("webhooks-states")
    await page.get_by_label("Search webhooks by name or URL").fill("flaky")
    await page.get_by_role("button", name="Search").click()
    await expect(page.locator("tbody tr")).to_have_count(1)
    await op.shot("webhooks-search")

    # A failed delivery (500, no retries left): the attempt is logged; Retry sends it again.
    await page.get_by_role("link", name="Flaky billing").click()
    await page.get_by_role("link", name="Logs").click()
    await page.get_by_role("link", name="Failed", exact=True).click()
    await expect(page.locator("tbody tr")).to_have_count(1)  # the first answer was a 500
    await op.shot("logs-failed")
    await page.goto(op.url(f"/admin/deliveries/{failed['id']}"))
    await expect(page.locator(".page-head .pill")).to_have_text("Failed")
    await expect(page.locator(".attempt .code-badge")).to_have_text("500")
    await expect(page.locator(".attempt .received pre")).to_contain_text("database is restarting")
    await op.shot("delivery-failed")
    await page.get_by_role("button", name="Retry now").click()
    await op.flash("Retry scheduled")
    await op.reload_until("Success")
    await expect(page.locator(".attempt")).to_have_count(2)
    await op.shot("delivery-retried")

    # A delivery waiting to retry can be cancelled; a second cancel is refused (409 message).
    await page.goto(op.url(f"/admin/deliveries/{retrying['id']}"))
    await expect(page.locator(".page-head .pill")).to_have_text("Retrying")
    await op.shot("delivery-retrying")
    cancel_form = page.locator(f"form[action='/admin/deliveries/{retrying['id']}/cancel']")
    token = await cancel_form.locator("input[name=csrf_token]").input_value()
    await page.get_by_role("button", name="Cancel delivery").click()
    await op.flash("Delivery cancelled.")
    await expect(page.locator(".page-head .pill")).to_have_text("Cancelled")
    await op.shot("delivery-cancelled")
    again = await page.request.post(
        op.url(f"/admin/deliveries/{retrying['id']}/cancel"), form={"csrf_token": token}
    )
    assert again.ok
    assert "This delivery has finished (cancelled)." in await again.text()

    # 410 Gone disabled a webhook; its page says why and since when.
    await page.goto(op.url(f"/admin/webhooks/{hooks['/gone']}"))
    await expect(page.locator("#disabled-banner")).to_contain_text("Endpoint gone since")
    await op.shot("webhook-gone")

    # An auto-disabled webhook shows a banner too, and can be enabled from it.
    await db.execute(
        "UPDATE webhooks SET enabled = false, disabled_reason = 'auto', disabled_at = now() "
        "WHERE id = $1",
        hooks["/down"],
    )
    await page.goto(op.url(f"/admin/webhooks/{hooks['/down']}"))
    banner = page.locator("#disabled-banner")
    await expect(banner).to_contain_text("Disabled automatically since")
    await expect(page.locator(".page-head .pill")).to_have_text("Auto-disabled")
    await op.shot("webhook-auto-disabled")
    await banner.get_by_role("button", name="Enable webhook").click()
    await op.flash("Webhook enabled.")
    await expect(banner).to_have_count(0)
    assert (await api(client, "GET", f"/v1/webhooks/{hooks['/down']}"))["enabled"] is True
    await page.get_by_role("link", name="Logs").click()
    await op.shot("webhook-logs-mixed")


async def test_operator_manages_event_types(
    operator_for: Callable[[Client, str], Awaitable[Operator]], make_client: Any
) -> None:
    client = await make_client()
    op = await operator_for(client, "3-event-types")
    page = op.page
    await op.sign_in()
    await op.nav("Event types")
    await op.shot("event-types-empty")

    await page.get_by_label("Name", exact=True).fill("order created")
    await page.get_by_role("button", name="Add event type").click()
    await expect(page.locator("#name-error")).to_contain_text("dot-separated words")
    await op.shot("event-type-error")

    for name, description in (
        ("order.created", "A customer placed an order."),
        ("order.refunded", "An order was refunded in full or in part."),
        ("invoice.paid", ""),
    ):
        await page.get_by_label("Name", exact=True).fill(name)
        await page.get_by_label("Description").fill(description)
        await page.get_by_role("button", name="Add event type").click()
        await op.flash(f"Event type “{name}” added.")
    await page.get_by_role("button", name="Disable order.refunded").click()
    await op.flash("Event type “order.refunded” disabled.")
    await op.assert_accessible()
    await op.shot("event-types")
    assert (await api(client, "GET", "/v1/event-types/order.refunded"))["enabled"] is False

    await page.get_by_role("link", name="Edit invoice.paid").click()
    await page.get_by_label("Description").fill("An invoice was paid.")
    await op.shot("event-type-edit")
    await page.get_by_role("button", name="Save event type").click()
    await op.flash("Event type “invoice.paid” saved.")
    assert (await api(client, "GET", "/v1/event-types/invoice.paid"))["description"] == (
        "An invoice was paid."
    )

    await page.get_by_role("button", name="Enable order.refunded").click()
    await op.flash("Event type “order.refunded” enabled.")
    await page.get_by_role("link", name="Delete order.refunded").click()
    await op.shot("event-type-delete-confirm")
    await page.get_by_role("button", name="Delete event type").click()
    await op.flash("Event type “order.refunded” deleted.")
    await expect(page.get_by_role("link", name="order.refunded")).to_have_count(0)
    missing = await client.get("/v1/event-types/order.refunded", headers=ADMIN)
    assert missing.status == 404

    # A 404 inside the console is a page, not JSON.
    await op.goto("/admin/webhooks/wh_does_not_exist", "not-found")
    await expect(page.get_by_role("heading", name="Not Found")).to_be_visible()
