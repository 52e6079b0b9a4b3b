"""An answer no one foresaw never strands a delivery: ``Retry-After: ²`` (a digit to
``str.isdigit``, not to ``float``) and, more generally, anything that breaks while an attempt
is made or classified is recorded as a failed attempt and goes through the retry rule."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from dispatcher import retry
from tests.helpers import Client, MakeClient, create_webhook, publish
from tests.test_delivery import FAST, delivery_of, wait_status

NOW = datetime(2030, 1, 1, tzinfo=UTC)


# Superscripts, Arabic-Indic digits, a mathematical bold nine, a circled one.
@pytest.mark.parametrize(
    "value", ["\u00b2", "\u00b3", "\u0661\u0662", "\U0001d7d7", "1\u00b2", "\u2460", " \u00b2 "]
)
def test_retry_after_with_non_ascii_digits_is_ignored(value: str) -> None:
    assert value.strip().isdigit()  # digits to str.isdigit, not to float()
    assert retry.parse_retry_after(value, NOW) is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("0", 0.0), (" 120 ", 120.0), ("Tue, 01 Jan 2030 00:00:30 GMT", 30.0), ("soon", None)],
)
def test_retry_after_ascii_seconds_and_dates(value: str, seconds: float | None) -> None:
    assert retry.parse_retry_after(value, NOW) == seconds


@dataclass
class RawReceiver:
    """A loopback HTTP/1.1 server written on raw sockets, answering every request with
    ``answer`` byte for byte (aiohttp's server would not send such a header)."""

    answer: bytes
    port: int = 0
    requests: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                self.requests += 1
                writer.write(self.answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
async def superscript() -> AsyncIterator[RawReceiver]:
    raw = RawReceiver("HTTP/1.1 503 X\r\nRetry-After: ²\r\nContent-Length: 0\r\n\r\n".encode())
    server = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
    raw.port = server.sockets[0].getsockname()[1]
    try:
        yield raw
    finally:
        server.close()


async def test_retry_after_superscript_two_is_retried_then_failed(
    superscript: RawReceiver, make_client: MakeClient
) -> None:
    client: Client = await make_client(**FAST)
    hook = await create_webhook(client, url=superscript.url("/hook"))
    sent = await publish(client)
    delivery = await delivery_of(client, sent["id"], hook["id"])
    # The odd header is ignored: a 503 like any other, retried by the backoff, then failed.
    done = await wait_status(client, delivery["id"], "failed")
    assert done["attempt_count"] == 3
    assert [a["status_code"] for a in done["attempts"]] == [503, 503, 503]
    assert done["last_error"] == "gave up after 2 retries"
    assert superscript.requests == 3


async def test_an_attempt_that_breaks_is_recorded_and_retried_by_the_rule(
    superscript: RawReceiver, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(value: str | None, now: datetime) -> float | None:
        raise RuntimeError(f"cannot read {value!r} for http://127.0.0.1/hooks/T0/s3cr3t")

    # Any bug while classifying an answer stands for the ones no one has found yet.
    monkeypatch.setattr(retry, "parse_retry_after", broken)
    client: Client = await make_client(**FAST)
    hook = await create_webhook(client, url=superscript.url("/hooks/T0/s3cr3t"))
    sent = await publish(client)
    delivery = await delivery_of(client, sent["id"], hook["id"])
    done = await wait_status(client, delivery["id"], "failed")
    assert done["attempt_count"] == 3
    assert superscript.requests == 3
    for attempt in done["attempts"]:
        assert attempt["status_code"] == 503
        assert attempt["error"].startswith(f"RuntimeError from 127.0.0.1:{superscript.port}")
        assert "s3cr3t" not in attempt["error"]
    assert done["last_error"].startswith("RuntimeError from 127.0.0.1")
