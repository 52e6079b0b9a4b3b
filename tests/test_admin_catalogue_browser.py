"""The catalogue in a real browser (Chromium): the page, its copy buttons, the schema form."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp.test_utils import TestClient
from playwright.async_api import expect

from tests.test_admin_browser import Operator, api, browser, operator_for, pytestmark

__all__ = ["browser", "operator_for", "pytestmark"]  # fixtures and the Chromium skip

Client = TestClient[Any, Any]
MakeOperator = Callable[[Client, str], Awaitable[Operator]]

SCHEMA = {"type": "object", "required": ["order"], "properties": {"order": {"type": "integer"}}}


async def test_catalogue_page_copies_a_schema(client: Client, operator_for: MakeOperator) -> None:
    await api(
        client,
        "POST",
        "/v1/event-types",
        json={
            "name": "order.created",
            "description": "An order was placed.",
            "schema": SCHEMA,
            "examples": [{"order": 42}],
        },
    )
    op = await operator_for(client, "catalogue")
    await op.page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await op.sign_in()
    await op.goto("/admin/event-types", "event-types")
    await op.page.get_by_role("link", name="View catalogue").click()
    await expect(op.page.get_by_role("heading", name="Event catalogue")).to_be_visible()
    await expect(op.page.get_by_text("An order was placed.")).to_be_visible()
    schema = op.page.get_by_label("Schema of order.created")
    assert json.loads(await schema.inner_text()) == SCHEMA
    example = op.page.get_by_label("Example 1 of order.created")
    assert json.loads(await example.inner_text()) == {"order": 42}
    await op.shot("catalogue")
    await op.assert_accessible()
    copy = op.page.locator('button[data-copy="schema-1"]')
    await copy.click()
    await expect(copy).to_have_text("Copied")
    copied = await op.page.evaluate("() => navigator.clipboard.readText()")
    assert json.loads(copied) == SCHEMA


async def test_the_schema_form_shows_an_error_by_path(
    client: Client, operator_for: MakeOperator
) -> None:
    await api(client, "POST", "/v1/event-types", json={"name": "order.created"})
    op = await operator_for(client, "schema-form")
    await op.sign_in()
    await op.goto("/admin/event-types/order.created", "form")
    bad = {"type": "object", "properties": {"total": {"type": "nubmer"}}}
    await op.page.get_by_label("JSON Schema").fill(orjson.dumps(bad).decode())
    await op.page.get_by_role("button", name="Save event type").click()
    error = op.page.locator("#schema-error")
    await expect(error).to_contain_text("properties.total.type")
    await expect(op.page.get_by_label("JSON Schema")).to_have_attribute("aria-invalid", "true")
    await op.shot("schema-error")
    await op.page.get_by_label("JSON Schema").fill(orjson.dumps(SCHEMA).decode())
    await op.page.get_by_label("Examples").fill('[{"order": 1}]')
    await op.page.get_by_role("button", name="Save event type").click()
    await op.flash("Event type “order.created” saved.")
    got = await api(client, "GET", "/v1/event-types/order.created")
    assert got["schema"] == SCHEMA and got["examples"] == [{"order": 1}]
