"""The ingestion byte budget: bodies in flight are bounded per process (503 beyond it), a
body over the batch limit is a 413, and every request gives its bytes back however it ends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestClient

from dispatcher.app_keys import INGEST_BUDGET
from dispatcher.budget import ByteBudget
from dispatcher.config import ConfigError, load_settings
from tests.helpers import PUBLISH_TOKEN, PUBLISHER, assert_problem

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]

PAYLOAD = 100_000
BATCH = 200_000
BUDGET = 250_000
# Two bodies of this size do not fit in the budget together; one fits beside small ones.
LARGE = 190_000
JSON = {**PUBLISHER, "Content-Type": "application/json"}


def batch_body(size: int, *, bad: bool = False) -> bytes:
    """A batch of three events whose JSON is exactly ``size`` bytes."""
    events: list[dict[str, Any]] = [{"type": "order.created", "data": ""} for _ in range(3)]
    if bad:
        events[2]["type"] = "not a type"
    filler = size - len(orjson.dumps({"events": events}))
    for i, e in enumerate(events):
        e["data"] = "x" * (filler // 3 + (1 if i < filler % 3 else 0))
    body = orjson.dumps({"events": events})
    assert len(body) == size
    return body


def event_body(size: int) -> bytes:
    """One event whose JSON is exactly ``size`` bytes."""
    head = len(orjson.dumps({"type": "order.created", "data": ""}))
    return orjson.dumps({"type": "order.created", "data": "x" * (size - head)})


async def eventually(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def stored(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT count(*) FROM events"))


class HeldRequest:
    """A POST whose body is sent only in part until :meth:`finish` (or :meth:`abort`)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, client: Client, path: str, body: bytes, sent: int) -> HeldRequest:
        reader, writer = await asyncio.open_connection(client.host, client.port)
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {PUBLISH_TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body[:sent]
        )
        await writer.drain()
        held = cls(reader, writer)
        held.rest = body[sent:]
        return held

    rest: bytes

    async def finish(self) -> int:
        """Send the rest of the body; the answer's status."""
        self.writer.write(self.rest)
        await self.writer.drain()
        status_line = await self.reader.readline()
        self.writer.close()
        return int(status_line.split()[1])

    def abort(self) -> None:
        """Hang up in the middle of the body."""
        self.writer.transport.abort()


def budget(client: Client) -> ByteBudget:
    return client.app[INGEST_BUDGET]


@pytest.fixture
async def client(make_client: MakeClient) -> Client:
    return await make_client(
        max_payload_bytes=PAYLOAD, max_batch_bytes=BATCH, ingest_memory_bytes=BUDGET
    )


async def assert_busy(resp: Any) -> None:
    """A 503 'try again' problem with a Retry-After."""
    assert resp.status == 503, await resp.text()
    assert int(resp.headers["Retry-After"]) >= 1
    assert_problem(await resp.json(content_type=None), 503)


# --------------------------------------------------------------------------------------------
# beyond the budget


async def test_bodies_beyond_the_budget_get_503_and_store_nothing(
    client: Client, db: asyncpg.Connection
) -> None:
    first = await HeldRequest.open(client, "/v1/events/batch", batch_body(LARGE), sent=1000)
    # The whole Content-Length is reserved before the body is buffered.
    await eventually(lambda: budget(client).in_use == LARGE, "the first body's reservation")

    await assert_busy(await client.post("/v1/events/batch", data=batch_body(LARGE), headers=JSON))
    # The single-event route draws from the same budget.
    await assert_busy(await client.post("/v1/events", data=event_body(80_000), headers=JSON))
    assert await stored(db) == 0
    # It is a budget of bytes, not of requests: a small event still fits beside the large one.
    resp = await client.post("/v1/events", data=event_body(1000), headers=JSON)
    assert resp.status == 202, await resp.text()

    assert await first.finish() == 202
    assert await stored(db) == 1 + 3
    assert budget(client).in_use == 0
    resp = await client.post("/v1/events/batch", data=batch_body(LARGE), headers=JSON)
    assert resp.status == 202, await resp.text()
    assert await stored(db) == 1 + 3 + 3


async def test_a_chunked_body_is_refused_once_it_outgrows_the_budget(
    client: Client, db: asyncpg.Connection
) -> None:
    first = await HeldRequest.open(client, "/v1/events/batch", batch_body(LARGE), sent=1000)
    await eventually(lambda: budget(client).in_use == LARGE, "the first body's reservation")
    body = batch_body(100_000)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 8192):
            yield body[i : i + 8192]

    resp = await client.post("/v1/events/batch", data=chunks(), headers=JSON)
    assert resp.request_info.headers.get("Transfer-Encoding") == "chunked"
    await assert_busy(resp)
    assert budget(client).in_use == LARGE
    assert await first.finish() == 202
    assert await stored(db) == 3
    assert budget(client).in_use == 0


