"""The console's day-to-day views in Chromium: filtering deliveries, bulk retry, the events
pages, an attempt's request as sent, a webhook's charts and "send what was missed", deliveries
and events of one tenant; in light and dark mode and at a phone's width. Screenshots go to
``$DISPATCHER_ARTIFACTS_DIR``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import pytest
from playwright.async_api import Browser, expect

from tests.helpers import PUBLISHER
from tests.test_admin_browser import CHROMIUM, Client, Operator, api, browser, wait_for_delivery
from tests.test_delivery import answer, eventually

__all__ = ["browser"]  # the fixture, imported for this module's tests

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs /usr/bin/chromium")

Scheme = Literal["light", "dark"]
Make = Callable[..., Awaitable[Operator]]


@pytest.fixture
async def operator(browser: Browser) -> AsyncIterator[Make]:
    contexts = []

    async def make(
        client: Client, name: str, *, scheme: Scheme = "light", width: int = 1360
    ) -> Operator:
        context = await browser.new_context(
            viewport={"width": width, "height": 860}, color_scheme=scheme
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        return Operator(await context.new_page(), client, name)

    yield make
    for context in contexts:
        await context.close()


async def publish(client: Client, type_: str, **data: Any) -> dict[str, Any]:
    answer_ = await client.post("/v1/events", json={"type": type_, "data": data}, headers=PUBLISHER)
    assert answer_.status == 202, await answer_.text()
    body: dict[str, Any] = await answer_.json()
    return body


async def no_horizontal_scroll(op: Operator) -> None:
    """The page fits the viewport's width (tables stack instead of overflowing)."""
    overflow = await op.page.evaluate(
        "() => document.documentElement.scrollWidth - window.innerWidth"
    )
    assert overflow <= 0, f"{op.page.url} is {overflow}px wider than the screen"


async def test_operator_filters_retries_and_replays_from_the_console(
    operator: Make, make_client: Any, receiver: Any
) -> None:
    client = await make_client(max_retries=0)
    receiver.responders["/flaky"] = answer(500)
    flaky = await api(
        client,
        "POST",
        "/v1/webhooks",
        json={"name": "Flaky shop", "url": receiver.url("/flaky"), "event_types": ["order.*"]},
    )
    await api(
        client,
        "POST",
        "/v1/webhooks",
        json={
            "name": "Billing",
            "url": receiver.url("/billing"),
            "event_types": ["order.*", "invoice.*"],
            "headers": {"X-Team": "billing"},
        },
    )
    for n in range(3):
        await publish(client, "order.created", order=n, total=19.5 + n)
    invoice = await publish(client, "invoice.paid", invoice=7)
    await wait_for_delivery(client, flaky["id"], "failed")
    await receiver.wait_for(4, "/billing")

    op = await operator(client, "7-console")
    page = op.page
    await op.sign_in()

    # Deliveries: filter to the flaky webhook's failures.
    await op.nav("Deliveries")
    await page.get_by_label("Webhook").select_option(label="Flaky shop")
    await page.get_by_role("button", name="Apply").click()
    await (
        page.get_by_role("navigation", name="Filter by status")
        .get_by_role("link", name="Failed")
        .click()
    )
    await expect(page.locator("table.table tbody tr")).to_have_count(3)
    await op.assert_accessible()
    await op.shot("deliveries-filtered")

    # Bulk retry: the count first, then the confirmation.
    receiver.responders["/flaky"] = answer(200)
    await page.get_by_role("link", name="Retry all matching…").click()
    await expect(page.locator("#bulk-count")).to_have_text("3")
    await op.shot("bulk-retry-preview")
    await page.get_by_role("button", name="Retry 3 deliveries").click()
    await op.flash("3 deliveries scheduled for an immediate attempt.")
    await receiver.wait_for(6, "/flaky")
    await op.shot("bulk-retry-done")

    # Events: the list, filtered by type, and one event with where it went.
    await op.nav("Events")
    await op.shot("events")
    await page.get_by_label("Event type").fill("invoice.paid")
    await page.get_by_role("button", name="Apply").click()
    await expect(page.locator("table.table tbody tr")).to_have_count(1)
    await page.get_by_role("link", name="invoice.paid").first.click()
    await expect(page.get_by_role("heading", name="invoice.paid")).to_be_visible()
    await expect(page.get_by_text(invoice["id"]).first).to_be_visible()
    await op.assert_accessible()
    await op.shot("event")

    # A delivery: its attempt's request as sent, next to the response.
    await page.get_by_role("link", name="Billing").click()
    await expect(page.get_by_text("Request as sent")).to_be_visible()
    await expect(page.locator("table.headers")).to_contain_text("webhook-signature")
    await op.shot("delivery-request-as-sent")

    # The webhook page: performance over the last hour and day.
    await page.goto(op.url(f"/admin/webhooks/{flaky['id']}"))
    await expect(page.locator("#perf-attempts")).to_have_text("6")
    await expect(page.locator("#perf-rate")).to_have_text("50.0%")
    await op.shot("webhook-performance-hour")
    await page.get_by_role("link", name="Last day").click()
    await expect(page.locator("#perf-attempts")).to_have_text("6")
    await op.shot("webhook-performance-day")

    # Send what was missed: disable, publish, enable, count, confirm.
    await page.get_by_role("button", name="Disable").click()
    await op.flash("Webhook disabled.")
    for n in range(2):
        await publish(client, "order.shipped", order=n)
    await page.get_by_role("button", name="Enable webhook").click()
    await op.flash("Webhook enabled.")
    await page.get_by_label("What was missed").check()
    await page.get_by_role("button", name="Count and review…").click()
    await expect(page.locator("#replay-count")).to_have_text("2")
    await op.assert_accessible()
    await op.shot("replay-missing-preview")
    await page.get_by_role("button", name="Send 2").click()
    await op.flash("2 missed deliveries created and queued.")
    await receiver.wait_for(8, "/flaky")
    await op.shot("replay-missing-done")


