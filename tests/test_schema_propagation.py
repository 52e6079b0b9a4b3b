"""A schema set, changed or removed through one instance applies on every other within a second
(LISTEN/NOTIFY, like webhooks), and the periodic reload brings one whose notice was lost."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
from aiohttp.test_utils import TestClient

from dispatcher.app_keys import REGISTRY
from tests.helpers import PUBLISHER, MakeClient, call, eventually, propagated, two

Client = TestClient[Any, Any]

V1 = {"type": "object", "required": ["order"]}
V2 = {"type": "object", "required": ["order"], "properties": {"order": {"type": "string"}}}


def schema_on(client: Client, name: str) -> Any:
    found = client.app[REGISTRY].schemas.get(name)
    return None if found is None else found.schema


async def status_of(client: Client, data: Any) -> int:
    resp = await client.post(
        "/v1/events", json={"type": "order.created", "data": data}, headers=PUBLISHER
    )
    await resp.read()
    return resp.status


async def test_schema_changes_on_one_instance_apply_on_another_within_a_second(
    make_client: MakeClient,
) -> None:
    a, b = await two(make_client)
    assert await status_of(b, {}) == 202

    await call(a, "POST", "/v1/event-types", 201, json={"name": "order.created", "schema": V1})
    await propagated(lambda: schema_on(b, "order.created") == V1, "B to learn the schema")
    assert await status_of(b, {}) == 422
    assert await status_of(b, {"order": 1}) == 202

    await call(a, "PATCH", "/v1/event-types/order.created", 200, json={"schema": V2})
    await propagated(lambda: schema_on(b, "order.created") == V2, "B to see the new schema")
    assert await status_of(b, {"order": 1}) == 422
    assert await status_of(b, {"order": "1"}) == 202

    await call(a, "PATCH", "/v1/event-types/order.created", 200, json={"schema": None})
    await propagated(lambda: schema_on(b, "order.created") is None, "B to drop the schema")
    assert await status_of(b, {}) == 202

    await call(a, "PATCH", "/v1/event-types/order.created", 200, json={"schema": V1})
    await propagated(lambda: schema_on(b, "order.created") == V1, "B to learn it again")
    await call(a, "DELETE", "/v1/event-types/order.created", 204)
    await propagated(lambda: schema_on(b, "order.created") is None, "B to see it deleted")
    assert await status_of(b, {}) == 202


async def test_the_periodic_reload_brings_a_schema_whose_notice_was_lost(
    make_client: MakeClient, db: asyncpg.Connection
) -> None:
    a = await make_client(reload_interval_seconds=0.5)
    await call(a, "POST", "/v1/event-types", 201, json={"name": "order.created", "schema": V1})
    # Written behind Dispatcher's back: no NOTIFY, only the periodic reload can bring it.
    await db.execute(
        "UPDATE event_types SET schema = $1::json WHERE name = 'order.created'",
        orjson.dumps(V2).decode(),
    )

    async def reloaded() -> bool:
        return bool(schema_on(a, "order.created") == V2)

    await eventually(reloaded, 3, "the periodic reload to bring V2")
    assert await status_of(a, {"order": 1}) == 422
