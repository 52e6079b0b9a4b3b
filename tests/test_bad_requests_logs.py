"""Malformed HTTP requests are logged as one JSON line each, naming the error, never their
bytes: aiohttp's own loggers go through the project's logging, so a bearer token in a broken
header never reaches the log (before, aiohttp wrote a plain-text traceback quoting it)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import http_exceptions

from dispatcher import logs
from tests.helpers import ADMIN_TOKEN

REPO = Path(__file__).resolve().parent.parent
SECRET = "s3cr3t-bearer-0123456789abcdef"

pytestmark = pytest.mark.timeout(120)

# Each one is refused by aiohttp's parser before any handler (or our middleware) sees it.
BAD_REQUESTS = {
    "bare LF line endings": (
        f"GET /v1/webhooks HTTP/1.1\nHost: x\nAuthorization: Bearer {SECRET}\n\n"
    ),
    "obs-fold": (
        f"GET /v1/webhooks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer\r\n {SECRET}\r\n\r\n"
    ),
    "space before the colon": (
        f"GET /v1/webhooks HTTP/1.1\r\nHost: x\r\nAuthorization : Bearer {SECRET}\r\n\r\n"
    ),
    "control character": (
        f"GET /v1/webhooks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \x01{SECRET}\r\n\r\n"
    ),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Served:
    port: int
    log: Path
    proc: subprocess.Popen[bytes]
    # Where the log stood once the server answered (after the start-up banner on stderr).
    ready_at: int = 0

    def stop(self) -> str:
        """Stop the server; the log written since it was ready."""
        self.proc.terminate()
        self.proc.wait(30)
        return self.log.read_bytes()[self.ready_at :].decode()


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[Served]:
    """``dispatcher serve`` on the test database, stdout and stderr into one log file."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCHER_")}
    env.update(
        {
            "DISPATCHER_DATABASE_URL": database_url,
            "DISPATCHER_DATA_DIR": str(tmp_path),
            "DISPATCHER_PORT": str(port),
            "DISPATCHER_ADMIN_TOKEN": ADMIN_TOKEN,
            "DISPATCHER_LOG_FORMAT": "json",
            "PYTHONPATH": str(REPO),
        }
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dispatcher", "serve"], env=env, stdout=out, stderr=out
        )
    served = Served(port, log, proc)
    try:
        deadline = time.monotonic() + 45
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5):
                    served.ready_at = log.stat().st_size
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield served
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)


def send_raw(port: int, request: str) -> bytes:
    """Send ``request`` as it is and read the answer until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request.encode("latin-1"))
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def test_malformed_requests_log_one_json_line_each_without_the_token(served: Served) -> None:
    for what, request in BAD_REQUESTS.items():
        answer = send_raw(served.port, request)
        assert answer.split(b" ", 2)[1] == b"400", (what, answer[:200])
    text = served.stop()
    assert SECRET not in text
    parsed = []
    for line in text.splitlines():
        try:
            parsed.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}\n{text}") from None
    bad = [p for p in parsed if p.get("event") == "bad_http_request"]
    assert len(bad) == len(BAD_REQUESTS), text
    for entry in bad:
        assert entry["level"] in ("info", "warning")
        assert entry["error"] in ("BadHttpMessage", "BadStatusLine"), entry
        assert entry["reason"] and len(entry["reason"]) <= 120
        assert "Bearer" not in entry["reason"]


@pytest.mark.parametrize(
    "exc",
    [
        http_exceptions.BadStatusLine(f"GET / {SECRET}"),
        http_exceptions.BadStatusLine(repr(f"GET / Bearer {SECRET}".encode())),
        http_exceptions.InvalidHeader(f"Authorization: Bearer {SECRET}".encode()),
        http_exceptions.LineTooLong(f"Bearer {SECRET}", "8190", "9000"),
        http_exceptions.BadHttpMethod(f"GE\x01T {SECRET}"),
        http_exceptions.BadHttpMessage(f"Invalid header value char:\n\n  b'Bearer\\r\\n {SECRET}'"),
        ValueError(SECRET),
    ],
    ids=repr,
)
def test_the_reason_quotes_nothing_received(exc: BaseException) -> None:
    reason = logs._reason(exc)
    assert SECRET not in reason
    assert reason == "" or reason[0].isalpha()
