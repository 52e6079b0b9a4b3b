"""A webhook URL's path and query (where Slack-style hooks keep their secret) never reach the
logs, an attempt's error or a delivery's ``last_error``: errors name the host only."""

from __future__ import annotations

import asyncio
import io
import socket
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from yarl import URL

from dispatcher import logs, sender
from tests.helpers import ADMIN, PUBLISHER, webhook_body

SECRET_PATH = "B0SECRETPATH7f3a9c"
SECRET_QUERY = "SECRETQUERYe81d44"
SECRETS = (SECRET_PATH, SECRET_QUERY)


def hook_url(port: int, mode: str) -> str:
    return f"http://127.0.0.1:{port}/{mode}/services/T0/{SECRET_PATH}?token={SECRET_QUERY}"


# -- the pure parts ------------------------------------------------------------------------


def test_scrub_keeps_the_host_and_drops_path_query_and_credentials() -> None:
    url = URL(
        f"https://user:pa55word@hooks.example.com:8443/services/{SECRET_PATH}?t={SECRET_QUERY}"
    )
    text = (
        f"400, message='Too many headers', url='{url}' "
        f"and bare: Cannot POST /services/{SECRET_PATH}?t={SECRET_QUERY}, other "
        "http://elsewhere.example/with/a/path?q=1"
    )
    out = sender.scrub(text, url)
    for secret in (*SECRETS, "pa55word", "user:"):
        assert secret not in out
    assert "https://hooks.example.com:8443" in out
    assert "http://elsewhere.example" in out and "/with/a/path" not in out


def test_describe_error_uses_the_message_not_the_url() -> None:
    url = URL(f"http://127.0.0.1:9/{SECRET_PATH}?token={SECRET_QUERY}")
    exc = aiohttp.ClientResponseError(
        None,  # type: ignore[arg-type]
        (),
        status=400,
        message="Too many headers received",
    )
    text = sender.describe_error(exc, url)
    assert text == "ClientResponseError from 127.0.0.1:9: Too many headers received"


# -- a hostile receiver, end to end ------------------------------------------------------


MODES = ("headers", "status", "reset", "echo")


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer by the first path segment: the ways a receiver breaks aiohttp's client."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await reader.readexactly(length)
        path = head.split(b" ", 2)[1]
        mode = path.split(b"/")[1].decode()
        if mode == "headers":
            many = b"".join(b"X-Header-%d: v\r\n" % i for i in range(1000))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" + many + b"\r\n")
        elif mode == "status":
            writer.write(b"HTTP/1.1 abc " + path + b"\r\nContent-Length: 0\r\n\r\n")
        elif mode == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:  # a framework's 404 page quoting the request line
            body = b"Cannot POST " + path
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n" % len(body))
            writer.write(body)
        await writer.drain()
    finally:
        writer.close()


@pytest.fixture
async def hostile() -> AsyncIterator[int]:
    server = await asyncio.start_server(_answer, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


@pytest.fixture
def log_output(monkeypatch: pytest.MonkeyPatch) -> io.BytesIO:
    """The JSON log lines this test writes."""
    out = io.BytesIO()
    assert logs._buffer is not None
    logs.flush()
    monkeypatch.setattr(logs._buffer, "_out", out)
    return out


async def test_errors_from_a_hostile_receiver_name_the_host_only(
    make_client: Any, hostile: int, log_output: io.BytesIO
) -> None:
    client = await make_client(max_retries=0, failures_before_disable=-1)
    hooks: dict[str, str] = {}
    for mode in MODES:
        resp = await client.post(
            "/v1/webhooks", json=webhook_body(name=mode, url=hook_url(hostile, mode)), headers=ADMIN
        )
        assert resp.status == 201
        hooks[mode] = (await resp.json())["id"]
    # Someone listening for failures: the operational event carries last_error too.
    await client.post(
        "/v1/webhooks",
        json=webhook_body(url="http://127.0.0.1:9/ops", event_types=["dispatcher.*"]),
        headers=ADMIN,
    )
    resp = await client.post(
        "/v1/events", json={"type": "order.created", "data": {}}, headers=PUBLISHER
    )
    assert resp.status == 202

    deadline = time.monotonic() + 30
    while True:
        page = await (
            await client.get("/v1/deliveries?status=failed&limit=500", headers=ADMIN)
        ).json()
        failed = {d["webhook_id"]: d for d in page["data"] if d["event_type"] == "order.created"}
        if len(failed) == len(MODES):
            break
        assert time.monotonic() < deadline, f"only {sorted(failed)} failed"
        await asyncio.sleep(0.05)

    host = f"127.0.0.1:{hostile}"
    for mode, webhook_id in hooks.items():
        delivery = await (
            await client.get(f"/v1/deliveries/{failed[webhook_id]['id']}", headers=ADMIN)
        ).json()
        if mode != "echo":  # a 404 is an answer, not an error
            assert host in delivery["last_error"], (mode, delivery["last_error"])
            assert host in delivery["attempts"][0]["error"]
        # The attempt's `url` is the webhook's own URL, shown like GET /v1/webhooks/{id} does;
        # the receiver's own answer body is stored as it came.
        for attempt in delivery["attempts"]:
            attempt.pop("url")
            attempt.pop("response_body")
        shown = orjson.dumps(delivery).decode()
        for secret in SECRETS:
            assert secret not in shown, (mode, shown)

    async def announced() -> list[Any]:
        events = await (
            await client.get("/v1/events?type=dispatcher.delivery.failed", headers=ADMIN)
        ).json()
        return [e for e in events["data"] if e["data"]["webhook_id"] in hooks.values()]

    while len(await announced()) < len(MODES):
        assert time.monotonic() < deadline, "the failures were not announced"
        await asyncio.sleep(0.05)
    for event in await announced():
        if event["data"]["webhook_id"] != hooks["echo"]:
            assert host in event["data"]["last_error"]
        for secret in SECRETS:
            assert secret not in orjson.dumps(event["data"]).decode()

    logs.flush()
    text = log_output.getvalue().decode()
    lines = [orjson.loads(line) for line in text.splitlines() if line.startswith("{")]
    attempts = [ln for ln in lines if ln.get("webhook_id") in hooks.values() and "attempt" in ln]
    assert {ln["webhook_id"] for ln in attempts} == set(hooks.values()), text
    for ln in attempts:
        assert ln["host"] == "127.0.0.1"
    errors = [ln["error"] for ln in attempts if ln.get("error")]
    assert len(errors) == len(MODES) - 1 and all(host in e for e in errors), errors
    echo = [ln for ln in attempts if ln["webhook_id"] == hooks["echo"]]
    assert "Cannot POST" in echo[0]["response_body"]
    for secret in SECRETS:
        assert secret not in text
