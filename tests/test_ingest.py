"""Event ingestion (``POST /v1/events``, ``POST /v1/events/batch``) and the event log
(``GET /v1/events``, ``GET /v1/events/{id}``), against a real receiver and database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestClient

from dispatcher.app_keys import ENGINE
from tests.helpers import ADMIN, PUBLISHER, assert_problem, webhook_body
from tests.receiver import Receiver

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
T = TypeVar("T")

PROBLEM_JSON = "application/problem+json"


# --------------------------------------------------------------------------------------------
# helpers


async def create_webhook(client: Client, **overrides: Any) -> dict[str, Any]:
    """Register a webhook through the API."""
    resp = await client.post("/v1/webhooks", json=webhook_body(**overrides), headers=ADMIN)
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def publish(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    """Publish one event with the publish token; assert 202."""
    resp = await client.post("/v1/events", json=body, headers=PUBLISHER)
    assert resp.status == 202, await resp.text()
    answer: dict[str, Any] = await resp.json()
    return answer


async def publish_batch(client: Client, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Publish a batch with the publish token; assert 202 and return the answers."""
    resp = await client.post("/v1/events/batch", json={"events": events}, headers=PUBLISHER)
    assert resp.status == 202, await resp.text()
    data: list[dict[str, Any]] = (await resp.json())["data"]
    return data


async def problem(resp: Any, status: int) -> dict[str, Any]:
    """Assert the answer is problem JSON with ``status`` and return its body."""
    text = await resp.text()
    assert resp.status == status, text
    assert resp.content_type == PROBLEM_JSON, text
    body: dict[str, Any] = await resp.json(content_type=None)
    assert_problem(body, status)
    return body


async def validation_error(resp: Any, field: str) -> dict[str, Any]:
    """Assert a 422 problem whose ``errors`` name ``field``."""
    body = await problem(resp, 422)
    errors = body.get("errors")
    assert isinstance(errors, list) and errors, body
    assert all(isinstance(e["message"], str) and e["message"] for e in errors), body
    assert field in [e["field"] for e in errors], body
    return body


async def eventually(
    check: Callable[[], Awaitable[T | None]], timeout: float = 10.0, what: str = "condition"
) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


async def idle(client: Client) -> None:
    """Wait until the delivery engine has nothing queued or in flight."""
    assert await client.app[ENGINE].wait_idle(5), "engine never became idle"


async def counts(db: asyncpg.Connection) -> tuple[int, int]:
    """Rows in ``events`` and ``deliveries``."""
    events = await db.fetchval("SELECT count(*) FROM events")
    deliveries = await db.fetchval("SELECT count(*) FROM deliveries")
    return int(events), int(deliveries)


def event(**overrides: Any) -> dict[str, Any]:
    """A valid event body."""
    body: dict[str, Any] = {"type": "order.created", "data": {"order": 42}}
    body.update(overrides)
    return body


# --------------------------------------------------------------------------------------------
# single events


async def test_publish_answers_202_with_id_type_deliveries_and_duplicate(
    receiver: Receiver, client: Client, db: asyncpg.Connection
) -> None:
    await create_webhook(client, url=receiver.url())
    answer = await publish(client, event())
    assert set(answer) == {"id", "type", "deliveries", "duplicate"}
    assert answer["type"] == "order.created"
    assert answer["deliveries"] == 1
    assert answer["duplicate"] is False
    assert answer["id"].startswith("evt_")
    # A 202 means it is committed: the rows exist now, before any delivery happened.
    row = await db.fetchrow("SELECT type, data FROM events WHERE id = $1", answer["id"])
    assert row is not None and row["type"] == "order.created"
    assert orjson.loads(row["data"]) == {"order": 42}
    assert (
        await db.fetchval("SELECT count(*) FROM deliveries WHERE event_id = $1", answer["id"]) == 1
    )
    [got] = await receiver.wait_for(1)
    assert got.json()["id"] == answer["id"]


async def test_event_without_matching_webhooks_is_stored_with_zero_deliveries(
    client: Client, db: asyncpg.Connection
) -> None:
    answer = await publish(client, event(id="lonely-1"))
    assert answer == {
        "id": "lonely-1",
        "type": "order.created",
        "deliveries": 0,
        "duplicate": False,
    }
    assert await counts(db) == (1, 0)


