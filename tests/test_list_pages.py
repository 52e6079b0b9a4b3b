"""A page of events is bounded by bytes as well as by ``limit``: once its rows' data would pass
``MAX_PAGE_BYTES`` it stops (with at least one row) and ``next_cursor`` continues, without
loss or repetition. (``?limit=500`` of 500 KB events was one 256 MB answer.)"""

from __future__ import annotations

from typing import Any

import pytest

from dispatcher import pagination
from tests.helpers import ADMIN, Client, publish


async def pages(client: Client, query: str) -> list[dict[str, Any]]:
    """Every page of ``GET /v1/events?{query}``, following ``next_cursor``."""
    found = []
    cursor = None
    while True:
        url = f"/v1/events?{query}" + (f"&cursor={cursor}" if cursor else "")
        resp = await client.get(url, headers=ADMIN)
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        found.append(body)
        cursor = body["next_cursor"]
        if cursor is None:
            return found
        assert len(found) < 50, "the cursor never ends"


async def test_a_page_stops_at_its_byte_budget_and_the_cursor_continues(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each event's data is about 1 KB as stored; a budget of 2.5 KB holds two of them.
    monkeypatch.setattr(pagination, "MAX_PAGE_BYTES", 2500)
    big = await publish(client, pad="y" * 5000)  # alone over the budget: a page of its own
    published = [big["id"]] + [(await publish(client, pad="x" * 1000, n=i))["id"] for i in range(7)]

    got = await pages(client, "limit=500")
    sizes = [len(page["data"]) for page in got]
    assert sizes == [2, 2, 2, 1, 1]
    ids = [event["id"] for page in got for event in page["data"]]
    assert ids == published[::-1]  # newest first, every one exactly once
    assert all("fetched" not in event for page in got for event in page["data"])
    assert got[-1]["data"][0]["data"]["pad"] == "y" * 5000

    # The row limit still applies under the byte budget, and the two combine.
    got = await pages(client, "limit=1")
    assert [len(page["data"]) for page in got] == [1] * 8
    assert [e["id"] for page in got for e in page["data"]] == published[::-1]


async def test_without_large_data_a_page_is_full_to_its_limit(client: Client) -> None:
    published = [(await publish(client, n=i))["id"] for i in range(5)]
    got = await pages(client, "limit=3")
    assert [len(page["data"]) for page in got] == [3, 2]
    assert [e["id"] for page in got for e in page["data"]] == published[::-1]


async def test_event_types_pages_are_bounded_by_bytes_too(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Schemas and examples make an event type up to 320 KB: 500 of them a 160 MB page.
    monkeypatch.setattr(pagination, "MAX_PAGE_BYTES", 2500)
    names = [f"order.kind{i}" for i in range(5)]
    for name in names:
        body = {"name": name, "examples": [{"pad": "x" * 1000}]}
        resp = await client.post("/v1/event-types", json=body, headers=ADMIN)
        assert resp.status == 201, await resp.text()
    found: list[list[str]] = []
    cursor = None
    while True:
        url = "/v1/event-types?limit=500" + (f"&cursor={cursor}" if cursor else "")
        resp = await client.get(url, headers=ADMIN)
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert all("fetched" not in row for row in body["data"])
        found.append([row["name"] for row in body["data"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert found == [names[0:2], names[2:4], names[4:5]]
