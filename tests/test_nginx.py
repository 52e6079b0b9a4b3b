"""deploy/nginx.conf in front of Dispatcher, as shipped but for its ports, paths and server name:
Debian's nginx terminates TLS (a self-signed certificate made here) and the README's tour runs
through it over HTTPS, with a real receiver behind Dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict
from standardwebhooks.webhooks import Webhook

from dispatcher.app import create_app
from dispatcher.auth import Tokens
from tests.conftest import make_settings
from tests.helpers import ADMIN, ADMIN_TOKEN, PUBLISH_TOKEN, webhook_body
from tests.receiver import Receiver

REPO = Path(__file__).resolve().parent.parent
SITE = REPO / "deploy" / "nginx.conf"
NGINX = "/usr/sbin/nginx"
SERVER_NAME = "dispatcher.test"
# The whole certificate and nginx set-up fits well inside a minute, even on a busy machine.
START_DEADLINE = 30.0

pytestmark = pytest.mark.timeout(120)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ipv6_available() -> bool:
    """Whether this host can listen on IPv6 (some containers cannot)."""
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def replace(text: str, old: str, new: str) -> str:
    """``text`` with ``old`` replaced, which must be there: the shipped file is what is tested."""
    assert old in text, f"deploy/nginx.conf no longer has {old!r}"
    return text.replace(old, new)


def render_site(http_port: int, https_port: int, upstream_port: int, work: Path) -> str:
    """The shipped site with this test's ports, paths and server name, and nothing else."""
    site = SITE.read_text()
    site = replace(site, "server 127.0.0.1:8080 ", f"server 127.0.0.1:{upstream_port} ")
    site = re.sub(r"listen (\[::\]:)?80;", lambda m: f"listen {m[1] or ''}{http_port};", site)
    site = re.sub(r"listen (\[::\]:)?443 ", lambda m: f"listen {m[1] or ''}{https_port} ", site)
    site = replace(site, "/etc/ssl/certs/dispatcher.example.com.pem", str(work / "cert.pem"))
    site = replace(site, "/etc/ssl/private/dispatcher.example.com.key", str(work / "key.pem"))
    site = replace(site, "/var/log/nginx/", f"{work}/")
    site = replace(site, "dispatcher.example.com", SERVER_NAME)
    if not ipv6_available():
        site = re.sub(r"^\s*listen \[::\].*$", "", site, flags=re.MULTILINE)
    return site


MAIN_CONF = """\
daemon off;
worker_processes 1;
{user}
pid {work}/nginx.pid;
error_log {work}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    include {work}/site.conf;
}}
"""


@dataclass
class Proxy:
    """nginx serving the site: its HTTPS and HTTP base URLs and the CA to trust."""

    https: str
    http: str
    ssl: ssl.SSLContext


