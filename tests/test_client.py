"""``dispatcher.client``: the sync and async clients against the real server on a real port.

The retry tests put a small scripted proxy in front of the server: it answers 503, drops the
connection before or after forwarding, or forwards; the database then shows that retried
publishing stored each event once, with one delivery.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from dispatcher.app import create_app
from dispatcher.auth import Tokens
from dispatcher.client import (
    AsyncClient,
    Client,
    Conflict,
    ConnectionFailed,
    DispatcherError,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
)
from dispatcher.config import Settings
from tests.conftest import make_settings
from tests.helpers import ADMIN_TOKEN, PUBLISH_TOKEN
from tests.receiver import Receiver

REPO = Path(__file__).resolve().parent.parent
T = TypeVar("T")

# Fast retries for tests.
FAST: dict[str, Any] = {"retries": 5, "backoff": 0.01, "max_backoff": 0.05}


@pytest.fixture
async def server(aiohttp_server: Any, settings: Settings, db: asyncpg.Connection) -> TestServer:
    """The whole application listening on a real loopback port."""
    app = create_app(settings, settings.database_url or "", Tokens(ADMIN_TOKEN, (PUBLISH_TOKEN,)))
    result: TestServer = await aiohttp_server(app)
    return result


def url_of(server: TestServer) -> str:
    return f"http://{server.host}:{server.port}"


@pytest.fixture
async def api(server: TestServer) -> AsyncIterator[AsyncClient]:
    """An admin AsyncClient on the server."""
    async with AsyncClient(url_of(server), token=ADMIN_TOKEN, **FAST) as client:
        yield client


async def in_thread(fn: Callable[[], T]) -> T:
    """Run blocking client code off the loop that serves the application."""
    return await asyncio.to_thread(fn)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --------------------------------------------------------------------------------------------
# The module itself


def test_importing_the_client_loads_none_of_the_server() -> None:
    code = (
        "import sys, dispatcher.client\n"
        "heavy = ('asyncpg', 'structlog', 'prometheus_client', 'pydantic', 'uvloop', 'click',"
        " 'standardwebhooks', 'jinja2')\n"
        "print([m for m in sys.modules if m.split('.')[0] in heavy"
        " or (m.startswith('dispatcher.') and m != 'dispatcher.client')])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


# --------------------------------------------------------------------------------------------
# Async client


async def test_async_publish_and_batch(
    api: AsyncClient, receiver: Receiver, db: asyncpg.Connection
) -> None:
    await api.create_webhook("orders", receiver.url(), ["order.*"])

    first = await api.publish("order.created", {"order": 42})
    assert first["type"] == "order.created"
    assert first["deliveries"] == 1
    assert first["duplicate"] is False
    assert first["id"].startswith("evt_")

    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    mine = await api.publish("order.paid", {"order": 42}, id="order-42-paid", occurred_at=when)
    assert mine == {
        "id": "order-42-paid",
        "type": "order.paid",
        "deliveries": 1,
        "duplicate": False,
    }
    again = await api.publish("order.paid", {"order": 42}, id="order-42-paid")
    assert again["duplicate"] is True
    stored = await api.get_event("order-42-paid")
    assert stored["data"] == {"order": 42}
    assert datetime.fromisoformat(stored["occurred_at"]) == when

    answers = await api.publish_batch(
        [
            {"type": "order.shipped", "data": {"n": 1}},
            {"type": "user.created", "data": [1, 2]},
            {"type": "order.shipped", "data": None, "id": "ship-3"},
            {"type": "order.refunded", "data": {}, "occurred_at": when},
        ]
    )
    assert [a["type"] for a in answers] == [
        "order.shipped",
        "user.created",
        "order.shipped",
        "order.refunded",
    ]
    assert [a["deliveries"] for a in answers] == [1, 0, 1, 1]
    assert answers[2]["id"] == "ship-3"
    # Events without an id got a distinct generated one.
    ids = [a["id"] for a in answers]
    assert len(set(ids)) == 4 and all(i.startswith("evt_") for i in ids if i != "ship-3")
    assert await db.fetchval("SELECT count(*) FROM events") == 6
    assert await db.fetchval("SELECT count(*) FROM deliveries") == 5

    page = await api.list_events(type="order.shipped")
    assert {e["id"] for e in page["data"]} == {ids[0], "ship-3"}
    two = await api.list_events(limit=2)
    assert len(two["data"]) == 2 and two["next_cursor"]
    rest = await api.list_events(cursor=two["next_cursor"])
    assert len(rest["data"]) == 4

    assert await api.publish_batch([]) == []


async def test_a_long_batch_is_split_into_requests(
    api: AsyncClient, db: asyncpg.Connection
) -> None:
    answers = await api.publish_batch({"type": "bulk.item", "data": i} for i in range(2345))
    assert len(answers) == 2345
    assert len({a["id"] for a in answers}) == 2345
    assert await db.fetchval("SELECT count(*) FROM events") == 2345


async def test_async_webhook_management(api: AsyncClient, receiver: Receiver) -> None:
    created = await api.create_webhook(
        "billing",
        receiver.url("/billing"),
        ["invoice.*"],
        description="to billing",
        headers={"X-Team": "billing"},
        metadata={"owner": "ana"},
        max_retries=3,
        timeout_seconds=2.5,
        rate_limit_per_second=10,
        max_in_flight=4,
    )
    hook_id = created["id"]
    assert created["secret"].startswith("whsec_")
    assert created["headers"] == {"X-Team": "billing"}
    assert created["max_in_flight"] == 4

    fetched = await api.get_webhook(hook_id)
    assert "secret" not in fetched
    assert fetched["metadata"] == {"owner": "ana"}
    assert await api.get_secret(hook_id) == created["secret"]

    other = await api.create_webhook("audit", receiver.url("/audit"), ["*"], enabled=False)
    listed = await api.list_webhooks()
    assert [w["id"] for w in listed["data"]] == [other["id"], hook_id]
    assert [w["id"] for w in (await api.list_webhooks(enabled=True))["data"]] == [hook_id]
    assert [w["id"] for w in (await api.list_webhooks(enabled=False))["data"]] == [other["id"]]
    by_type = await api.list_webhooks(event_type="invoice.paid")
    assert {w["id"] for w in by_type["data"]} == {hook_id, other["id"]}
    page = await api.list_webhooks(limit=1)
    assert len(page["data"]) == 1 and page["next_cursor"]

    updated = await api.update_webhook(
        hook_id,
        url=receiver.url("/billing2"),
        event_types=("invoice.*", "refund.*"),
        max_retries=None,
    )
    assert updated["url"].endswith("/billing2")
    assert updated["event_types"] == ["invoice.*", "refund.*"]
    assert updated["max_retries"] is None
    assert updated["updated_at"] > created["updated_at"]

    disabled = await api.disable_webhook(hook_id)
    assert (disabled["enabled"], disabled["disabled_reason"]) == (False, "manual")
    enabled = await api.enable_webhook(hook_id)
    assert (enabled["enabled"], enabled["disabled_reason"]) == (True, None)

    rotated = await api.rotate_secret(hook_id)
    assert rotated.startswith("whsec_") and rotated != created["secret"]
    assert await api.get_secret(hook_id) == rotated

    ping = await api.ping(hook_id)
    assert ping["type"] == "webhook.ping" and ping["deliveries"] == 1
    [got] = await receiver.wait_for(1, "/billing2")
    assert got.json()["type"] == "webhook.ping"

    await api.delete_webhook(hook_id)
    with pytest.raises(NotFound) as info:
        await api.get_webhook(hook_id)
    assert info.value.status == 404
    assert info.value.problem["status"] == 404
    assert hook_id in info.value.detail


async def test_async_deliveries_and_replay(
    api: AsyncClient, receiver: Receiver, db: asyncpg.Connection
) -> None:
    hook = await api.create_webhook("orders", receiver.url(), ["order.*"])
    sent = await api.publish("order.created", {"order": 1})
    await receiver.wait_for(1)

    async def delivered(attempts: int) -> dict[str, Any]:
        for _ in range(200):
            [one] = (await api.list_deliveries(event_id=sent["id"]))["data"]
            if one["status"] == "success" and one["attempt_count"] == attempts:
                return dict(one)
            await asyncio.sleep(0.05)
        raise AssertionError("the delivery did not succeed")

    delivery = await delivered(1)
    assert delivery["webhook_id"] == hook["id"]
    assert (await api.list_deliveries(webhook_id=hook["id"], status="success"))["data"]
    assert (await api.list_deliveries(status="failed"))["data"] == []

    detail = await api.get_delivery(delivery["id"])
    assert detail["attempts"][0]["status_code"] == 200
    assert detail["attempts"][0]["url"] == receiver.url()

    with pytest.raises(Conflict) as info:
        await api.retry_delivery(delivery["id"])
    assert info.value.status == 409
    with pytest.raises(Conflict):
        await api.cancel_delivery(delivery["id"])

    # Replay re-sends what succeeded since an hour ago.
    count = await api.replay(hook["id"], datetime.now(UTC) - timedelta(hours=1), status="success")
    assert count == 1
    await receiver.wait_for(2)
    await delivered(2)

    event = await api.get_event(sent["id"])
    assert sum(event["deliveries"].values()) == 1

    # Cancel and retry on a delivery that is waiting (its webhook is disabled, so it is held).
    await api.disable_webhook(hook["id"])
    await db.execute(
        "UPDATE deliveries SET status = 'retrying', due_at = NULL, next_attempt_at = now()"
    )
    cancelled = await api.cancel_delivery(delivery["id"])
    assert cancelled["status"] == "cancelled"
    retried = await api.retry_delivery(delivery["id"])
    assert retried["status"] == "retrying"


async def test_async_event_types(api: AsyncClient) -> None:
    made = await api.create_event_type("order.created", "An order was placed")
    assert made["enabled"] is True and made["description"] == "An order was placed"
    with pytest.raises(Conflict):
        await api.create_event_type("order.created")
    await api.create_event_type("audit.noise", enabled=False)
    assert [t["name"] for t in (await api.list_event_types())["data"]] == [
        "audit.noise",
        "order.created",
    ]
    changed = await api.update_event_type("order.created", enabled=False)
    assert changed["enabled"] is False and changed["description"] == "An order was placed"
    assert (await api.get_event_type("order.created"))["enabled"] is False
    assert (await api.publish("order.created", {}))["deliveries"] == 0
    await api.delete_event_type("order.created")
    with pytest.raises(NotFound):
        await api.get_event_type("order.created")


async def test_errors_carry_status_and_problem(server: TestServer, api: AsyncClient) -> None:
    with pytest.raises(ValidationFailed) as info:
        await api.create_webhook("x", "ftp://example.com", [])
    err = info.value
    assert err.status == 422
    assert err.problem["type"].endswith("/validation")
    fields = {e["field"] for e in err.errors}
    assert {"url", "event_types"} <= fields
    assert "422" in str(err) and "url" in str(err)
    assert isinstance(err, DispatcherError)

    with pytest.raises(ValidationFailed):
        await api.publish("not a type!", {})

    async with AsyncClient(url_of(server), token="wrong-token-0123456789") as bad:
        with pytest.raises(Unauthorized) as unauth:
            await bad.publish("order.created", {})
    assert unauth.value.problem["status"] == 401

    async with AsyncClient(url_of(server) + "/v1/", token=PUBLISH_TOKEN) as publisher:
        assert (await publisher.publish("order.created", {}))["deliveries"] == 0
        with pytest.raises(Forbidden):
            await publisher.list_webhooks()

    with pytest.raises(ValueError, match="timezone"):
        await api.publish("order.created", {}, occurred_at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="unknown"):
        await api.publish_batch([{"type": "a.b", "data": 1, "typo": 2}])


async def test_big_integers_and_odd_ids_round_trip(api: AsyncClient) -> None:
    big = 2**70
    answer = await api.publish("order.created", {"n": big}, id="a:b.c~d-e_f")
    assert answer["id"] == "a:b.c~d-e_f"
    with pytest.raises(NotFound):
        await api.get_webhook("wh/../../x")


# --------------------------------------------------------------------------------------------
# Sync client


async def test_sync_client(server: TestServer, receiver: Receiver, db: asyncpg.Connection) -> None:
    base = url_of(server)

    def scenario() -> dict[str, Any]:
        with Client(base, token=ADMIN_TOKEN, **FAST) as c:
            hook = c.create_webhook("orders", receiver.url(), ["order.*"], headers={"X-A": "1"})
            one = c.publish("order.created", {"order": 1})
            batch = c.publish_batch(
                [{"type": "order.paid", "data": {}}, {"type": "order.paid", "data": {}, "id": "p2"}]
            )
            dup = c.publish("order.paid", {}, id="p2")
            listed = c.list_webhooks()
            fetched = c.get_webhook(hook["id"])
            disabled = c.disable_webhook(hook["id"])
            enabled = c.enable_webhook(hook["id"])
            updated = c.update_webhook(hook["id"], name="renamed")
            secret = c.get_secret(hook["id"])
            rotated = c.rotate_secret(hook["id"])
            events = c.list_events()
            deliveries = c.list_deliveries(webhook_id=hook["id"])
            c.create_event_type("order.created", "placed")
            types = c.list_event_types()
            c.update_event_type("order.created", description="new")
            etype = c.get_event_type("order.created")
            c.delete_event_type("order.created")
            try:
                c.get_delivery("dlv_missing")
            except NotFound as exc:
                missing: Any = exc.problem
            event = c.get_event(one["id"])
            first_delivery = c.get_delivery(deliveries["data"][0]["id"])
            c.delete_webhook(hook["id"])
            return {
                "hook": hook,
                "one": one,
                "batch": batch,
                "dup": dup,
                "listed": listed,
                "fetched": fetched,
                "disabled": disabled,
                "enabled": enabled,
                "updated": updated,
                "secret": secret,
                "rotated": rotated,
                "events": events,
                "deliveries": deliveries,
                "types": types,
                "etype": etype,
                "missing": missing,
                "event": event,
                "first_delivery": first_delivery,
            }

    r = await in_thread(scenario)
    assert r["one"]["deliveries"] == 1 and not r["one"]["duplicate"]
    assert [a["duplicate"] for a in r["batch"]] == [False, False]
    assert r["dup"]["duplicate"] is True
    assert [w["id"] for w in r["listed"]["data"]] == [r["hook"]["id"]]
    assert r["fetched"]["headers"] == {"X-A": "1"}
    assert r["disabled"]["enabled"] is False and r["enabled"]["enabled"] is True
    assert r["updated"]["name"] == "renamed"
    assert r["secret"] == r["hook"]["secret"] != r["rotated"]
    assert len(r["events"]["data"]) == 3
    assert len(r["deliveries"]["data"]) == 3
    assert [t["name"] for t in r["types"]["data"]] == ["order.created"]
    assert r["etype"]["description"] == "new"
    assert r["missing"]["status"] == 404
    assert r["event"]["type"] == "order.created"
    assert r["first_delivery"]["webhook_id"] == r["hook"]["id"]
    assert await db.fetchval("SELECT count(*) FROM webhooks") == 0


async def test_sync_client_closes_its_thread(server: TestServer) -> None:
    base = url_of(server)

    def client_threads() -> int:
        return sum(1 for t in threading.enumerate() if t.name == "dispatcher-client")

    def scenario() -> tuple[int, int, bool]:
        before = client_threads()
        c = Client(base.replace("127.0.0.1", "localhost"), token=ADMIN_TOKEN)
        c.list_webhooks()
        during = client_threads()
        c.close()
        c.close()
        try:
            c.list_webhooks()
        except RuntimeError:
            refused = True
        else:
            refused = False
        return during - before, client_threads() - before, refused

    started, left, refused = await in_thread(scenario)
    assert started == 1
    assert left == 0
    assert refused


async def test_sync_client_works_inside_a_running_event_loop(server: TestServer) -> None:
    """Called from a thread that runs its own loop (e.g. inside an async framework)."""
    base = url_of(server)

    def scenario() -> int:
        async def inner() -> int:
            with Client(base, token=ADMIN_TOKEN) as c:
                return len(c.list_webhooks()["data"])

        return asyncio.run(inner())

    assert await in_thread(scenario) == 0


# --------------------------------------------------------------------------------------------
# Retries


@dataclass
class Flaky:
    """A proxy in front of the server: each request gets the next scripted action.

    ``503``: answer 503 without forwarding. ``drop``: close the connection without forwarding.
    ``forward-drop``: forward (the server acts), then close the connection instead of answering.
    ``forward`` (also once the script is used up): forward and relay the answer.
    """

    target: str
    script: list[str]
    seen: list[str] = field(default_factory=list)
    forwarded: int = 0
    runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        n = len(self.seen)
        self.seen.append(f"{request.method} {request.path}")
        action = self.script[n] if n < len(self.script) else "forward"
        body = await request.read()
        if action == "503":
            return web.json_response(
                {
                    "type": "about:blank",
                    "title": "Service Unavailable",
                    "status": 503,
                    "detail": "x",
                },
                status=503,
                content_type="application/problem+json",
            )
        if action == "drop":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("authorization", "content-type")
        }
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method, self.target + request.path_qs, data=body, headers=headers
            ) as resp,
        ):
            raw = await resp.read()
            self.forwarded += 1
            if action == "forward-drop":
                assert request.transport is not None
                request.transport.close()
                return web.Response()
            return web.Response(
                body=raw, status=resp.status, headers={"Content-Type": resp.content_type}
            )


@pytest.fixture
async def make_proxy(server: TestServer) -> AsyncIterator[Callable[[list[str]], Any]]:
    proxies: list[Flaky] = []

    async def make(script: list[str]) -> Flaky:
        proxy = Flaky(url_of(server), script)
        await proxy.start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        await proxy.stop()


async def test_publish_retries_on_503_and_lost_answers_without_duplicates(
    api: AsyncClient, make_proxy: Any, receiver: Receiver, db: asyncpg.Connection
) -> None:
    await api.create_webhook("orders", receiver.url(), ["order.*"])
    proxy: Flaky = await make_proxy(["503", "drop", "503", "forward-drop", "forward"])
    async with AsyncClient(proxy.url, token=ADMIN_TOKEN, **FAST) as flaky:
        answer = await flaky.publish("order.created", {"order": 7})
    assert len(proxy.seen) == 5
    assert proxy.forwarded == 2
    # The server stored it on the 4th request, whose answer was lost; the 5th is the repeat.
    assert answer["duplicate"] is True
    assert answer["deliveries"] == 1
    assert await db.fetchval("SELECT count(*) FROM events") == 1
    assert await db.fetchval("SELECT count(*) FROM deliveries") == 1
    await receiver.wait_for(1)
    await asyncio.sleep(0.2)
    assert len(receiver.at("/hook")) == 1


async def test_batch_retries_without_duplicates(
    api: AsyncClient, make_proxy: Any, receiver: Receiver, db: asyncpg.Connection
) -> None:
    await api.create_webhook("orders", receiver.url(), ["order.*"])
    proxy: Flaky = await make_proxy(["forward-drop", "503"])
    async with AsyncClient(proxy.url, token=PUBLISH_TOKEN, **FAST) as flaky:
        answers = await flaky.publish_batch(
            [{"type": "order.created", "data": {"n": i}} for i in range(10)]
        )
    assert len(proxy.seen) == 3
    assert [a["duplicate"] for a in answers] == [True] * 10
    assert await db.fetchval("SELECT count(*) FROM events") == 10
    assert await db.fetchval("SELECT count(*) FROM deliveries") == 10


async def test_sync_publish_retries_without_duplicates(
    api: AsyncClient, make_proxy: Any, receiver: Receiver, db: asyncpg.Connection
) -> None:
    await api.create_webhook("orders", receiver.url(), ["order.*"])
    proxy: Flaky = await make_proxy(["503", "forward-drop", "drop", "503"])

    def publish() -> Any:
        with Client(proxy.url, token=ADMIN_TOKEN, **FAST) as c:
            return c.publish("order.created", {"order": 8})

    answer = await in_thread(publish)
    assert len(proxy.seen) == 5
    assert answer["duplicate"] is True
    assert await db.fetchval("SELECT count(*) FROM events") == 1
    assert await db.fetchval("SELECT count(*) FROM deliveries") == 1


async def test_retries_are_bounded(make_proxy: Any, db: asyncpg.Connection) -> None:
    proxy: Flaky = await make_proxy(["503"] * 10)
    async with AsyncClient(proxy.url, token=ADMIN_TOKEN, retries=2, backoff=0.01) as flaky:
        with pytest.raises(ServiceUnavailable) as info:
            await flaky.publish("order.created", {})
    assert len(proxy.seen) == 3
    assert info.value.status == 503
    assert await db.fetchval("SELECT count(*) FROM events") == 0

    async with AsyncClient(proxy.url, token=ADMIN_TOKEN, retries=0) as once:
        with pytest.raises(ServiceUnavailable):
            await once.list_webhooks()
    assert len(proxy.seen) == 4


async def test_unsafe_calls_are_not_repeated_after_a_lost_answer(
    make_proxy: Any, db: asyncpg.Connection, receiver: Receiver
) -> None:
    proxy: Flaky = await make_proxy(["forward-drop", "503"])
    async with AsyncClient(proxy.url, token=ADMIN_TOKEN, **FAST) as flaky:
        with pytest.raises(ConnectionFailed) as info:
            await flaky.create_webhook("orders", receiver.url(), ["order.*"])
        assert info.value.status == 0
        # Created once, and not created again by a retry.
        assert len(proxy.seen) == 1
        assert await db.fetchval("SELECT count(*) FROM webhooks") == 1
        with pytest.raises(ServiceUnavailable):
            await flaky.create_webhook("orders", receiver.url(), ["order.*"])
        assert len(proxy.seen) == 2
    assert await db.fetchval("SELECT count(*) FROM webhooks") == 1


async def test_connection_refused_is_retried_then_raised() -> None:
    port = free_port()
    async with AsyncClient(
        f"http://127.0.0.1:{port}", token=ADMIN_TOKEN, retries=2, backoff=0.01
    ) as c:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ConnectionFailed) as info:
            await c.create_webhook("x", "http://example.com", ["*"])
    assert info.value.status == 0
    assert str(port) in info.value.detail
    assert loop.time() - started < 5


async def test_the_server_coming_up_late_is_waited_for(
    db: asyncpg.Connection, database_url: str, tmp_path: Path
) -> None:
    """Connection refused at first, then a server appears: the publish gets through once."""
    port = free_port()
    app = create_app(
        make_settings(database_url, tmp_path), database_url, Tokens(ADMIN_TOKEN, (PUBLISH_TOKEN,))
    )
    runner = web.AppRunner(app, access_log=None)

    async def start_later() -> None:
        await asyncio.sleep(0.3)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    starter = asyncio.create_task(start_later())
    try:
        async with AsyncClient(
            f"http://127.0.0.1:{port}", token=ADMIN_TOKEN, retries=8, backoff=0.05, max_backoff=0.5
        ) as c:
            answer = await c.publish("order.created", {"late": True})
        assert answer["duplicate"] is False
        assert await db.fetchval("SELECT count(*) FROM events") == 1
    finally:
        await starter
        await runner.cleanup()


def test_problem_of_a_non_json_error_is_synthesised() -> None:
    from dispatcher.client import error_for

    err = error_for(
        502, {"type": "about:blank", "title": "Bad Gateway", "status": 502, "detail": "x"}
    )
    assert err.status == 502 and err.title == "Bad Gateway"
    assert json.dumps(err.problem)
