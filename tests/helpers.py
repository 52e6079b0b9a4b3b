"""Constants and small helpers for tests, and those of the tests that run several instances of
the application on one database (propagation, leases, auto-disable, operational events...)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient
from standardwebhooks.webhooks import Webhook

from dispatcher.app_keys import ENGINE, LISTENER, OPERATIONAL
from tests.receiver import Received, Responder

ADMIN_TOKEN = "test-admin-token-0123456789"
PUBLISH_TOKEN = "test-publish-token-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PUBLISHER = {"Authorization": f"Bearer {PUBLISH_TOKEN}"}

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
T = TypeVar("T")

PROPAGATION = 1.0  # seconds: "a change takes effect on every instance within a second"


def with_database(dsn: str, name: str) -> str:
    """The same server DSN pointing at database ``name``."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


def webhook_body(**overrides: Any) -> dict[str, Any]:
    """A valid webhook creation body."""
    body: dict[str, Any] = {
        "name": "orders",
        "url": "http://127.0.0.1:9/hook",
        "event_types": ["order.*"],
    }
    body.update(overrides)
    return body


def assert_problem(body: dict[str, Any], status: int) -> None:
    """The answer is RFC 9457 problem JSON with this status."""
    assert body["status"] == status
    for key in ("type", "title", "detail"):
        assert isinstance(body[key], str) and body[key]


# --------------------------------------------------------------------------------------------
# Several instances on one database (the make_client fixture makes each)


async def eventually(
    check: Callable[[], Awaitable[T | None]], timeout: float = 10.0, what: str = "condition"
) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = await check()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        await asyncio.sleep(0.01)


async def propagated(check: Callable[[], bool], what: str) -> float:
    """Wait until ``check()`` holds; it must within :data:`PROPAGATION`. Returns the delay."""
    started = time.monotonic()

    async def poll() -> bool:
        return check()

    await eventually(poll, PROPAGATION, what)
    return time.monotonic() - started


async def create_webhook(client: Client, **overrides: Any) -> dict[str, Any]:
    """Register a webhook through the API."""
    resp = await client.post("/v1/webhooks", json=webhook_body(**overrides), headers=ADMIN)
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def get_webhook(client: Client, webhook_id: str) -> dict[str, Any]:
    """``GET /v1/webhooks/{id}``."""
    resp = await client.get(f"/v1/webhooks/{webhook_id}", headers=ADMIN)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def call(client: Client, method: str, path: str, status: int, **kw: Any) -> Any:
    """An admin API call expected to answer ``status``; returns the JSON body (or None)."""
    resp = await client.request(method, path, headers=ADMIN, **kw)
    assert resp.status == status, await resp.text()
    return await resp.json() if resp.status != 204 else None


async def publish(client: Client, type_: str = "order.created", **data: Any) -> dict[str, Any]:
    """Publish one event; assert 202."""
    resp = await client.post(
        "/v1/events", json={"type": type_, "data": data or {"order": 42}}, headers=PUBLISHER
    )
    assert resp.status == 202, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def idle(*clients: Client) -> None:
    """Every instance's engine has nothing queued or in flight, its breaker has run, and the
    operational events it published are committed (they are gathered for 100 ms)."""
    for client in clients:
        engine = client.app[ENGINE]
        assert await engine.wait_idle(10), "engine never became idle"
        assert await engine.outcomes.drain(10), "outcomes never flushed"

        async def breaker_done(engine: Any = engine) -> bool:
            task = engine._breaker_task
            return not engine._breaker_pending and (task is None or task.done())

        await eventually(breaker_done, 5, "the breaker check to finish")
        publisher = client.app.get(OPERATIONAL)
        if publisher is not None:
            await publisher.drain()


def answer(*statuses: int) -> Responder:
    """A responder answering ``statuses`` in turn (the last one forever after)."""
    calls = 0

    async def respond(_request: web.Request, _n: int) -> web.StreamResponse:
        nonlocal calls
        status = statuses[min(calls, len(statuses) - 1)]
        calls += 1
        return web.Response(status=status, text=f"answer {status}")

    return respond


class Switch:
    """A responder that fails with 500 until ``healthy`` is set."""

    def __init__(self) -> None:
        self.healthy = False

    async def __call__(self, _request: web.Request, _n: int) -> web.StreamResponse:
        return web.Response(status=200 if self.healthy else 500)


class Gate:
    """A responder that holds every request until :meth:`open`; ``arrived`` counts them."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.arrived = 0

    async def __call__(self, _request: web.Request, _n: int) -> web.StreamResponse:
        self.arrived += 1
        await asyncio.wait_for(self.opened.wait(), 30)
        return web.Response(text="ok")


async def attempts_of(db: asyncpg.Connection, webhook_id: str) -> list[asyncpg.Record]:
    """A webhook's recorded attempts, oldest first."""
    return list(
        await db.fetch(
            "SELECT * FROM attempts WHERE webhook_id = $1 ORDER BY started_at, id", webhook_id
        )
    )


async def deliveries_of(db: asyncpg.Connection, webhook_id: str) -> list[asyncpg.Record]:
    """A webhook's deliveries."""
    return list(
        await db.fetch("SELECT * FROM deliveries WHERE webhook_id = $1 ORDER BY id", webhook_id)
    )


def header_id(got: Received) -> str:
    """The ``webhook-id`` header of a received request."""
    return next(v for k, v in got.headers.items() if k.lower() == "webhook-id")


async def blocked_backend(db: asyncpg.Connection, statement: str) -> int:
    """The pid of the dispatcher backend waiting on a lock in a query containing ``statement``."""

    async def find() -> int | None:
        pid: int | None = await db.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'dispatcher' "
            "AND datname = current_database() AND wait_event_type = 'Lock' "
            "AND query LIKE $1",
            f"%{statement}%",
        )
        return pid

    return await eventually(find, 5, f"a backend blocked in {statement!r}")


def verify(secret: str, got: Received) -> None:
    """The standard-webhooks verifier accepts the request with ``secret``."""
    Webhook(secret).verify(got.body, got.headers)


async def listening(*clients: Client) -> None:
    """Wait until every instance's LISTEN connection is up (see the start-up race test)."""
    for client in clients:
        await asyncio.wait_for(client.app[LISTENER].connected.wait(), 5)


async def two(make_client: MakeClient, **settings: Any) -> tuple[Client, Client]:
    """Two instances of one deployment, both listening."""
    a, b = await make_client(**settings), await make_client(**settings)
    await listening(a, b)
    return a, b