def make_certificate(work: Path) -> None:
    """A self-signed certificate for SERVER_NAME and 127.0.0.1, with the openssl CLI."""
    subprocess.run(
        [
            shutil.which("openssl") or "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={SERVER_NAME}",
            "-addext",
            f"subjectAltName=DNS:{SERVER_NAME},IP:127.0.0.1",
            "-keyout",
            str(work / "key.pem"),
            "-out",
            str(work / "cert.pem"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


@contextlib.contextmanager
def nginx(upstream_port: int) -> Iterator[Proxy]:
    """Run nginx with the rendered site in front of ``upstream_port`` until the block ends."""
    # A short path of its own (not pytest's tmp_path, which nginx's workers cannot traverse).
    work = Path(tempfile.mkdtemp(prefix="dsp-nginx-", dir="/tmp"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        make_certificate(work)
        http_port, https_port = free_port(), free_port()
        (work / "site.conf").write_text(render_site(http_port, https_port, upstream_port, work))
        user = "user root;" if os.geteuid() == 0 else ""
        (work / "nginx.conf").write_text(MAIN_CONF.format(work=work, user=user))
        check = subprocess.run(
            [NGINX, "-t", "-p", str(work), "-c", str(work / "nginx.conf")],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert check.returncode == 0, check.stderr
        proc = subprocess.Popen(
            [NGINX, "-p", str(work), "-c", str(work / "nginx.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_listening(proc, https_port, work)
        context = ssl.create_default_context(cafile=str(work / "cert.pem"))
        yield Proxy(f"https://127.0.0.1:{https_port}", f"http://127.0.0.1:{http_port}", context)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGQUIT)  # graceful shutdown
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def wait_listening(proc: subprocess.Popen[bytes], port: int, work: Path) -> None:
    """Until nginx accepts connections on ``port``; fail at once if it exits."""
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            log = (work / "error.log").read_text() if (work / "error.log").exists() else ""
            raise AssertionError(f"nginx exited with {proc.returncode}: {err}\n{log}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise AssertionError(f"nginx not listening on {port} after {START_DEADLINE}s")


@pytest.fixture
async def served(
    aiohttp_client: Any, database_url: str, tmp_path: Path, db: Any
) -> AsyncIterator[tuple[TestClient[Any, Any], list[tuple[str, CIMultiDict[str]]]]]:
    """Dispatcher on a loopback port, recording the headers of every request it gets."""
    seen: list[tuple[str, CIMultiDict[str]]] = []

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        seen.append((request.path, CIMultiDict(request.headers)))
        result: web.StreamResponse = await handler(request)
        return result

    settings = make_settings(database_url, tmp_path)
    app = create_app(settings, database_url, Tokens(ADMIN_TOKEN, (PUBLISH_TOKEN,)))
    app.middlewares.insert(0, record)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    yield client, seen


async def wait_delivered(
    http: aiohttp.ClientSession, base: str, webhook_id: str, count: int
) -> list[dict[str, Any]]:
    """Poll the delivery list through the proxy until ``count`` are ``success``."""
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        async with http.get(
            f"{base}/v1/deliveries", params={"webhook_id": webhook_id}, headers=ADMIN
        ) as resp:
            assert resp.status == 200
            rows: list[dict[str, Any]] = (await resp.json())["data"]
        if sum(r["status"] == "success" for r in rows) >= count:
            return rows
        assert asyncio.get_running_loop().time() < deadline, rows
        await asyncio.sleep(0.1)


async def test_the_tour_through_nginx_over_https(
    served: tuple[TestClient[Any, Any], list[tuple[str, CIMultiDict[str]]]], receiver: Receiver
) -> None:
    client, seen = served
    upstream_port = client.server.port
    assert upstream_port is not None
    with nginx(upstream_port) as proxy:
        connector = aiohttp.TCPConnector(ssl=proxy.ssl)
        async with aiohttp.ClientSession(connector=connector) as http:
            base = proxy.https
            # Register a webhook.
            async with http.post(
                f"{base}/v1/webhooks", json=webhook_body(url=receiver.url()), headers=ADMIN
            ) as resp:
                assert resp.status == 201, await resp.text()
                webhook = await resp.json()
            # Publish, with the producer's own request id.
            async with http.post(
                f"{base}/v1/events",
                json={"type": "order.created", "id": "order-42", "data": {"order": 42}},
                headers={**ADMIN, "X-Request-Id": "tour-42"},
            ) as resp:
                assert resp.status == 202, await resp.text()
                assert (await resp.json())["deliveries"] == 1
                assert resp.headers["X-Request-Id"] == "tour-42"
            # The receiver gets it, signed with the webhook's secret.
            got = (await receiver.wait_for(1))[0]
            event = Webhook(webhook["secret"]).verify(got.body, got.headers)
            assert event["id"] == "order-42" and event["data"] == {"order": 42}
            # A batch, and the delivery log through the proxy.
            async with http.post(
                f"{base}/v1/events/batch",
                json={"events": [{"type": "order.paid", "data": {"order": 42}}]},
                headers=ADMIN,
            ) as resp:
                assert resp.status == 202, await resp.text()
            rows = await wait_delivered(http, base, webhook["id"], 2)
            assert {r["event_type"] for r in rows} == {"order.created", "order.paid"}

            # What Dispatcher saw of the publish: the client's address, the scheme and host
            # the client used, and the request id.
            published = next(h for path, h in seen if path == "/v1/events")
            assert published["X-Forwarded-Proto"] == "https"
            assert published["X-Forwarded-For"] == "127.0.0.1"
            assert published["X-Real-IP"] == "127.0.0.1"
            assert published["X-Forwarded-Host"] == "127.0.0.1"
            assert published["X-Forwarded-Port"] == base.rsplit(":", 1)[1]
            assert published["X-Request-Id"] == "tour-42"
            # Without one, nginx gives the request an id, which Dispatcher echoes.
            async with http.get(f"{base}/readyz") as resp:
                assert resp.status == 200
                assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["X-Request-Id"])

            # The console's cookies are Secure behind TLS (X-Forwarded-Proto reached it).
            async with http.get(f"{base}/admin/login") as resp:
                assert resp.status == 200
                assert "secure" in resp.headers["Set-Cookie"].lower()

            # Dispatcher answers a too-large event itself (problem JSON, not nginx's page).
            big = {"type": "order.created", "data": {"pad": "x" * 600_000}}
            async with http.post(f"{base}/v1/events", json=big, headers=ADMIN) as resp:
                assert resp.status == 413
                assert resp.content_type == "application/problem+json"
            # Scrapes from inside are let through.
            async with http.get(f"{base}/metrics") as resp:
                assert resp.status == 200
                assert "dispatcher_events_ingested_total" in await resp.text()

        # Plain HTTP is only a redirect to HTTPS.
        async with (
            aiohttp.ClientSession() as plain,
            plain.get(f"{proxy.http}/v1/webhooks", allow_redirects=False) as resp,
        ):
            assert resp.status == 301
            assert resp.headers["Location"].startswith("https://127.0.0.1")
