"""The console's event catalogue: the schema and examples form (errors shown by path), the
catalogue page, and "Send example" on a webhook's page."""

from __future__ import annotations

import html
from typing import Any

import orjson
from aiohttp.test_utils import TestClient

from dispatcher.app_keys import REGISTRY
from tests.helpers import ADMIN
from tests.receiver import Receiver
from tests.test_admin import create_webhook, signed_in

Client = TestClient[Any, Any]

SCHEMA = {"type": "object", "required": ["order"], "properties": {"order": {"type": "integer"}}}


async def register(client: Client, **fields: Any) -> None:
    body = {"name": "order.created", **fields}
    resp = await client.post("/v1/event-types", json=body, headers=ADMIN)
    assert resp.status == 201, await resp.text()


async def save(client: Client, csrf: str, **fields: str) -> tuple[int, str]:
    form = {"csrf_token": csrf, "description": "", "schema": "", "examples": "", **fields}
    resp = await client.post("/admin/event-types/order.created", data=form)
    return resp.status, html.unescape(await resp.text())


async def stored(client: Client) -> dict[str, Any]:
    resp = await client.get("/v1/event-types/order.created", headers=ADMIN)
    body: dict[str, Any] = await resp.json()
    return body


async def test_the_form_saves_a_schema_and_examples(client: Client) -> None:
    csrf = await signed_in(client)
    await register(client)
    status, _ = await save(
        client,
        csrf,
        description="An order.",
        schema=orjson.dumps(SCHEMA).decode(),
        examples='[{"order": 1}]',
    )
    assert status == 200
    got = await stored(client)
    assert got["schema"] == SCHEMA and got["examples"] == [{"order": 1}]
    assert client.app[REGISTRY].schemas["order.created"].schema == SCHEMA
    page = html.unescape(await (await client.get("/admin/event-types/order.created")).text())
    assert '"required": [' in page and '"order": 1' in page  # shown pretty-printed


async def test_a_schema_error_is_shown_at_the_schema_field_with_its_path(client: Client) -> None:
    csrf = await signed_in(client)
    await register(client, description="kept")
    bad = {"type": "object", "properties": {"total": {"type": "nubmer"}}}
    status, page = await save(client, csrf, description="new", schema=orjson.dumps(bad).decode())
    assert status == 422
    assert "properties.total.type" in page.lower()
    assert '"nubmer"' in page  # what was typed is kept in the form
    assert (await stored(client))["description"] == "kept"  # nothing saved


async def test_an_example_breaking_the_schema_is_shown_with_its_path(client: Client) -> None:
    csrf = await signed_in(client)
    await register(client)
    status, page = await save(
        client,
        csrf,
        schema=orjson.dumps(SCHEMA).decode(),
        examples='[{"order": 1}, {"order": "x"}]',
    )
    assert status == 422
    assert "[1]" in page and "at order" in page.lower()
    assert (await stored(client))["schema"] is None


async def test_text_that_is_not_json_is_an_error_at_its_field(client: Client) -> None:
    csrf = await signed_in(client)
    await register(client)
    status, page = await save(client, csrf, schema="{not json", examples='{"a": 1}')
    assert status == 422
    assert "is not valid JSON" in page
    assert "must be a JSON list of examples" in page


async def test_the_catalogue_page_shows_schemas_and_examples(client: Client) -> None:
    await signed_in(client)
    await register(
        client, description="An order was placed.", schema=SCHEMA, examples=[{"order": 7}]
    )
    resp = await client.post(
        "/v1/event-types", json={"name": "internal.tick", "enabled": False}, headers=ADMIN
    )
    assert resp.status == 201
    page = html.unescape(await (await client.get("/admin/catalogue")).text())
    assert "An order was placed." in page
    assert '"required": [\n    "order"\n  ]' in page
    assert '"order": 7' in page
    assert "internal.tick" not in page
    assert 'data-copy="schema-1"' in page
    document = await (await client.get("/admin/catalogue.json")).json()
    assert list(document["webhooks"]) == ["order.created"]


async def test_send_example_from_the_webhook_page(client: Client, receiver: Receiver) -> None:
    csrf = await signed_in(client)
    await register(client, schema=SCHEMA, examples=[{"order": 7}])
    hook = await create_webhook(client, url=receiver.url())
    page = await (await client.get(f"/admin/webhooks/{hook['id']}")).text()
    assert "Send example" in page and '<option value="order.created">' in page
    resp = await client.post(
        f"/admin/webhooks/{hook['id']}/test",
        data={"csrf_token": csrf, "event_type": "order.created"},
    )
    assert resp.status == 200
    assert "Example order.created sent" in html.unescape(await resp.text())
    [got] = await receiver.wait_for(1)
    assert got.json()["type"] == "order.created" and got.json()["data"] == {"order": 7}

    resp = await client.post(
        f"/admin/webhooks/{hook['id']}/test", data={"csrf_token": csrf, "event_type": "nope"}
    )
    assert "give 'nope' an example first" in html.unescape(await resp.text())