@pytest.mark.parametrize(("scheme", "width"), [("dark", 1360), ("light", 390), ("dark", 390)])
async def test_console_views_in_dark_mode_and_on_a_phone(
    operator: Make, make_client: Any, receiver: Any, scheme: Scheme, width: int
) -> None:
    client = await make_client(max_retries=0)
    receiver.responders["/down"] = answer(503)
    down = await api(
        client,
        "POST",
        "/v1/webhooks",
        json={"name": "Warehouse", "url": receiver.url("/down"), "event_types": ["*"]},
    )
    await api(
        client,
        "POST",
        "/v1/webhooks",
        json={"name": "Analytics", "url": receiver.url("/ok"), "event_types": ["*"]},
    )
    for n in range(4):
        await publish(client, "order.created", order=n)
    failed = await wait_for_delivery(client, down["id"], "failed")
    await receiver.wait_for(4, "/ok")

    label = f"{scheme}-{width}"
    op = await operator(client, f"8-{label}", scheme=scheme, width=width)
    page = op.page
    await op.sign_in()
    dark = await page.evaluate("() => matchMedia('(prefers-color-scheme: dark)').matches")
    assert dark is (scheme == "dark")
    background = await page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert (background == "rgb(11, 15, 23)") is (scheme == "dark"), background
    for path, name in (
        ("/admin/deliveries", "deliveries"),
        ("/admin/events", "events"),
        (f"/admin/deliveries/{failed['id']}", "delivery"),
        (f"/admin/webhooks/{down['id']}", "webhook"),
        (f"/admin/deliveries/bulk/retry?webhook={down['id']}", "bulk"),
    ):
        await op.goto(path, name)
        if width < 600:
            await no_horizontal_scroll(op)
    if width < 600:
        # Stacked rows: each cell carries its column's name.
        await page.goto(op.url("/admin/deliveries"))
        cell = page.locator("table.stack tbody tr").first.locator("td").first
        content = await cell.evaluate("el => getComputedStyle(el, '::before').content")
        assert content == '"Status"'


async def test_operator_filters_deliveries_and_events_by_tenant(
    operator: Make, make_client: Any, receiver: Any
) -> None:
    client = await make_client(max_retries=0)
    receiver.responders["/acme"] = answer(500)
    for tenant, name in (("acme", "Acme Inc."), ("globex", "Globex"), ("", "")):
        if tenant:
            await api(client, "POST", "/v1/tenants", json={"id": tenant, "name": name})
        await api(
            client,
            "POST",
            "/v1/webhooks",
            json={
                "name": f"{name or 'Our own'} orders",
                "url": receiver.url(f"/{tenant or 'mine'}"),
                "event_types": ["order.*"],
                "tenant_id": tenant or None,
            },
        )
        for n in range(2 if tenant == "acme" else 1):
            body: dict[str, Any] = {"type": "order.created", "data": {"order": n}}
            if tenant:
                body["tenant_id"] = tenant
            await api(client, "POST", "/v1/events", json=body)
    for tenant, count in (("globex", 1), ("mine", 1)):
        await receiver.wait_for(count, f"/{tenant}")

    async def acme_failed() -> bool:
        listed = await api(client, "GET", "/v1/deliveries?tenant_id=acme&status=failed")
        return len(listed["data"]) == 2

    await eventually(acme_failed, what="acme's 2 deliveries to fail")

    op = await operator(client, "9-tenants")
    page = op.page
    await op.sign_in()
    await op.nav("Deliveries")
    rows = page.locator("table.table tbody tr")
    await expect(rows).to_have_count(4)
    await page.get_by_label("Tenant").fill("acme")
    await page.get_by_role("button", name="Apply").click()
    await expect(rows).to_have_count(2)
    await expect(rows.locator("td[data-label='Tenant']")).to_have_text(["acme", "acme"])
    await op.assert_accessible()
    await op.shot("deliveries-of-acme")

    # The bulk preview counts only acme's.
    await page.get_by_role("link", name="Retry all matching…").click()
    await expect(page.locator("#bulk-count")).to_have_text("2")
    await op.shot("bulk-retry-acme")
    await page.get_by_role("link", name="Back").click()

    # The operator's own only, then a tenant link opens the tenant.
    await page.get_by_label("Tenant").fill("(operator)")
    await page.get_by_role("button", name="Apply").click()
    await expect(rows).to_have_count(1)
    await expect(rows.locator("td[data-label='Tenant']")).to_have_text("operator")
    await op.nav("Events")
    await page.get_by_label("Tenant").fill("globex")
    await page.get_by_role("button", name="Apply").click()
    await expect(rows).to_have_count(1)
    await op.shot("events-of-globex")
    await rows.get_by_role("link", name="globex").click()
    await expect(page.get_by_role("heading", name="Globex", exact=True)).to_be_visible()
