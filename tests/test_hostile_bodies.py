"""Bodies a careless or hostile client sends: every one gets a 4xx problem and changes nothing."""

from __future__ import annotations

import asyncio
import gzip
import io
import zlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import asyncpg
import orjson
import pytest
from aiohttp import web
from svix.webhooks import Webhook as SvixWebhook

from dispatcher import logs
from dispatcher.app import create_app
from dispatcher.app_keys import POOL, REGISTRY
from dispatcher.auth import Tokens
from dispatcher.config import Settings
from tests.helpers import ADMIN, ADMIN_TOKEN, PUBLISH_TOKEN, PUBLISHER, webhook_body
from tests.test_admin import signed_in

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


@pytest.mark.parametrize("name", ["svix-id", "Svix-Timestamp", "SVIX-SIGNATURE"])
async def test_svix_signature_headers_are_reserved(
    client: Any, db: asyncpg.Connection, name: str
) -> None:
    resp = await client.post(
        "/v1/webhooks", json=webhook_body(headers={name: "forged"}), headers=ADMIN
    )
    assert resp.status == 422, await resp.text()
    assert [e["field"] for e in (await resp.json())["errors"]] == ["headers"]
    assert await db.fetchval("SELECT count(*) FROM webhooks") == 0

    hook = await (await client.post("/v1/webhooks", json=webhook_body(), headers=ADMIN)).json()
    resp = await client.patch(
        f"/v1/webhooks/{hook['id']}", json={"headers": {name: "forged"}}, headers=ADMIN
    )
    assert resp.status == 422, await resp.text()
    assert await db.fetchval("SELECT headers::text FROM webhooks") == "{}"


async def test_svix_headers_stored_before_they_were_reserved_are_not_sent(
    client: Any, receiver: Any, db: asyncpg.Connection
) -> None:
    hook = await (
        await client.post("/v1/webhooks", json=webhook_body(url=receiver.url()), headers=ADMIN)
    ).json()
    await db.execute(
        "UPDATE webhooks SET headers ="
        """ '{"svix-id": "x", "svix-signature": "v1,AAAA", "X-Team": "a"}'"""
    )
    await client.app[REGISTRY].refresh_webhook(client.app[POOL], hook["id"])
    await client.post("/v1/events", json={"type": "order.created", "data": {}}, headers=PUBLISHER)
    [got] = await receiver.wait_for(1)
    assert got.headers["X-Team"] == "a"
    SvixWebhook(hook["secret"]).verify(got.body, got.headers)


BODIES = {
    "/v1/events": (PUBLISHER, b'{"type": "order.created", "data": {"n": 1}}'),
    "/v1/events/batch": (PUBLISHER, b'{"events": [{"type": "order.created", "data": {}}]}'),
    "/v1/webhooks": (ADMIN, orjson.dumps(webhook_body())),
}


def mislabelled() -> list[tuple[str, bytes, int]]:
    """(Content-Encoding, how the body is mangled, the 4xx it must get)."""
    return [
        ("gzip", b"", 400),  # labelled gzip, sent plain
        ("deflate", b"", 400),
        ("gzip-truncated", b"", 400),
        ("deflate-truncated", b"", 400),
        ("x-gzip", b"", 415),
        ("foo", b"", 415),
        ("gzip, gzip", b"", 415),
    ]


def encode(body: bytes, label: str) -> tuple[str, bytes]:
    if label == "gzip-truncated":
        return "gzip", gzip.compress(body)[:12]
    if label == "deflate-truncated":
        return "deflate", zlib.compress(body)[:-6]
    return label, body


async def snapshot(db: asyncpg.Connection) -> list[Any]:
    """Every row of every table a request can change."""
    tables = ("events", "deliveries", "webhooks", "webhook_secrets", "event_types")
    return [await db.fetch(f"SELECT * FROM {t} ORDER BY 1") for t in tables]  # noqa: S608


@pytest.mark.parametrize(("label", "status"), [(m[0], m[2]) for m in mislabelled()])
@pytest.mark.parametrize("path", list(BODIES))
async def test_a_body_not_encoded_as_labelled_is_a_4xx(
    client: Any, db: asyncpg.Connection, path: str, label: str, status: int
) -> None:
    headers, body = BODIES[path]
    coding, sent = encode(body, label)
    before = await snapshot(db)
    resp = await client.post(
        path,
        data=sent,
        headers={**headers, "Content-Type": "application/json", "Content-Encoding": coding},
    )
    assert resp.status == status, await resp.text()
    if label != "deflate-truncated":  # found at the end of the message by aiohttp's parser,
        # which answers 400 itself, in plain text
        assert resp.headers["Content-Type"].startswith("application/problem+json")
        assert (await resp.json())["status"] == status
    assert await snapshot(db) == before


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
async def test_a_compressed_body_is_read(client: Any, coding: str) -> None:
    body = b'{"type": "order.created", "data": {"n": 1}}'
    sent = gzip.compress(body) if coding == "gzip" else zlib.compress(body)
    resp = await client.post(
        "/v1/events",
        data=sent,
        headers={**PUBLISHER, "Content-Type": "application/json", "Content-Encoding": coding},
    )
    assert resp.status == 202, await resp.text()


