"""Delivery end to end against a real receiver: fan-out, what a receiver gets, the outcome
rules, the delivery log API, and how registration changes affect work in progress."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from svix.webhooks import Webhook as SvixWebhook
from svix.webhooks import WebhookVerificationError as SvixVerificationError

from dispatcher import __version__
from dispatcher.app_keys import ENGINE
from tests.helpers import ADMIN, PUBLISHER, assert_problem, webhook_body
from tests.receiver import Received, Receiver, Responder

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
T = TypeVar("T")

PROBLEM_JSON = "application/problem+json"
# Small retry settings so that retries happen within a fraction of a second.
FAST: dict[str, Any] = {
    "max_retries": 2,
    "retry_base_seconds": 0.05,
    "retry_max_delay_seconds": 0.2,
}
# Retries only when a Retry-After header says so (the backoff itself is a minute).
SLOW: dict[str, Any] = {
    "max_retries": 5,
    "retry_base_seconds": 60.0,
    "retry_max_delay_seconds": 60.0,
}


# --------------------------------------------------------------------------------------------
# helpers


async def create_webhook(client: Client, **overrides: Any) -> dict[str, Any]:
    """Register a webhook through the API."""
    resp = await client.post("/v1/webhooks", json=webhook_body(**overrides), headers=ADMIN)
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def publish(client: Client, type_: str = "order.created", **fields: Any) -> dict[str, Any]:
    """Publish one event; assert 202."""
    body = {"type": type_, "data": {"order": 42}, **fields}
    resp = await client.post("/v1/events", json=body, headers=PUBLISHER)
    assert resp.status == 202, await resp.text()
    answer: dict[str, Any] = await resp.json()
    return answer


async def problem(resp: Any, status: int) -> dict[str, Any]:
    """Assert the answer is problem JSON with ``status`` and return its body."""
    text = await resp.text()
    assert resp.status == status, text
    assert resp.content_type == PROBLEM_JSON, text
    body: dict[str, Any] = await resp.json(content_type=None)
    assert_problem(body, status)
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


async def get_delivery(client: Client, delivery_id: str) -> dict[str, Any]:
    """``GET /v1/deliveries/{id}``."""
    resp = await client.get(f"/v1/deliveries/{delivery_id}", headers=ADMIN)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def list_deliveries(client: Client, path: str = "/v1/deliveries") -> list[dict[str, Any]]:
    """A delivery list (one page of up to 500)."""
    sep = "&" if "?" in path else "?"
    resp = await client.get(f"{path}{sep}limit=500", headers=ADMIN)
    assert resp.status == 200, await resp.text()
    data: list[dict[str, Any]] = (await resp.json())["data"]
    return data


async def delivery_of(client: Client, event_id: str, webhook_id: str) -> dict[str, Any]:
    """The one delivery of ``event_id`` to ``webhook_id``."""
    rows = await list_deliveries(
        client, f"/v1/deliveries?event_id={event_id}&webhook_id={webhook_id}"
    )
    assert len(rows) == 1, rows
    return rows[0]


async def wait_status(
    client: Client, delivery_id: str, status: str, timeout: float = 10.0
) -> dict[str, Any]:
    """Poll a delivery until it has ``status``; return it with its attempts."""

    async def check() -> dict[str, Any] | None:
        found = await get_delivery(client, delivery_id)
        return found if found["status"] == status else None

    return await eventually(check, timeout, f"delivery {delivery_id} to be {status}")


async def idle(client: Client) -> None:
    """Wait until the delivery engine has nothing queued or in flight."""
    assert await client.app[ENGINE].wait_idle(5), "engine never became idle"


def answer(*statuses: int, retry_after: str | None = None, body: str = "") -> Responder:
    """A responder answering ``statuses`` in turn (the last one forever after)."""
    calls = 0

    async def respond(_request: web.Request, _n: int) -> web.StreamResponse:
        nonlocal calls
        status = statuses[min(calls, len(statuses) - 1)]
        calls += 1
        headers = {"Retry-After": retry_after} if retry_after is not None and status >= 300 else {}
        return web.Response(status=status, text=body or f"answer {status}", headers=headers)

    return respond


def sleeping(seconds: float) -> Responder:
    """A responder that takes ``seconds`` before answering 200."""

    async def respond(_request: web.Request, _n: int) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return web.Response(text="slow ok")

    return respond


def closed_port_url() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def verify(secret: str, got: Received) -> None:
    """Both reference verifiers accept the request."""
    Webhook(secret).verify(got.body, got.headers)
    SvixWebhook(secret).verify(got.body, got.headers)


# --------------------------------------------------------------------------------------------
# fan-out and pattern matching


async def test_fanout_follows_exact_prefix_and_star_patterns(
    receiver: Receiver, client: Client, db: asyncpg.Connection
) -> None:
    exact = await create_webhook(client, url=receiver.url("/exact"), event_types=["order.created"])
    prefix = await create_webhook(client, url=receiver.url("/prefix"), event_types=["order.*"])
    star = await create_webhook(client, url=receiver.url("/star"), event_types=["*"])
    invoice = await create_webhook(
        client, url=receiver.url("/invoice"), event_types=["invoice.paid"]
    )
    await create_webhook(client, url=receiver.url("/disabled"), event_types=["*"], enabled=False)

    sent = await publish(client, "order.created")
    assert sent["deliveries"] == 3
    for path in ("/exact", "/prefix", "/star"):
        [got] = await receiver.wait_for(1, path)
        assert got.json()["id"] == sent["id"]
    hooks = await db.fetch("SELECT webhook_id FROM deliveries WHERE event_id = $1", sent["id"])
    assert {r["webhook_id"] for r in hooks} == {exact["id"], prefix["id"], star["id"]}

    # Prefix patterns need the dot: "order" and "orders.created" are not "order.*".
    expected = {"invoice.paid": {invoice["id"], star["id"]}, "order": {star["id"]}}
    expected["orders.created"] = {star["id"]}
    expected["order.item.added"] = {prefix["id"], star["id"]}
    for type_, targets in expected.items():
        got_answer = await publish(client, type_)
        assert got_answer["deliveries"] == len(targets), type_
        rows = await db.fetch(
            "SELECT webhook_id FROM deliveries WHERE event_id = $1", got_answer["id"]
        )
        assert {r["webhook_id"] for r in rows} == targets, type_

    await receiver.wait_for(5, "/star")
    await idle(client)
    assert len(receiver.at("/star")) == 5
    assert len(receiver.at("/exact")) == 1
    assert len(receiver.at("/prefix")) == 2
    assert len(receiver.at("/invoice")) == 1
    assert receiver.at("/disabled") == []


async def test_disabled_event_type_creates_no_deliveries(
    receiver: Receiver, client: Client, db: asyncpg.Connection
) -> None:
    await create_webhook(client, url=receiver.url(), event_types=["*"])
    resp = await client.post(
        "/v1/event-types", json={"name": "order.created", "enabled": False}, headers=ADMIN
    )
    assert resp.status == 201, await resp.text()

    muted = await publish(client, "order.created")
    assert muted["deliveries"] == 0
    assert muted["duplicate"] is False
    resp = await client.get(f"/v1/events/{muted['id']}", headers=ADMIN)
    assert resp.status == 200  # accepted and stored
    assert (await resp.json())["deliveries"] == {}

    # Another type still flows: it is the positive signal that the engine was working.
    other = await publish(client, "order.paid")
    [got] = await receiver.wait_for(1)
    assert got.json()["id"] == other["id"]
    await idle(client)
    assert len(receiver.at()) == 1
    assert (
        await db.fetchval("SELECT count(*) FROM deliveries WHERE event_id = $1", muted["id"]) == 0
    )

    resp = await client.patch(
        "/v1/event-types/order.created", json={"enabled": True}, headers=ADMIN
    )
    assert resp.status == 200
    assert (await publish(client, "order.created"))["deliveries"] == 1
    await receiver.wait_for(2)


# --------------------------------------------------------------------------------------------
# what a receiver gets


async def test_receiver_gets_envelope_headers_and_verifiable_signatures(
    receiver: Receiver, client: Client
) -> None:
    hook = await create_webhook(
        client, url=receiver.url(), headers={"X-Tenant": "acme", "Authorization": "Basic Zm9v"}
    )
    sent = await publish(
        client, data={"order": 42, "items": [1, 2]}, occurred_at="2024-05-01T12:00:00Z"
    )
    [got] = await receiver.wait_for(1)
    now = time.time()

    body = got.json()
    assert set(body) == {"id", "type", "timestamp", "data"}
    assert body["id"] == sent["id"]
    assert body["type"] == "order.created"
    assert datetime.fromisoformat(body["timestamp"]) == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert body["data"] == {"order": 42, "items": [1, 2]}

    headers = {k.lower(): v for k, v in got.headers.items()}
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == f"Dispatcher/{__version__}"
    assert headers["x-tenant"] == "acme"
    assert headers["authorization"] == "Basic Zm9v"
    assert headers["webhook-id"] == sent["id"]
    assert abs(int(headers["webhook-timestamp"]) - now) < 30
    [signature] = headers["webhook-signature"].split(" ")
    assert signature.startswith("v1,")
    verify(hook["secret"], got)

    # A wrong secret is refused, so the verifiers really checked something.
    other = "whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(got.body, got.headers)
    with pytest.raises(SvixVerificationError):
        SvixWebhook(other).verify(got.body, got.headers)


async def test_include_payload_false_sends_the_envelope_without_data(
    receiver: Receiver, client: Client
) -> None:
    hook = await create_webhook(client, url=receiver.url(), include_payload=False)
    sent = await publish(client, data={"secret-ish": True})
    [got] = await receiver.wait_for(1)
    body = got.json()
    assert "data" not in body
    assert set(body) == {"id", "type", "timestamp"}
    assert body["id"] == sent["id"]
    verify(hook["secret"], got)


async def test_webhook_id_is_the_same_on_every_retry(
    receiver: Receiver, make_client: MakeClient
) -> None:
    client = await make_client(**FAST)
    receiver.responders["/hook"] = answer(500, 500, 200)
    hook = await create_webhook(client, url=receiver.url())
    sent = await publish(client)
    got = await receiver.wait_for(3)
    assert {r.headers["webhook-id"] for r in got} == {sent["id"]}
    for r in got:
        verify(hook["secret"], r)
        assert r.json()["id"] == sent["id"]
        assert r.json()["data"] == {"order": 42}
    delivery = await delivery_of(client, sent["id"], hook["id"])
    await wait_status(client, delivery["id"], "success")


async def test_retries_send_the_same_body(receiver: Receiver, make_client: MakeClient) -> None:
    """A retry is the same message: its body is byte for byte the first attempt's body,
    even when the producer gave occurred_at with a UTC offset."""
    client = await make_client(**FAST)
    receiver.responders["/hook"] = answer(500, 200)
    await create_webhook(client, url=receiver.url())
    await publish(client, data={"a": 1}, occurred_at="2024-05-01T14:00:00+02:00")
    first, second = await receiver.wait_for(2)
    assert first.body == second.body


async def test_data_is_delivered_as_sent(receiver: Receiver, client: Client) -> None:
    """``data`` is any JSON value, sent to receivers as is: large integers stay integers."""
    await create_webhook(client, url=receiver.url())
    raw = b'{"type": "order.created", "data": {"order_id": 123456789012345678901234567890}}'
    resp = await client.post(
        "/v1/events", data=raw, headers={**PUBLISHER, "Content-Type": "application/json"}
    )
    assert resp.status == 202, await resp.text()
    [got] = await receiver.wait_for(1)
    assert b'"order_id":123456789012345678901234567890' in got.body.replace(b" ", b"")


# --------------------------------------------------------------------------------------------
# outcome rules


async def test_server_error_is_retried_max_retries_times_then_failed(
    receiver: Receiver, make_client: MakeClient
) -> None:
    client = await make_client(**FAST)  # max_retries=2: at most 3 attempts
    receiver.responders["/hook"] = answer(500, body="boom")
    hook = await create_webhook(client, url=receiver.url())
    sent = await publish(client)
    await receiver.wait_for(3)
    delivery = await delivery_of(client, sent["id"], hook["id"])
    done = await wait_status(client, delivery["id"], "failed")
    await idle(client)
    assert len(receiver.at()) == 3

    assert done["attempt_count"] == 3
    assert done["last_status_code"] == 500
    assert done["last_error"]
    assert done["next_attempt_at"] is None
    assert done["event_id"] == sent["id"]
    assert done["event_type"] == "order.created"
    assert done["webhook_id"] == hook["id"]
    attempts = done["attempts"]
    assert [a["number"] for a in attempts] == [1, 2, 3]
    for a in attempts:
        assert a["status_code"] == 500
        assert a["url"] == receiver.url()
        assert isinstance(a["duration_ms"], int | float) and a["duration_ms"] >= 0
        assert a["response_body"] == "boom"
        assert datetime.fromisoformat(a["started_at"]).tzinfo is not None
    starts = [datetime.fromisoformat(a["started_at"]) for a in attempts]
    assert starts == sorted(starts)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
async def test_client_error_fails_at_once_without_retry(
    receiver: Receiver, make_client: MakeClient, status: int
) -> None:
    client = await make_client(**FAST)
    receiver.responders["/hook"] = answer(status, body="we do not want this")
    hook = await create_webhook(client, url=receiver.url())
    sent = await publish(client)
    delivery = await delivery_of(client, sent["id"], hook["id"])
    done = await wait_status(client, delivery["id"], "failed")
    await idle(client)
    assert len(receiver.at()) == 1
    assert done["attempt_count"] == 1
    assert done["last_status_code"] == status
    [attempt] = done["attempts"]
    assert attempt["status_code"] == status
    assert attempt["response_body"] == "we do not want this"
    # The webhook stays enabled (only 410 disables it).
    resp = await client.get(f"/v1/webhooks/{hook['id']}", headers=ADMIN)
    assert (await resp.json())["enabled"] is True


async def test_per_webhook_max_retries_overrides_the_global_setting(
    receiver: Receiver, make_client: MakeClient
) -> None:
    client = await make_client(**{**FAST, "max_retries": 5})
    receiver.responders["/once"] = answer(500)
    receiver.responders["/global"] = answer(500)
    once = await create_webhook(client, url=receiver.url("/once"), max_retries=1)
    zero = await create_webhook(client, url=receiver.url("/zero"), max_retries=0)
    receiver.responders["/zero"] = answer(503)
    glob = await create_webhook(client, url=receiver.url("/global"))
    sent = await publish(client)
    for hook, attempts in ((once, 2), (zero, 1), (glob, 6)):
        delivery = await delivery_of(client, sent["id"], hook["id"])
        done = await wait_status(client, delivery["id"], "failed")
        assert done["attempt_count"] == attempts, hook["url"]
    await idle(client)
    assert len(receiver.at("/once")) == 2
    assert len(receiver.at("/zero")) == 1
    assert len(receiver.at("/global")) == 6


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_retryable_status_then_200_succeeds(
    receiver: Receiver, make_client: MakeClient, status: int
) -> None:
    client = await make_client(**FAST)
    receiver.responders["/hook"] = answer(status, 200)
    hook = await create_webhook(client, url=receiver.url())
    sent = await publish(client)
    await receiver.wait_for(2)
    delivery = await delivery_of(client, sent["id"], hook["id"])
    done = await wait_status(client, delivery["id"], "success")
    assert done["attempt_count"] == 2
    assert [a["status_code"] for a in done["attempts"]] == [status, 200]
    assert done["last_status_code"] == 200
    assert done["next_attempt_at"] is None
    await idle(client)
    assert len(receiver.at()) == 2


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_zero_is_honoured(
    receiver: Receiver, make_client: MakeClient, status: int
) -> None:
    # The backoff alone would wait a minute; Retry-After: 0 makes the retry immediate.
    client = await make_client(**SLOW)
    receiver.responders["/hook"] = answer(status, 200, retry_after="0")
    hook = await create_webhook(client, url=receiver.url())
    sent = await publish(client)
    await receiver.wait_for(2, timeout=5)
    delivery = await delivery_of(client, sent["id"], hook["id"])
    done = await wait_status(client, delivery["id"], "success")
    assert [a["status_code"] for a in done["attempts"]] == [status, 200]


async def test_retries_stop_at_the_maximum_age(receiver: Receiver, make_client: MakeClient) -> None:
    client = await make_client(
        max_retries=50, retry_base_seconds=0.1, retry_max_delay_seconds=0.1, max_age_seconds=0.5
    )
    receiver.responders["/hook"] = answer(500)
    hook = await create_webhook(client, url=receiver.url())
    sent = await publish(client)
    delivery = await delivery_of(client, sent["id"], hook["id"])
    done = await wait_status(client, delivery["id"], "failed", timeout=5)
    assert 1 <= done["attempt_count"] < 50
    assert "age" in done["last_error"]
    first = datetime.fromisoformat(done["attempts"][0]["started_at"])
    last = datetime.fromisoformat(done["attempts"][-1]["started_at"])
    assert (last - first).total_seconds() < 0.5
    await idle(client)
    assert len(receiver.at()) == done["attempt_count"]


async def test_response_body_is_recorded_up_to_4_kib(
    receiver: Receiver, make_client: MakeClient
) -> None:
    client = await make_client(**{**FAST, "max_retries": 0})
    receiver.responders["/hook"] = answer(500, body="é" + "x" * 20000)
    hook = await create_webhook(client, url=receiver.url())
    sent = await publish(client)
    delivery = await delivery_of(client, sent["id"], hook["id"])
    done = await wait_status(client, delivery["id"], "failed")
    [attempt] = done["attempts"]
    assert attempt["response_body"].startswith("éxxx")
    assert len(attempt["response_body"].encode()) == 4096


async def test_gone_fails_and_disables_the_webhook(
    receiver: Receiver, make_client: MakeClient
) -> None:
    client = await make_client(**FAST)
    receiver.responders["/hook"] = answer(410)
    hook = await create_webhook(client, url=receiver.url())
    sent = await publish(client)
    delivery = await delivery_of(client, sent["id"], hook["id"])
    done = await wait_status(client, delivery["id"], "failed")
    assert done["attempt_count"] == 1
    assert done["last_status_code"] == 410

    async def disabled() -> dict[str, Any] | None:
        resp = await client.get(f"/v1/webhooks/{hook['id']}", headers=ADMIN)
        body: dict[str, Any] = await resp.json()
        return body if not body["enabled"] else None

    webhook = await eventually(disabled, what="the webhook to be disabled")
    assert webhook["disabled_reason"] == "gone"
    assert webhook["disabled_at"] is not None
    # A disabled webhook gets no new deliveries.
    assert (await publish(client))["deliveries"] == 0
    await idle(client)
    assert len(receiver.at()) == 1


async def test_redirect_is_not_followed_and_fails(
    receiver: Receiver, make_client: MakeClient
) -> None:
    client = await make_client(**FAST)

    async def redirect(_request: web.Request, _n: int) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": receiver.url("/elsewhere")})

    receiver.responders["/hook"] = redirect
    hook = await create_webhook(client, url=receiver.url())
    sent = await publish(client)
    delivery = await delivery_of(client, sent["id"], hook["id"])
    done = await wait_status(client, delivery["id"], "failed")
    await idle(client)
    assert done["attempt_count"] == 1
    assert [a["status_code"] for a in done["attempts"]] == [302]
    assert len(receiver.at()) == 1
    assert receiver.at("/elsewhere") == []


async def test_timeout_is_retried_and_recorded(receiver: Receiver, make_client: MakeClient) -> None:
    client = await make_client(**{**FAST, "max_retries": 1})
    receiver.responders["/hook"] = sleeping(1.0)
    hook = await create_webhook(client, url=receiver.url(), timeout_seconds=0.3)
    sent = await publish(client)
    delivery = await delivery_of(client, sent["id"], hook["id"])
    done = await wait_status(client, delivery["id"], "failed")
    assert done["attempt_count"] == 2
    assert "timed out" in done["last_error"]
    assert done["last_status_code"] is None
    for a in done["attempts"]:
        assert a["status_code"] is None
        assert "timed out" in a["error"]
        assert 250 <= a["duration_ms"] < 1000
    await receiver.wait_for(2)  # both requests did reach the (slow) receiver


async def test_connection_refused_is_retried_then_failed(make_client: MakeClient) -> None:
    client = await make_client(**FAST)
    url = closed_port_url()
    hook = await create_webhook(client, url=url)
    sent = await publish(client)
    delivery = await delivery_of(client, sent["id"], hook["id"])
    done = await wait_status(client, delivery["id"], "failed")
    assert done["attempt_count"] == 3
    assert done["last_status_code"] is None
    assert done["last_error"]
    assert len(done["attempts"]) == 3
    for a in done["attempts"]:
        assert a["status_code"] is None
        assert a["error"]
        assert a["url"] == url


# --------------------------------------------------------------------------------------------
# the delivery log API


async def test_delivery_lists_filter_by_webhook_event_and_status(
    receiver: Receiver, make_client: MakeClient
) -> None:
    client = await make_client(**FAST)
    receiver.responders["/bad"] = answer(400)
    good = await create_webhook(client, url=receiver.url("/good"))
    bad = await create_webhook(client, url=receiver.url("/bad"))
    e1 = await publish(client)
    e2 = await publish(client)

    async def finished() -> list[dict[str, Any]] | None:
        rows = await list_deliveries(client)
        done = all(r["status"] in ("success", "failed") for r in rows)
        return rows if len(rows) == 4 and done else None

    rows = await eventually(finished, what="four finished deliveries")
    fields = {
        "id", "event_id", "event_type", "webhook_id", "status", "attempt_count", "created_at",
        "last_attempt_at", "next_attempt_at", "last_status_code", "last_error",
    }  # fmt: skip
    assert all(fields <= set(r) for r in rows)
    assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)

    def pairs(found: list[dict[str, Any]]) -> set[tuple[str, str]]:
        return {(r["event_id"], r["webhook_id"]) for r in found}

    by_good = await list_deliveries(client, f"/v1/deliveries?webhook_id={good['id']}")
    assert pairs(by_good) == {(e1["id"], good["id"]), (e2["id"], good["id"])}
    by_event = await list_deliveries(client, f"/v1/deliveries?event_id={e1['id']}")
    assert pairs(by_event) == {(e1["id"], good["id"]), (e1["id"], bad["id"])}
    failed = await list_deliveries(client, "/v1/deliveries?status=failed")
    assert pairs(failed) == {(e1["id"], bad["id"]), (e2["id"], bad["id"])}
    both = await list_deliveries(
        client, f"/v1/deliveries?status=success&event_id={e2['id']}&webhook_id={good['id']}"
    )
    assert pairs(both) == {(e2["id"], good["id"])}
    none = await list_deliveries(client, f"/v1/deliveries?status=failed&webhook_id={good['id']}")
    assert none == []
    assert await list_deliveries(client, "/v1/deliveries?status=cancelled") == []

    resp = await client.get("/v1/deliveries?status=bogus", headers=ADMIN)
    body = await problem(resp, 422)
    assert [e["field"] for e in body["errors"]] == ["status"]

    own = await list_deliveries(client, f"/v1/webhooks/{bad['id']}/deliveries")
    assert pairs(own) == {(e1["id"], bad["id"]), (e2["id"], bad["id"])}
    own = await list_deliveries(client, f"/v1/webhooks/{good['id']}/deliveries?status=success")
    assert len(own) == 2
    own = await list_deliveries(client, f"/v1/webhooks/{good['id']}/deliveries?event_id={e1['id']}")
    assert pairs(own) == {(e1["id"], good["id"])}
    resp = await client.get("/v1/webhooks/wh_missing/deliveries", headers=ADMIN)
    await problem(resp, 404)
    resp = await client.get(f"/v1/webhooks/{good['id']}/deliveries?status=nope", headers=ADMIN)
    await problem(resp, 422)

    # Pagination over the log.
    resp = await client.get("/v1/deliveries?limit=3", headers=ADMIN)
    page = await resp.json()
    assert len(page["data"]) == 3 and page["next_cursor"]
    resp = await client.get(f"/v1/deliveries?limit=3&cursor={page['next_cursor']}", headers=ADMIN)
    rest = await resp.json()
    assert len(rest["data"]) == 1 and rest["next_cursor"] is None
    assert {r["id"] for r in page["data"] + rest["data"]} == {r["id"] for r in rows}


async def test_unknown_delivery_is_404(client: Client) -> None:
    for method, path in (
        ("GET", "/v1/deliveries/dlv_missing"),
        ("POST", "/v1/deliveries/dlv_missing/retry"),
        ("POST", "/v1/deliveries/dlv_missing/cancel"),
    ):
        resp = await client.request(method, path, headers=ADMIN)
        await problem(resp, 404)


async def test_manual_retry_of_a_failed_delivery(
    receiver: Receiver, make_client: MakeClient
) -> None:
    client = await make_client(**FAST)
    receiver.responders["/hook"] = answer(400, 200)
    hook = await create_webhook(client, url=receiver.url())
    sent = await publish(client)
    delivery = await delivery_of(client, sent["id"], hook["id"])
    await wait_status(client, delivery["id"], "failed")

    resp = await client.post(f"/v1/deliveries/{delivery['id']}/retry", headers=ADMIN)
    assert resp.status == 202, await resp.text()
    assert (await resp.json())["id"] == delivery["id"]
    await receiver.wait_for(2)
    done = await wait_status(client, delivery["id"], "success")
    assert done["attempt_count"] == 2
    assert [a["status_code"] for a in done["attempts"]] == [400, 200]

    resp = await client.post(f"/v1/deliveries/{delivery['id']}/retry", headers=ADMIN)
    await problem(resp, 409)
    await idle(client)
    assert len(receiver.at()) == 2


async def test_manual_retry_gets_a_fresh_retry_budget(
    receiver: Receiver, make_client: MakeClient
) -> None:
    client = await make_client(**FAST)
    receiver.responders["/hook"] = answer(500)
    hook = await create_webhook(client, url=receiver.url(), max_retries=1)
    sent = await publish(client)
    delivery = await delivery_of(client, sent["id"], hook["id"])
    await wait_status(client, delivery["id"], "failed")
    resp = await client.post(f"/v1/deliveries/{delivery['id']}/retry", headers=ADMIN)
    assert resp.status == 202
    await receiver.wait_for(4)
    done = await wait_status(client, delivery["id"], "failed")
    assert done["attempt_count"] == 4
    await idle(client)
    assert len(receiver.at()) == 4


async def test_cancel_a_retrying_delivery_stops_it(
    receiver: Receiver, make_client: MakeClient
) -> None:
    client = await make_client(**SLOW)
    # Without the cancel, /cancel would be retried after 1 s; /control is retried after 2 s
    # and is the signal that the cancelled retry's time has come and gone.
    receiver.responders["/cancel"] = answer(503, retry_after="1")
    receiver.responders["/control"] = answer(503, 200, retry_after="2")
    hook = await create_webhook(client, url=receiver.url("/cancel"))
    await create_webhook(client, url=receiver.url("/control"))
    sent = await publish(client)
    delivery = await delivery_of(client, sent["id"], hook["id"])
    await wait_status(client, delivery["id"], "retrying")

    resp = await client.post(f"/v1/deliveries/{delivery['id']}/cancel", headers=ADMIN)
    assert resp.status == 200, await resp.text()
    cancelled = await resp.json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["next_attempt_at"] is None

    await receiver.wait_for(2, "/control", timeout=5)
    await idle(client)
    assert len(receiver.at("/cancel")) == 1
    after = await get_delivery(client, delivery["id"])
    assert after["status"] == "cancelled"
    assert after["attempt_count"] == 1

    resp = await client.post(f"/v1/deliveries/{delivery['id']}/cancel", headers=ADMIN)
    await problem(resp, 409)


async def test_cancel_a_finished_delivery_is_409(receiver: Receiver, client: Client) -> None:
    hook = await create_webhook(client, url=receiver.url())
    sent = await publish(client)
    delivery = await delivery_of(client, sent["id"], hook["id"])
    await wait_status(client, delivery["id"], "success")
    resp = await client.post(f"/v1/deliveries/{delivery['id']}/cancel", headers=ADMIN)
    await problem(resp, 409)
    assert (await get_delivery(client, delivery["id"]))["status"] == "success"


async def test_ping_goes_to_that_webhook_only(
    receiver: Receiver, client: Client, db: asyncpg.Connection
) -> None:
    hook = await create_webhook(client, url=receiver.url("/ping"), event_types=["invoice.paid"])
    await create_webhook(client, url=receiver.url("/star"), event_types=["*"])
    resp = await client.post(f"/v1/webhooks/{hook['id']}/ping", headers=ADMIN)
    assert resp.status == 202, await resp.text()
    sent = await resp.json()
    assert sent["type"] == "webhook.ping"
    assert sent["deliveries"] == 1
    [got] = await receiver.wait_for(1, "/ping")
    assert got.json()["type"] == "webhook.ping"
    assert got.json()["id"] == sent["id"]
    assert got.headers["webhook-id"] == sent["id"]
    verify(hook["secret"], got)
    await idle(client)
    assert receiver.at("/star") == []
    rows = await db.fetch("SELECT webhook_id FROM deliveries WHERE event_id = $1", sent["id"])
    assert [r["webhook_id"] for r in rows] == [hook["id"]]


async def test_ping_a_disabled_or_unknown_webhook(receiver: Receiver, client: Client) -> None:
    hook = await create_webhook(client, url=receiver.url(), enabled=False)
    resp = await client.post(f"/v1/webhooks/{hook['id']}/ping", headers=ADMIN)
    await problem(resp, 409)
    resp = await client.post("/v1/webhooks/wh_missing/ping", headers=ADMIN)
    await problem(resp, 404)
    await idle(client)
    assert receiver.requests == []


async def test_replay_failed_deliveries(receiver: Receiver, make_client: MakeClient) -> None:
    client = await make_client(**FAST)
    receiver.responders["/hook"] = answer(400)
    hook = await create_webhook(client, url=receiver.url())
    since = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    events = [await publish(client) for _ in range(3)]

    async def all_failed() -> list[dict[str, Any]] | None:
        rows = await list_deliveries(client, f"/v1/webhooks/{hook['id']}/deliveries")
        return rows if len(rows) == 3 and all(r["status"] == "failed" for r in rows) else None

    await eventually(all_failed, what="three failed deliveries")
    receiver.responders["/hook"] = answer(200)

    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    resp = await client.post(
        f"/v1/webhooks/{hook['id']}/replay",
        json={"status": "failed", "since": future},
        headers=ADMIN,
    )
    assert resp.status == 202
    assert await resp.json() == {"count": 0}

    resp = await client.post(
        f"/v1/webhooks/{hook['id']}/replay",
        json={"status": "failed", "since": since},
        headers=ADMIN,
    )
    assert resp.status == 202, await resp.text()
    assert await resp.json() == {"count": 3}
    got = await receiver.wait_for(6)
    assert sorted(r.headers["webhook-id"] for r in got[3:]) == sorted(e["id"] for e in events)

    async def all_success() -> list[dict[str, Any]] | None:
        rows = await list_deliveries(client, f"/v1/webhooks/{hook['id']}/deliveries")
        return rows if all(r["status"] == "success" for r in rows) else None

    rows = await eventually(all_success, what="three successful deliveries")
    assert all(r["attempt_count"] == 2 for r in rows)
    await idle(client)
    assert len(receiver.at()) == 6


@pytest.mark.parametrize(
    "body",
    [
        {"status": "bogus", "since": "2024-01-01T00:00:00Z"},
        {"status": "failed"},
        {"status": "failed", "since": "not a time"},
        {"status": "failed", "since": "2024-01-01T00:00:00"},
        {"status": "failed", "since": "2024-01-01T00:00:00Z", "extra": 1},
        {"status": "retrying", "since": "2024-01-01T00:00:00Z"},
    ],
)
async def test_replay_with_a_bad_body_is_422(client: Client, body: dict[str, Any]) -> None:
    hook = await create_webhook(client)
    resp = await client.post(f"/v1/webhooks/{hook['id']}/replay", json=body, headers=ADMIN)
    await problem(resp, 422)


async def test_replay_unknown_webhook_is_404(client: Client) -> None:
    resp = await client.post(
        "/v1/webhooks/wh_missing/replay",
        json={"status": "failed", "since": "2024-01-01T00:00:00Z"},
        headers=ADMIN,
    )
    await problem(resp, 404)


# --------------------------------------------------------------------------------------------
# registration changes and work in progress


async def test_deleting_a_webhook_cancels_its_pending_deliveries(
    receiver: Receiver, make_client: MakeClient
) -> None:
    client = await make_client(**SLOW)
    receiver.responders["/doomed"] = answer(503, retry_after="1")
    receiver.responders["/control"] = answer(503, 200, retry_after="2")
    hook = await create_webhook(client, url=receiver.url("/doomed"))
    await create_webhook(client, url=receiver.url("/control"))
    sent = await publish(client)
    delivery = await delivery_of(client, sent["id"], hook["id"])
    await wait_status(client, delivery["id"], "retrying")

    resp = await client.delete(f"/v1/webhooks/{hook['id']}", headers=ADMIN)
    assert resp.status == 204
    assert (await get_delivery(client, delivery["id"]))["status"] == "cancelled"

    await receiver.wait_for(2, "/control", timeout=5)
    await idle(client)
    assert len(receiver.at("/doomed")) == 1
    after = await get_delivery(client, delivery["id"])
    assert after["status"] == "cancelled"
    assert after["next_attempt_at"] is None


async def test_manual_retry_of_a_deleted_webhooks_delivery_is_refused(
    receiver: Receiver, make_client: MakeClient
) -> None:
    """There is nowhere to send it: a 202 would leave it ``retrying`` forever."""
    client = await make_client(**SLOW)
    receiver.responders["/hook"] = answer(503, retry_after="30")
    hook = await create_webhook(client, url=receiver.url())
    sent = await publish(client)
    delivery = await delivery_of(client, sent["id"], hook["id"])
    await wait_status(client, delivery["id"], "retrying")
    resp = await client.delete(f"/v1/webhooks/{hook['id']}", headers=ADMIN)
    assert resp.status == 204
    resp = await client.post(f"/v1/deliveries/{delivery['id']}/retry", headers=ADMIN)
    assert resp.status in (404, 409, 410), await resp.text()
    assert (await get_delivery(client, delivery["id"]))["status"] == "cancelled"


async def test_rotated_secret_signs_with_old_and_new(receiver: Receiver, client: Client) -> None:
    hook = await create_webhook(client, url=receiver.url())
    old = hook["secret"]
    resp = await client.post(f"/v1/webhooks/{hook['id']}/secret/rotate", headers=ADMIN)
    assert resp.status == 200
    new = (await resp.json())["secret"]
    assert new != old

    await publish(client)
    [got] = await receiver.wait_for(1)
    signatures = got.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    assert all(s.startswith("v1,") for s in signatures)
    verify(old, got)
    verify(new, got)


async def test_url_change_applies_to_the_next_retry(
    receiver: Receiver, make_client: MakeClient
) -> None:
    client = await make_client(**SLOW)
    receiver.responders["/old"] = answer(503, retry_after="1")
    hook = await create_webhook(client, url=receiver.url("/old"))
    sent = await publish(client)
    delivery = await delivery_of(client, sent["id"], hook["id"])
    await wait_status(client, delivery["id"], "retrying")

    resp = await client.patch(
        f"/v1/webhooks/{hook['id']}", json={"url": receiver.url("/new")}, headers=ADMIN
    )
    assert resp.status == 200
    [got] = await receiver.wait_for(1, "/new", timeout=5)
    verify(hook["secret"], got)
    done = await wait_status(client, delivery["id"], "success")
    assert [a["url"] for a in done["attempts"]] == [receiver.url("/old"), receiver.url("/new")]
    await idle(client)
    assert len(receiver.at("/old")) == 1


async def test_url_change_on_another_instance_applies_to_the_next_retry(
    receiver: Receiver, make_client: MakeClient
) -> None:
    first = await make_client(**SLOW)
    second = await make_client(**SLOW)
    receiver.responders["/old"] = answer(503, retry_after="1")
    hook = await create_webhook(first, url=receiver.url("/old"))
    sent = await publish(first)
    delivery = await delivery_of(first, sent["id"], hook["id"])
    await wait_status(first, delivery["id"], "retrying")

    resp = await second.patch(
        f"/v1/webhooks/{hook['id']}", json={"url": receiver.url("/new")}, headers=ADMIN
    )
    assert resp.status == 200
    await receiver.wait_for(1, "/new", timeout=5)
    await wait_status(first, delivery["id"], "success")
    assert len(receiver.at("/old")) == 1


async def test_disabled_webhook_holds_its_deliveries_until_enabled(
    receiver: Receiver, make_client: MakeClient
) -> None:
    client = await make_client(**SLOW)
    receiver.responders["/held"] = answer(503, 200, retry_after="1")
    receiver.responders["/control"] = answer(503, 200, retry_after="2")
    hook = await create_webhook(client, url=receiver.url("/held"))
    await create_webhook(client, url=receiver.url("/control"))
    sent = await publish(client)
    delivery = await delivery_of(client, sent["id"], hook["id"])
    await wait_status(client, delivery["id"], "retrying")

    resp = await client.post(f"/v1/webhooks/{hook['id']}/disable", headers=ADMIN)
    assert resp.status == 200
    # /held's retry was due after 1 s; /control's retry after 2 s shows that time has passed.
    await receiver.wait_for(2, "/control", timeout=5)
    await idle(client)
    assert len(receiver.at("/held")) == 1
    held = await get_delivery(client, delivery["id"])
    assert held["status"] == "retrying"
    assert held["attempt_count"] == 1

    resp = await client.post(f"/v1/webhooks/{hook['id']}/enable", headers=ADMIN)
    assert resp.status == 200
    await receiver.wait_for(2, "/held", timeout=5)
    done = await wait_status(client, delivery["id"], "success")
    assert done["attempt_count"] == 2


# --------------------------------------------------------------------------------------------
# isolation and concurrency


async def test_a_slow_endpoint_does_not_hold_back_a_fast_one(
    receiver: Receiver, client: Client, db: asyncpg.Connection
) -> None:
    receiver.responders["/slow"] = sleeping(3.0)
    slow = await create_webhook(client, url=receiver.url("/slow"))
    await create_webhook(client, url=receiver.url("/fast"))
    answers = await asyncio.gather(*(publish(client, data={"i": i}) for i in range(20)))
    assert all(a["deliveries"] == 2 for a in answers)

    await receiver.wait_for(20, "/fast", timeout=1.5)
    assert receiver.at("/slow") == []  # still being answered
    pending = await db.fetchval(
        "SELECT count(*) FROM deliveries WHERE webhook_id = $1 AND status <> 'success'",
        slow["id"],
    )
    assert pending == 20
    await receiver.wait_for(20, "/slow", timeout=10)


async def test_3000_slow_deliveries_run_concurrently(
    receiver: Receiver, client: Client, db: asyncpg.Connection
) -> None:
    paths = ["/c0", "/c1", "/c2"]
    for path in paths:
        receiver.responders[path] = sleeping(2.0)
        # Above the default per-webhook cap (100): all 1,000 of each webhook's at once.
        await create_webhook(client, url=receiver.url(path), max_in_flight=1000)
    events = [{"type": "order.created", "data": {"i": i}} for i in range(1000)]
    resp = await client.post("/v1/events/batch", json={"events": events}, headers=PUBLISHER)
    assert resp.status == 202, await resp.text()
    assert all(a["deliveries"] == 3 for a in (await resp.json())["data"])

    started = time.monotonic()
    for path in paths:
        remaining = 15.0 - (time.monotonic() - started)
        await receiver.wait_for(1000, path, timeout=max(remaining, 0.1))
    elapsed = time.monotonic() - started
    assert elapsed < 15.0

    async def all_success() -> int | None:
        n = await db.fetchval("SELECT count(*) FROM deliveries WHERE status = 'success'")
        return int(n) if n == 3000 else None

    await eventually(all_success, timeout=10, what="3000 successful deliveries")