async def test_producer_id_is_an_idempotency_key(
    receiver: Receiver, client: Client, db: asyncpg.Connection
) -> None:
    await create_webhook(client, url=receiver.url("/a"))
    await create_webhook(client, url=receiver.url("/b"), event_types=["*"])
    first = await publish(client, event(id="order-42-created"))
    assert first == {
        "id": "order-42-created",
        "type": "order.created",
        "deliveries": 2,
        "duplicate": False,
    }
    await receiver.wait_for(1, "/a")
    await receiver.wait_for(1, "/b")
    before = await counts(db)
    assert before == (1, 2)

    # Same id again, even with different data: nothing new is created or sent.
    second = await publish(client, event(id="order-42-created", data={"order": 43}))
    assert second == {
        "id": "order-42-created",
        "type": "order.created",
        "deliveries": 2,
        "duplicate": True,
    }
    assert await counts(db) == before
    stored = await db.fetchval("SELECT data FROM events WHERE id = 'order-42-created'")
    assert orjson.loads(stored) == {"order": 42}
    await idle(client)
    assert len(receiver.at("/a")) == 1
    assert len(receiver.at("/b")) == 1


async def test_concurrent_sends_of_one_id_store_it_once(
    receiver: Receiver, client: Client, db: asyncpg.Connection
) -> None:
    await create_webhook(client, url=receiver.url())
    answers = await asyncio.gather(*(publish(client, event(id="same-id")) for _ in range(10)))
    assert [a["duplicate"] for a in answers].count(False) == 1
    assert all(a["deliveries"] == 1 for a in answers)
    assert await counts(db) == (1, 1)
    await receiver.wait_for(1)
    await idle(client)
    assert len(receiver.at()) == 1


async def test_occurred_at_is_kept_and_data_may_be_any_json(
    client: Client, db: asyncpg.Connection
) -> None:
    for i, data in enumerate([[1, 2], "text", 3.5, None, {"nested": {"a": [True, None]}}]):
        answer = await publish(
            client, event(id=f"any-{i}", data=data, occurred_at="2024-05-01T14:00:00+02:00")
        )
        resp = await client.get(f"/v1/events/{answer['id']}", headers=ADMIN)
        assert resp.status == 200, await resp.text()
        got = await resp.json()
        assert got["data"] == data
        assert datetime.fromisoformat(got["occurred_at"]) == datetime(2024, 5, 1, 12, tzinfo=UTC)


# --------------------------------------------------------------------------------------------
# batches


async def test_batch_answers_one_entry_per_event_in_order_with_in_batch_duplicates(
    receiver: Receiver, client: Client, db: asyncpg.Connection
) -> None:
    await create_webhook(client, url=receiver.url())
    events = [event(id=f"batch-{i:03d}", data={"i": i}) for i in range(300)]
    events[150] = event(id="batch-010", data={"i": "again"})  # repeats the 11th event's id
    answers = await publish_batch(client, events)
    assert len(answers) == 300
    assert [a["id"] for a in answers] == [e["id"] for e in events]
    assert all(a["type"] == "order.created" for a in answers)
    assert all(a["deliveries"] == 1 for a in answers)
    assert answers[10]["duplicate"] is False
    assert answers[150]["duplicate"] is True
    assert [i for i, a in enumerate(answers) if a["duplicate"]] == [150]
    assert await counts(db) == (299, 299)
    stored = await db.fetchval("SELECT data FROM events WHERE id = 'batch-010'")
    assert orjson.loads(stored) == {"i": 10}

    got = await receiver.wait_for(299, timeout=15)
    assert len({r.headers["webhook-id"] for r in got}) == 299
    await idle(client)
    assert len(receiver.at()) == 299


async def test_batch_marks_ids_stored_earlier_as_duplicates(
    client: Client, db: asyncpg.Connection
) -> None:
    await publish(client, event(id="old-1"))
    answers = await publish_batch(client, [event(id="new-1"), event(id="old-1")])
    assert [(a["id"], a["duplicate"]) for a in answers] == [("new-1", False), ("old-1", True)]
    assert await counts(db) == (2, 0)


async def test_batch_of_exactly_1000_is_accepted(client: Client, db: asyncpg.Connection) -> None:
    answers = await publish_batch(client, [event(data=i) for i in range(1000)])
    assert len(answers) == 1000
    assert len({a["id"] for a in answers}) == 1000
    assert (await counts(db))[0] == 1000


async def test_batch_over_1000_is_422_and_stores_nothing(
    client: Client, db: asyncpg.Connection
) -> None:
    resp = await client.post(
        "/v1/events/batch", json={"events": [event() for _ in range(1001)]}, headers=PUBLISHER
    )
    await validation_error(resp, "events")
    assert await counts(db) == (0, 0)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"events": []}, "events"),
        ({}, "events"),
        ({"events": [{"type": "a.b", "data": 1}, {"data": 1}]}, "events[1].type"),
        ({"events": [{"type": "a.b", "data": 1, "colour": "red"}]}, "events[0].colour"),
        ({"events": "nope"}, "events"),
    ],
)
async def test_batch_validation_names_the_field(
    client: Client, db: asyncpg.Connection, body: dict[str, Any], field: str
) -> None:
    resp = await client.post("/v1/events/batch", json=body, headers=PUBLISHER)
    await validation_error(resp, field)
    assert await counts(db) == (0, 0)