# --------------------------------------------------------------------------------------------
# the budget is given back


async def test_the_budget_is_given_back_after_success_errors_and_hang_ups(
    client: Client, db: asyncpg.Connection
) -> None:
    # Each of these would find the budget spent if the one before had kept its bytes.
    resp = await client.post("/v1/events/batch", data=batch_body(LARGE), headers=JSON)
    assert resp.status == 202, await resp.text()
    resp = await client.post("/v1/events/batch", data=batch_body(LARGE, bad=True), headers=JSON)
    assert resp.status == 422, await resp.text()
    resp = await client.post("/v1/events/batch", data=b"[" * LARGE, headers=JSON)
    assert resp.status == 400, await resp.text()

    hung_up = await HeldRequest.open(client, "/v1/events/batch", batch_body(LARGE), sent=50_000)
    await eventually(lambda: budget(client).in_use == LARGE, "the reservation")
    hung_up.abort()
    await eventually(lambda: budget(client).in_use == 0, "the hung-up request's bytes back")

    resp = await client.post("/v1/events/batch", data=batch_body(LARGE), headers=JSON)
    assert resp.status == 202, await resp.text()
    assert await stored(db) == 6


# --------------------------------------------------------------------------------------------
# the batch limit


async def test_a_body_over_the_batch_limit_is_413(client: Client, db: asyncpg.Connection) -> None:
    resp = await client.post("/v1/events/batch", data=batch_body(BATCH + 1), headers=JSON)
    assert resp.status == 413, await resp.text()
    assert_problem(await resp.json(content_type=None), 413)
    body = batch_body(BATCH + 1)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 8192):
            yield body[i : i + 8192]

    resp = await client.post("/v1/events/batch", data=chunks(), headers=JSON)
    assert resp.status == 413, await resp.text()
    assert budget(client).in_use == 0
    resp = await client.post("/v1/events/batch", data=batch_body(BATCH), headers=JSON)
    assert resp.status == 202, await resp.text()
    assert await stored(db) == 3


# --------------------------------------------------------------------------------------------
# pure parts: the counter and its configuration


def test_a_reservation_covers_a_running_total_and_gives_it_all_back() -> None:
    b = ByteBudget(100)
    with b.reservation() as r:
        assert r.cover(60)
        assert r.cover(40)  # already held
        assert r.cover(70) and b.in_use == 70
        with b.reservation() as other:
            assert not other.cover(31)
            assert b.in_use == 70 and other.held == 0
            assert other.cover(30)
        assert b.in_use == 70
    assert b.in_use == 0


def test_limits_default_and_must_hold_one_another() -> None:
    s = load_settings({})
    assert s.max_batch_bytes == 16 * 1024 * 1024
    assert s.ingest_memory_bytes >= s.max_batch_bytes >= s.max_payload_bytes
    with pytest.raises(ConfigError, match=r"^DISPATCHER_MAX_BATCH_BYTES: .*PAYLOAD"):
        load_settings({"DISPATCHER_MAX_BATCH_BYTES": "100000"})
    with pytest.raises(ConfigError, match=r"^DISPATCHER_INGEST_MEMORY_BYTES: .*BATCH"):
        load_settings({"DISPATCHER_INGEST_MEMORY_BYTES": str(8 * 1024 * 1024)})


# --------------------------------------------------------------------------------------------
# a trickled body


async def test_a_body_that_does_not_arrive_in_time_is_408_and_gives_its_bytes_back(
    make_client: MakeClient, db: asyncpg.Connection
) -> None:
    client = await make_client(
        max_payload_bytes=PAYLOAD,
        max_batch_bytes=BATCH,
        ingest_memory_bytes=BUDGET,
        body_timeout_seconds=0.5,
    )
    # A sender that stops half-way (or trickles) would otherwise hold its reservation forever.
    held = await HeldRequest.open(client, "/v1/events/batch", batch_body(LARGE), sent=1000)
    status_line = await asyncio.wait_for(held.reader.readline(), 10)
    assert int(status_line.split()[1]) == 408
    head = (await asyncio.wait_for(held.reader.readuntil(b"\r\n\r\n"), 10)).lower()
    assert b"connection: close" in head  # the rest of that body is not waited for
    held.writer.close()
    assert budget(client).in_use == 0
    assert await stored(db) == 0
    resp = await client.post("/v1/events/batch", data=batch_body(LARGE), headers=JSON)
    assert resp.status == 202, await resp.text()
