"""``dispatcher serve`` closes connections that do not finish their request headers within
``DISPATCHER_HEADER_TIMEOUT_SECONDS``, and keep-alive connections left idle as long, while
requests that do arrive are answered as usual."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ADMIN_TOKEN

REPO = Path(__file__).resolve().parent.parent
# The server is told 1 s; a connection still open after this long was not closed by it (the
# default before the fix held them 75 s).
CLOSED_WITHIN = 20.0

pytestmark = pytest.mark.timeout(120)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get_status(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
        status: int = resp.status
        return status


@pytest.fixture
def port(database_url: str, tmp_path: Path) -> Iterator[int]:
    """A ``dispatcher serve`` process with a 1 s header timeout, on the test database."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCHER_")}
    env.update(
        {
            "DISPATCHER_DATABASE_URL": database_url,
            "DISPATCHER_DATA_DIR": str(tmp_path),
            "DISPATCHER_PORT": str(port),
            "DISPATCHER_ADMIN_TOKEN": ADMIN_TOKEN,
            "DISPATCHER_LOG_FORMAT": "json",
            "DISPATCHER_HEADER_TIMEOUT_SECONDS": "1",
            "PYTHONPATH": str(REPO),
        }
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dispatcher", "serve"], env=env, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 45
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if get_status(port) == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(30)


def connect(port: int, sent: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(sent)
    return sock


def wait_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (fails if it never does)."""
    sock.settimeout(CLOSED_WITHIN)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        raise AssertionError(f"still open after {CLOSED_WITHIN}s (got {received!r})") from None
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    return received


def test_connections_without_complete_headers_are_closed(port: int) -> None:
    held = [connect(port, b"GET /heal") for _ in range(25)]
    held += [connect(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ") for _ in range(25)]
    held.append(connect(port, b""))
    # Requests that do arrive are answered while those are held.
    assert get_status(port) == 200
    for sock in held:
        assert b"HTTP/1.1 200" not in wait_closed(sock)
    assert get_status(port) == 200


def test_a_trickle_of_header_bytes_does_not_keep_a_connection(port: int) -> None:
    sock = connect(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    deadline = time.monotonic() + CLOSED_WITHIN
    while time.monotonic() < deadline:
        # One more header byte whenever the server has not closed within 0.2 s.
        readable, _, _ = select.select([sock], [], [], 0.2)
        if readable:
            break
        try:
            sock.sendall(b"X")
        except (BrokenPipeError, ConnectionResetError):
            break
    assert b"HTTP/1.1 200" not in wait_closed(sock)


def test_an_idle_keep_alive_connection_is_closed_after_its_answer(port: int) -> None:
    sock = connect(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    received = wait_closed(sock)
    assert received.startswith(b"HTTP/1.1 200"), received
    assert b"connection: close" not in received.lower()  # kept alive, then closed when idle
