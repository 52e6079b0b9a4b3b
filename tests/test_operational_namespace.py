"""``dispatcher.*`` belongs to Dispatcher: producers can neither publish nor register such
types (422 naming the field, nothing stored), while webhooks may still subscribe to them and
Dispatcher's own operational events still flow."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from dispatcher import transfer
from dispatcher.matching import reserved_problem
from tests.helpers import ADMIN, PUBLISHER, webhook_body

Client = TestClient[Any, Any]

FORGED = ["dispatcher.webhook.disabled", "dispatcher.delivery.failed", "Dispatcher.Webhook.X"]


async def assert_field_error(resp: Any, field: str) -> None:
    assert resp.status == 422, await resp.text()
    body = await resp.json(content_type=None)
    assert [e["field"] for e in body["errors"]] == [field], body
    assert "reserved" in body["errors"][0]["message"]


async def counts(db: asyncpg.Connection) -> tuple[int, int]:
    events = await db.fetchval("SELECT count(*) FROM events")
    deliveries = await db.fetchval("SELECT count(*) FROM deliveries")
    return int(events), int(deliveries)


@pytest.fixture
async def operators_hook(client: Client) -> dict[str, Any]:
    """Webhooks may subscribe to ``dispatcher.*``: that is how operators are told."""
    resp = await client.post(
        "/v1/webhooks",
        json=webhook_body(event_types=["dispatcher.webhook.disabled", "dispatcher.*"]),
        headers=ADMIN,
    )
    assert resp.status == 201, await resp.text()
    hook: dict[str, Any] = await resp.json()
    return hook


@pytest.mark.parametrize("event_type", FORGED)
@pytest.mark.parametrize("token", [PUBLISHER, ADMIN], ids=["publish", "admin"])
async def test_producers_cannot_publish_dispatcher_events(
    client: Client,
    db: asyncpg.Connection,
    operators_hook: dict[str, Any],
    token: dict[str, str],
    event_type: str,
) -> None:
    forged = {"type": event_type, "data": {"webhook_id": operators_hook["id"]}}
    await assert_field_error(await client.post("/v1/events", json=forged, headers=token), "type")
    resp = await client.post(
        "/v1/events/batch",
        json={"events": [{"type": "order.created", "data": {}}, forged]},
        headers=token,
    )
    await assert_field_error(resp, "events[1].type")
    assert await counts(db) == (0, 0)


async def test_names_that_only_look_alike_are_the_producers(
    client: Client, db: asyncpg.Connection
) -> None:
    for name in ("dispatcher", "dispatchers.webhook", "order.dispatcher.sent"):
        resp = await client.post("/v1/events", json={"type": name, "data": {}}, headers=PUBLISHER)
        assert resp.status == 202, await resp.text()
    assert await counts(db) == (3, 0)


async def test_the_catalogue_refuses_dispatcher_types(
    client: Client, db: asyncpg.Connection
) -> None:
    resp = await client.post(
        "/v1/event-types", json={"name": "dispatcher.webhook.disabled"}, headers=ADMIN
    )
    await assert_field_error(resp, "name")
    assert await db.fetchval("SELECT count(*) FROM event_types") == 0
    resp = await client.post("/v1/event-types", json={"name": "order.created"}, headers=ADMIN)
    assert resp.status == 201, await resp.text()


def test_import_refuses_dispatcher_types_naming_the_record() -> None:
    document = (
        '{"event_types": [{"name": "order.created"}, {"name": "dispatcher.delivery.failed"}],'
        ' "webhooks": []}'
    )
    with pytest.raises(transfer.TransferError) as info:
        transfer.parse(document)
    [problem] = info.value.problems
    assert problem.startswith("event_types[1].name: "), problem
    assert "reserved" in problem


def test_the_reserved_namespace_is_dispatcher_dot_in_any_case() -> None:
    assert reserved_problem("dispatcher.webhook.disabled")
    assert reserved_problem("DISPATCHER.anything")
    assert reserved_problem("dispatcher") is None
    assert reserved_problem("dispatcherx.a") is None
    assert reserved_problem("order.created") is None