async def test_brotli_without_a_decoder_is_a_4xx(client: Any, db: asyncpg.Connection) -> None:
    resp = await client.post(
        "/v1/events",
        data=b'{"type": "order.created", "data": {}}',
        headers={**PUBLISHER, "Content-Type": "application/json", "Content-Encoding": "br"},
    )
    assert 400 <= resp.status < 500
    assert await db.fetchval("SELECT count(*) FROM events") == 0


@pytest.mark.parametrize("path", ["/admin/login", "/admin/webhooks/new"])
async def test_a_console_form_not_encoded_as_labelled_is_a_400_page(
    client: Any, db: asyncpg.Connection, path: str
) -> None:
    csrf = await signed_in(client) if path != "/admin/login" else ""
    form = urlencode({"token": "x", "csrf_token": csrf, "name": "n", "url": "http://a.example/"})
    resp = await client.post(
        path,
        data=form.encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Content-Encoding": "gzip",
        },
        allow_redirects=False,
    )
    assert resp.status == 400, await resp.text()
    assert await db.fetchval("SELECT count(*) FROM webhooks") == 0


async def hang_up_mid_body(port: int, path: str, headers: dict[str, str]) -> None:
    """Send the headers and part of a body, then close the connection."""
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(head.encode() + b"\r\n" + b'{"type": "order.cr')
    await writer.drain()
    writer.close()
    await writer.wait_closed()


@pytest.fixture
async def served(settings: Settings, db: asyncpg.Connection) -> AsyncIterator[int]:
    """The app served as ``dispatcher serve`` serves it; the port.

    aiohttp's test server cancels a handler whose client disconnects; ``run_app`` does not,
    so the handler sees the aborted body read, as in production.
    """
    app = create_app(settings, settings.database_url or "", Tokens(ADMIN_TOKEN, (PUBLISH_TOKEN,)))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


class LogLines:
    """The JSON log lines this process writes from now on, as they arrive."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        assert logs._buffer is not None, "the tests log JSON lines"
        logs.flush()
        self.out = io.BytesIO()
        monkeypatch.setattr(logs._buffer, "_out", self.out)

    async def wait_for(self, event: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Every line so far, once one is ``event`` (info lines are written in batches)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            lines = [orjson.loads(ln) for ln in self.out.getvalue().splitlines()]
            if any(line.get("event") == event for line in lines):
                return lines
            assert asyncio.get_running_loop().time() < deadline, f"no {event} in {lines}"
            await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/v1/events", {**PUBLISHER, "Content-Type": "application/json"}),
        ("/v1/webhooks", {**ADMIN, "Content-Type": "application/json"}),
        ("/admin/login", {"Content-Type": "application/x-www-form-urlencoded"}),
    ],
)
async def test_a_client_that_hangs_up_mid_body_is_a_client_abort(
    served: int,
    db: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    headers: dict[str, str],
) -> None:
    log = LogLines(monkeypatch)
    await hang_up_mid_body(served, path, headers)
    lines = await log.wait_for("client_disconnected")
    [abort] = [line for line in lines if line["event"] == "client_disconnected"]
    assert abort["level"] == "info" and abort["path"] == path
    if path.startswith("/v1/"):
        lines = await log.wait_for("api_request")
        [logged] = [line for line in lines if line["event"] == "api_request"]
        assert logged["status"] == 499  # nginx's "client closed request", not a 503
    events = {line["event"] for line in lines}
    assert not events & {"database_unavailable", "admin_database_unavailable", "unhandled_error"}
    assert await db.fetchval("SELECT count(*) FROM events") == 0


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/events", {"type": "order.created\n", "data": {}}, "type"),
        ("/v1/event-types", {"name": "order.created\n"}, "name"),
        ("/v1/webhooks", webhook_body(event_types=["order.*\n"]), "event_types"),
        ("/v1/webhooks", webhook_body(headers={"X-Team\n": "a"}), "headers"),
        ("/v1/webhooks", webhook_body(headers={"X-Team": "a\n"}), "headers"),
    ],
)
async def test_a_trailing_newline_is_not_part_of_a_valid_name(
    client: Any, db: asyncpg.Connection, path: str, body: dict[str, Any], field: str
) -> None:
    """Python's $ also matches before a final newline: "order.created\\n" passed as a name,
    and a header value ending in a newline was stored (and then failed every delivery)."""
    before = await snapshot(db)
    resp = await client.post(path, json=body, headers=ADMIN)
    assert resp.status == 422, await resp.text()
    assert [e["field"] for e in (await resp.json())["errors"]] == [field]
    assert await snapshot(db) == before


async def test_an_integral_float_is_an_integer(client: Any, db: asyncpg.Connection) -> None:
    """JSON (and JSON Schema) has one kind of number: 3.0 is the integer 3; 3.5 is not one."""
    resp = await client.post(
        "/v1/webhooks", json=webhook_body(max_retries=3.0, max_in_flight=10.0), headers=ADMIN
    )
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["max_retries"] == 3
    resp = await client.post("/v1/webhooks", json=webhook_body(max_retries=3.5), headers=ADMIN)
    assert resp.status == 422
    assert [e["field"] for e in (await resp.json())["errors"]] == ["max_retries"]
    assert await db.fetchval("SELECT count(*) FROM webhooks") == 1