# --------------------------------------------------------------------------------------------
# size limit, global switch, malformed and invalid bodies


async def test_body_over_max_payload_bytes_is_413_with_content_length(
    make_client: MakeClient, db: asyncpg.Connection
) -> None:
    client = await make_client(max_payload_bytes=2048)
    body = orjson.dumps(event(data="x" * 4000))
    resp = await client.post(
        "/v1/events",
        data=body,
        headers={**PUBLISHER, "Content-Type": "application/json"},
    )
    await problem(resp, 413)
    assert await counts(db) == (0, 0)


async def test_body_over_max_payload_bytes_is_413_when_chunked(
    make_client: MakeClient, db: asyncpg.Connection
) -> None:
    client = await make_client(max_payload_bytes=2048)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"type": "order.created", "data": "'
        for _ in range(8):
            yield b"x" * 1024
        yield b'"}'

    resp = await client.post(
        "/v1/events",
        data=chunks(),
        headers={**PUBLISHER, "Content-Type": "application/json"},
    )
    assert resp.request_info.headers.get("Transfer-Encoding") == "chunked"
    await problem(resp, 413)
    assert await counts(db) == (0, 0)


async def test_body_at_the_limit_is_accepted(
    make_client: MakeClient, db: asyncpg.Connection
) -> None:
    client = await make_client(max_payload_bytes=2048)
    head = orjson.dumps(event(id="limit", data=""))
    body = orjson.dumps(event(id="limit", data="x" * (2048 - len(head))))
    assert len(body) == 2048
    resp = await client.post(
        "/v1/events", data=body, headers={**PUBLISHER, "Content-Type": "application/json"}
    )
    assert resp.status == 202, await resp.text()
    assert await counts(db) == (1, 0)
    over = orjson.dumps(event(id="limit-2", data="x" * (2049 - len(head))))
    resp = await client.post(
        "/v1/events", data=over, headers={**PUBLISHER, "Content-Type": "application/json"}
    )
    await problem(resp, 413)
    assert await counts(db) == (1, 0)


async def test_events_disabled_answers_503_problem(
    make_client: MakeClient, db: asyncpg.Connection
) -> None:
    client = await make_client(events_enabled=False)
    resp = await client.post("/v1/events", json=event(), headers=PUBLISHER)
    await problem(resp, 503)
    resp = await client.post("/v1/events/batch", json={"events": [event()]}, headers=PUBLISHER)
    await problem(resp, 503)
    assert await counts(db) == (0, 0)


@pytest.mark.parametrize(
    "raw", [b"{", b"not json", b'{"type": "order.created", "data": }', b"\xff\xfe", b"", b"  "]
)
async def test_malformed_json_is_400(client: Client, db: asyncpg.Connection, raw: bytes) -> None:
    resp = await client.post(
        "/v1/events", data=raw, headers={**PUBLISHER, "Content-Type": "application/json"}
    )
    await problem(resp, 400)
    resp = await client.post(
        "/v1/events/batch", data=raw, headers={**PUBLISHER, "Content-Type": "application/json"}
    )
    await problem(resp, 400)
    assert await counts(db) == (0, 0)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"data": {}}, "type"),
        ({"type": "order created", "data": {}}, "type"),
        ({"type": "order..created", "data": {}}, "type"),
        ({"type": "", "data": {}}, "type"),
        ({"type": 5, "data": {}}, "type"),
        ({"type": "order.created"}, "data"),
        (
            {"type": "order.created", "data": {}, "occurred_at": "2024-05-01T12:00:00"},
            "occurred_at",
        ),
        ({"type": "order.created", "data": {}, "occurred_at": "yesterday"}, "occurred_at"),
        ({"type": "order.created", "data": {}, "colour": "red"}, "colour"),
        ({"type": "order.created", "data": {}, "id": "has space"}, "id"),
        ({"type": "order.created", "data": {}, "id": ""}, "id"),
        ({"type": "order.created", "data": {}, "id": 7}, "id"),
    ],
)
async def test_invalid_event_is_422_naming_the_field(
    client: Client, db: asyncpg.Connection, body: dict[str, Any], field: str
) -> None:
    resp = await client.post("/v1/events", json=body, headers=PUBLISHER)
    await validation_error(resp, field)
    assert await counts(db) == (0, 0)


