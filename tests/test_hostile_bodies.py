"""Bodies a careless or hostile client sends: every one gets a 4xx problem and changes nothing."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from tests.helpers import ADMIN, PUBLISHER, webhook_body

# Valid RFC 3339, but with no UTC form a datetime (years 1 to 9999) can hold.
UNREPRESENTABLE = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]


@pytest.mark.parametrize("stamp", UNREPRESENTABLE)
async def test_occurred_at_beyond_the_utc_range_is_a_422(
    client: Any, db: asyncpg.Connection, stamp: str
) -> None:
    one = {"type": "order.created", "data": {}, "occurred_at": stamp}
    resp = await client.post("/v1/events", json=one, headers=PUBLISHER)
    assert resp.status == 422, await resp.text()
    assert [e["field"] for e in (await resp.json())["errors"]] == ["occurred_at"]

    batch = {"events": [{"type": "order.created", "data": {}}, one]}
    resp = await client.post("/v1/events/batch", json=batch, headers=PUBLISHER)
    assert resp.status == 422, await resp.text()
    assert [e["field"] for e in (await resp.json())["errors"]] == ["events[1].occurred_at"]
    assert await db.fetchval("SELECT count(*) FROM events") == 0

    hook = await (await client.post("/v1/webhooks", json=webhook_body(), headers=ADMIN)).json()
    resp = await client.post(
        f"/v1/webhooks/{hook['id']}/replay", json={"since": stamp}, headers=ADMIN
    )
    assert resp.status == 422, await resp.text()
    assert [e["field"] for e in (await resp.json())["errors"]] == ["since"]


async def test_occurred_at_is_kept_as_the_same_instant_in_utc(client: Any) -> None:
    one = {
        "type": "order.created",
        "id": "e-tz",
        "data": {},
        "occurred_at": "0001-01-01T10:00:00+09:30",
    }
    assert (await client.post("/v1/events", json=one, headers=PUBLISHER)).status == 202
    got = await (await client.get("/v1/events/e-tz", headers=ADMIN)).json()
    assert got["occurred_at"] == "0001-01-01T00:30:00+00:00"