@pytest.mark.parametrize("raw", [b"[]", b"42", b'"event"', b"null"])
async def test_non_object_body_is_422(client: Client, raw: bytes) -> None:
    resp = await client.post(
        "/v1/events", data=raw, headers={**PUBLISHER, "Content-Type": "application/json"}
    )
    await problem(resp, 422)


# --------------------------------------------------------------------------------------------
# the event log


async def test_get_event_with_its_deliveries_summary(receiver: Receiver, client: Client) -> None:
    await create_webhook(client, url=receiver.url())
    answer = await publish(
        client, event(id="shown-1", data={"x": 1}, occurred_at="2024-05-01T12:00:00Z")
    )
    await receiver.wait_for(1)

    async def summary() -> dict[str, Any] | None:
        resp = await client.get("/v1/events/shown-1", headers=ADMIN)
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body if body["deliveries"] == {"success": 1} else None

    got = await eventually(summary, what="a successful delivery in the summary")
    assert got["id"] == answer["id"]
    assert got["type"] == "order.created"
    assert got["data"] == {"x": 1}
    assert datetime.fromisoformat(got["occurred_at"]) == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert datetime.fromisoformat(got["created_at"]).tzinfo is not None


async def test_get_event_without_deliveries_has_an_empty_summary(client: Client) -> None:
    await publish(client, event(id="quiet-1"))
    resp = await client.get("/v1/events/quiet-1", headers=ADMIN)
    assert resp.status == 200
    assert (await resp.json())["deliveries"] == {}


@pytest.mark.parametrize("event_id", ["evt_doesnotexist", "nope", "a%20b"])
async def test_unknown_event_is_404(client: Client, event_id: str) -> None:
    resp = await client.get(f"/v1/events/{event_id}", headers=ADMIN)
    await problem(resp, 404)


async def test_list_events_newest_first_filtered_by_type(client: Client) -> None:
    await publish(client, event(id="e-1", type="order.created"))
    await publish(client, event(id="e-2", type="invoice.paid"))
    await publish(client, event(id="e-3", type="order.created"))
    resp = await client.get("/v1/events", headers=ADMIN)
    assert resp.status == 200
    body = await resp.json()
    assert [e["id"] for e in body["data"]] == ["e-3", "e-2", "e-1"]
    assert body["next_cursor"] is None
    for e in body["data"]:
        assert {"id", "type", "data", "occurred_at", "created_at", "deliveries"} <= set(e)

    resp = await client.get("/v1/events?type=order.created", headers=ADMIN)
    assert [e["id"] for e in (await resp.json())["data"]] == ["e-3", "e-1"]
    resp = await client.get("/v1/events?type=nothing.here", headers=ADMIN)
    assert (await resp.json())["data"] == []
    resp = await client.get("/v1/events?type=bad%20type", headers=ADMIN)
    await validation_error(resp, "type")


async def test_list_events_pagination_visits_each_event_once(client: Client) -> None:
    # One batch: every event shares created_at, so the cursor must break ties by id.
    await publish_batch(client, [event(id=f"pg-{i:02d}") for i in range(7)])
    await publish(client, event(id="pg-last", type="invoice.paid"))
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = "?limit=3" + (f"&cursor={cursor}" if cursor else "")
        resp = await client.get(f"/v1/events{query}", headers=ADMIN)
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert len(body["data"]) <= 3
        seen += [e["id"] for e in body["data"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert pages < 10
    assert seen == ["pg-last", *[f"pg-{i:02d}" for i in reversed(range(7))]]

    resp = await client.get("/v1/events?type=order.created&limit=4", headers=ADMIN)
    body = await resp.json()
    assert [e["id"] for e in body["data"]] == ["pg-06", "pg-05", "pg-04", "pg-03"]
    resp = await client.get(
        f"/v1/events?type=order.created&limit=4&cursor={body['next_cursor']}", headers=ADMIN
    )
    body = await resp.json()
    assert [e["id"] for e in body["data"]] == ["pg-02", "pg-01", "pg-00"]
    assert body["next_cursor"] is None


@pytest.mark.parametrize("query", ["limit=0", "limit=501", "limit=x", "cursor=%%%", "cursor=abc"])
async def test_list_events_bad_query_is_422(client: Client, query: str) -> None:
    resp = await client.get(f"/v1/events?{query}", headers=ADMIN)
    await problem(resp, 422)


async def test_publish_token_cannot_read_the_event_log(client: Client) -> None:
    await publish(client, event(id="secret-ish"))
    resp = await client.get("/v1/events", headers=PUBLISHER)
    await problem(resp, 403)
    resp = await client.get("/v1/events/secret-ish", headers=PUBLISHER)
    await problem(resp, 403)
