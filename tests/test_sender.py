"""Every sending guarantee, on both outbound clients (pyreqwest, the default, and aiohttp):
private addresses refused after DNS (a name re-pointed after a first send too), literal private
IPs refused, no redirects, no proxies, no cookies, 4 KiB of an answer, per-attempt timeouts,
keep-alive reuse, HTTPS verified against the name while the address is pinned, the user agent,
and error texts that name the host only. Real receivers on loopback; no database."""

from __future__ import annotations

import gzip
import ipaddress
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from yarl import URL

from dispatcher import http_client, targets
from dispatcher.config import ConfigError, load_settings
from dispatcher.sender import USER_AGENT, AttemptResult, Sender
from dispatcher.sender_aiohttp import AiohttpSender
from dispatcher.sender_reqwest import ReqwestSender
from tests.helpers import Gate
from tests.receiver import Receiver

pytestmark = pytest.mark.timeout(60)

CLIENTS = ["pyreqwest", "aiohttp"]
SECRET_PATH = "T0/B0SECRETPATH91ab"
SECRET_QUERY = "SECRETQUERY5c2e"
NAME = "hooks.dispatcher-test.example"

MakeSender = Callable[..., Sender]


def make(kind: str, **options: Any) -> Sender:
    """A sender of ``kind`` (strict unless ``allow_private=True``)."""
    options.setdefault("allow_private", False)
    if kind == "aiohttp":
        options.pop("max_clients", None)
        return AiohttpSender(**options)
    return ReqwestSender(**options)


@pytest.fixture(params=CLIENTS)
async def make_sender(request: pytest.FixtureRequest) -> AsyncIterator[MakeSender]:
    """Build senders of the parametrized kind; all closed at the end."""
    made: list[Sender] = []

    def build(**options: Any) -> Sender:
        made.append(make(request.param, **options))
        return made[-1]

    yield build
    for sender in made:
        await sender.close()


@pytest.fixture
def names(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Test names and the address each resolves to (change it to re-point a name); a name
    mapped to "" does not resolve."""
    table: dict[str, str] = {}
    real = socket.getaddrinfo

    def fake_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name in table:
            if not table[name]:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return real(table[name], port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    return table


@pytest.fixture
def loopback_is_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """127.0.0.1 stands for a public address; every other address is judged as usual, so
    127.0.0.2 is still the inside network."""
    real = targets.is_forbidden_address
    public = ipaddress.ip_address("127.0.0.1")
    monkeypatch.setattr(targets, "is_forbidden_address", lambda a: a != public and real(a))


async def post(sender: Sender, url: str, timeout: float = 5.0) -> AttemptResult:
    return await sender.send(
        url=URL(url), headers={"content-type": "application/json"}, body=b"{}", timeout=timeout
    )


def hook(host: str, port: int, path: str = "/hook") -> str:
    """A URL with a secret in its path and query."""
    return f"http://{host}:{port}{path}/{SECRET_PATH}?token={SECRET_QUERY}"


def assert_clean(result: AttemptResult) -> None:
    """The error names the host, never the URL's path or query."""
    assert result.error is not None
    assert SECRET_PATH not in result.error and SECRET_QUERY not in result.error, result.error
    assert "B0SECRETPATH" not in result.error


@pytest.fixture
async def inside() -> AsyncIterator[Receiver]:
    """A receiver at 127.0.0.2: the inside network no webhook may reach."""
    r = Receiver(host="127.0.0.2")
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


def respond(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
    async def responder(request: web.Request, _n: int) -> web.StreamResponse:
        return await handler(request)

    return responder


def route(
    receiver: Receiver, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> None:
    """Answer every request under /hook with ``handler``."""
    receiver.responders[f"/hook/{SECRET_PATH}"] = respond(handler)


# -- private addresses ------------------------------------------------------------------------


async def test_a_name_resolving_to_a_private_address_is_refused(
    make_sender: MakeSender, receiver: Receiver, names: dict[str, str]
) -> None:
    names[NAME] = "127.0.0.1"
    result = await post(make_sender(), hook(NAME, receiver.port))
    assert result.error_kind == "blocked"
    assert result.status_code is None
    assert result.error == f"blocked: {NAME} resolves to a private or reserved address"
    assert receiver.requests == []


async def test_a_name_re_pointed_inside_after_a_first_send_is_not_reached(
    make_sender: MakeSender,
    receiver: Receiver,
    inside: Receiver,
    names: dict[str, str],
    loopback_is_public: None,
) -> None:
    async def close_after(_request: web.Request) -> web.StreamResponse:
        answer = web.Response(text="ok")
        answer.force_close()  # the next attempt must connect, so resolve, again
        return answer

    route(receiver, close_after)
    route(inside, close_after)
    sender = make_sender(dns_ttl=0)
    names[NAME] = "127.0.0.1"
    first = await post(sender, hook(NAME, receiver.port))
    assert first.status_code == 200, first.error
    # Now the name points inside: sending there unchecked would reach that receiver.
    names[NAME] = "127.0.0.2"
    second = await post(sender, hook(NAME, inside.port))
    assert second.error_kind == "blocked", second.error
    assert inside.requests == []
    assert len(receiver.requests) == 1


async def test_pinned_address_is_checked_again_when_the_answer_expires(
    receiver: Receiver, names: dict[str, str], loopback_is_public: None
) -> None:
    """pyreqwest: within the DNS TTL the pinned client (and its connection) serves the name;
    after it, the name is resolved and checked again."""
    sender = ReqwestSender(allow_private=False, dns_ttl=10)
    now = [1000.0]
    sender.clock = lambda: now[0]
    try:
        names[NAME] = "127.0.0.1"
        assert (await post(sender, hook(NAME, receiver.port))).status_code == 200
        names[NAME] = "10.0.0.1"
        now[0] += 5
        assert (await post(sender, hook(NAME, receiver.port))).status_code == 200
        now[0] += 6
        late = await post(sender, hook(NAME, receiver.port))
        assert late.error_kind == "blocked", late.error
        assert len(receiver.requests) == 2
    finally:
        await sender.close()


async def test_a_name_the_url_spells_differently_is_still_pinned(
    make_sender: MakeSender,
    receiver: Receiver,
    names: dict[str, str],
    loopback_is_public: None,
) -> None:
    """Upper case and a trailing dot name the same host; the name is resolved and pinned as
    the client parses it (it is not in real DNS, so only the pin reaches the receiver)."""
    sender = make_sender()
    names[NAME] = "127.0.0.1"
    names[NAME + "."] = "127.0.0.1"
    for spelled in (NAME.upper(), NAME + "."):
        result = await post(sender, hook(spelled, receiver.port))
        assert result.status_code == 200, (spelled, result.error)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "[::ffff:127.0.0.1]", "[::1]", "169.254.169.254", "127.1", "2130706433"]
)
async def test_a_literal_private_address_is_refused(
    make_sender: MakeSender, receiver: Receiver, host: str
) -> None:
    result = await post(make_sender(), hook(host, receiver.port), timeout=2)
    assert result.status_code is None
    if host in ("127.1", "2130706433"):
        # Non-canonical IPv4: pyreqwest reads it as 127.0.0.1 and refuses that; aiohttp
        # refuses the URL itself. Neither gets through.
        assert result.error_kind in ("blocked", "connection"), result.error
    else:
        assert result.error_kind == "blocked", result.error
        assert "private or reserved" in (result.error or "")
    assert receiver.requests == []


async def test_private_targets_allowed_reach_loopback(
    make_sender: MakeSender, receiver: Receiver
) -> None:
    result = await post(make_sender(allow_private=True), hook("localhost", receiver.port))
    assert result.status_code == 200, result.error
    assert result.response_body == "ok"


# -- what is sent and read ---------------------------------------------------------------------


async def test_a_redirect_is_recorded_not_followed(
    make_sender: MakeSender, receiver: Receiver
) -> None:
    async def moved(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": "/elsewhere"}, text="moved")

    route(receiver, moved)
    result = await post(make_sender(allow_private=True), hook("127.0.0.1", receiver.port))
    assert result.status_code == 302
    assert result.response_body == "moved"
    assert [r.path for r in receiver.requests] == [f"/hook/{SECRET_PATH}"]


async def test_at_most_4_kib_of_a_large_answer_is_kept(
    make_sender: MakeSender, receiver: Receiver
) -> None:
    async def large(_request: web.Request) -> web.StreamResponse:
        return web.Response(text="x" * 100_000, headers={"Retry-After": "7"})

    route(receiver, large)
    sender = make_sender(allow_private=True)
    result = await post(sender, hook("127.0.0.1", receiver.port))
    assert result.status_code == 200
    assert result.response_body == "x" * 4096
    assert result.retry_after == "7"


async def test_an_unasked_for_gzip_answer_is_stored_decoded(
    make_sender: MakeSender, receiver: Receiver
) -> None:
    async def zipped(_request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=gzip.compress(b'{"ok": true}'),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    route(receiver, zipped)
    result = await post(make_sender(allow_private=True), hook("127.0.0.1", receiver.port))
    assert result.response_body == '{"ok": true}'
    [got] = receiver.requests
    assert "Accept-Encoding" not in got.headers


async def test_user_agent_sent_and_cookies_never_kept(
    make_sender: MakeSender, receiver: Receiver
) -> None:
    async def cookie(_request: web.Request) -> web.StreamResponse:
        answer = web.Response(text="ok")
        answer.set_cookie("sid", "abc")
        return answer

    route(receiver, cookie)
    sender = make_sender(allow_private=True)
    for _ in range(2):
        assert (await post(sender, hook("127.0.0.1", receiver.port))).status_code == 200
    first, second = receiver.requests
    assert first.headers["User-Agent"] == USER_AGENT
    assert "Cookie" not in second.headers


async def test_proxy_variables_are_ignored(
    make_sender: MakeSender, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy would connect wherever it likes, past the pinned address."""
    proxy = Receiver()
    await proxy.start()
    try:
        for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"):
            monkeypatch.setenv(var, f"http://127.0.0.1:{proxy.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        result = await post(make_sender(allow_private=True), hook("127.0.0.1", receiver.port))
        assert result.status_code == 200
        assert proxy.requests == []
        assert len(receiver.requests) == 1
    finally:
        await proxy.stop()


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "private-allowed"])
async def test_sequential_attempts_reuse_one_connection(
    make_sender: MakeSender,
    receiver: Receiver,
    names: dict[str, str],
    loopback_is_public: None,
    strict: bool,
) -> None:
    peers: set[Any] = set()

    async def count(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        peers.add(request.transport.get_extra_info("peername"))
        return web.Response(text="ok")

    route(receiver, count)
    names[NAME] = "127.0.0.1"
    sender = make_sender(allow_private=not strict)
    host = NAME if strict else "127.0.0.1"
    for _ in range(5):
        assert (await post(sender, hook(host, receiver.port))).status_code == 200
    assert len(receiver.requests) == 5
    assert len(peers) == 1


async def test_pinned_clients_are_bounded(
    receiver: Receiver, names: dict[str, str], loopback_is_public: None
) -> None:
    """pyreqwest: one client per name, at most max_clients of them; an evicted name is
    pinned afresh when it comes back."""
    sender = ReqwestSender(allow_private=False, max_clients=2)
    try:
        hosts = [f"h{i}.{NAME}" for i in range(4)]
        for host in hosts:
            names[host] = "127.0.0.1"
        for host in [*hosts, hosts[0]]:
            result = await post(sender, hook(host, receiver.port))
            assert result.status_code == 200, (host, result.error)
            assert sender.clients <= 2
        assert len(receiver.requests) == 5
    finally:
        await sender.close()


# -- failures and their texts ------------------------------------------------------------------


async def test_a_slow_receiver_times_out(make_sender: MakeSender, receiver: Receiver) -> None:
    gate = Gate()
    receiver.responders[f"/hook/{SECRET_PATH}"] = gate
    try:
        result = await post(make_sender(allow_private=True), hook("127.0.0.1", receiver.port), 0.3)
    finally:
        gate.opened.set()
    assert result.error_kind == "timeout"
    assert result.status_code is None
    assert result.error == f"timed out after 0.3s waiting for 127.0.0.1:{receiver.port}"
    assert gate.arrived == 1


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "private-allowed"])
async def test_connection_refused_is_a_connection_error(
    make_sender: MakeSender, names: dict[str, str], loopback_is_public: None, strict: bool
) -> None:
    names[NAME] = "127.0.0.1"
    # With private targets allowed the client resolves names itself: NAME is not in DNS.
    host = NAME if strict else "127.0.0.1"
    result = await post(make_sender(allow_private=not strict), hook(host, closed_port()))
    assert result.error_kind == "connection"
    assert result.status_code is None
    assert (result.error or "").split(":")[0].endswith(f"Error from {host}"), result.error
    assert_clean(result)


async def test_a_name_that_does_not_resolve_is_a_connection_error(
    make_sender: MakeSender, names: dict[str, str]
) -> None:
    names[NAME] = ""
    result = await post(make_sender(), hook(NAME, 80))
    assert result.error_kind == "connection"
    assert (result.error or "").startswith(f"DNS lookup failed for {NAME}:80: "), result.error
    assert_clean(result)


async def test_a_name_that_does_not_resolve_with_private_targets_allowed(
    make_sender: MakeSender,
) -> None:
    """Here the client resolves itself (reserved .invalid never resolves)."""
    result = await post(make_sender(allow_private=True), hook("nowhere.invalid", 80))
    assert result.error_kind == "connection"
    assert (result.error or "").startswith("DNS lookup failed for nowhere.invalid:80: ")
    assert_clean(result)


# -- HTTPS on a pinned address -----------------------------------------------------------------


@dataclass
class Certificates:
    ca: bytes
    chain: Path
    key: Path


GOOD = "good.dispatcher-test.example"
BAD = "bad.dispatcher-test.example"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Certificates]:
    """A test CA and a certificate it issued for GOOD only, made with the openssl CLI."""
    work = tmp_path_factory.mktemp("tls")
    openssl = shutil.which("openssl") or "openssl"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=work, check=True, capture_output=True)

    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=Dispatcher test CA")  # fmt: skip
    run("req", *ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", f"/CN={GOOD}")
    (work / "ext.cnf").write_text(
        f"subjectAltName=DNS:{GOOD}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
    )
    run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "ext.cnf")  # fmt: skip
    yield Certificates((work / "ca.pem").read_bytes(), work / "leaf.pem", work / "leaf.key")


@pytest.fixture
async def tls_port(certificates: Certificates) -> AsyncIterator[int]:
    """An HTTPS server on 127.0.0.1 presenting GOOD's certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates.chain, certificates.key)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    assert site._server is not None
    try:
        yield site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    finally:
        await runner.cleanup()


async def _ok(_request: web.Request) -> web.StreamResponse:
    return web.Response(text="tls ok")


async def test_https_is_verified_against_the_name_on_a_pinned_address(
    make_sender: MakeSender,
    tls_port: int,
    certificates: Certificates,
    names: dict[str, str],
    loopback_is_public: None,
) -> None:
    names[GOOD] = names[BAD] = "127.0.0.1"
    sender = make_sender(extra_ca=certificates.ca)
    good = await sender.send(
        url=URL(f"https://{GOOD}:{tls_port}/hook"), headers={}, body=b"{}", timeout=5
    )
    assert good.status_code == 200, good.error
    assert good.response_body == "tls ok"
    # The same server and CA, reached under a name its certificate does not carry.
    bad = await post(sender, f"https://{BAD}:{tls_port}/hook/{SECRET_PATH}?token={SECRET_QUERY}")
    assert bad.error_kind == "connection" and bad.status_code is None
    assert "certificate" in (bad.error or "").lower(), bad.error
    assert BAD in (bad.error or "")
    assert_clean(bad)


async def test_https_from_an_unknown_issuer_is_refused(
    make_sender: MakeSender, tls_port: int, names: dict[str, str], loopback_is_public: None
) -> None:
    names[GOOD] = "127.0.0.1"
    result = await post(make_sender(), f"https://{GOOD}:{tls_port}/hook/{SECRET_PATH}")
    assert result.error_kind == "connection" and result.status_code is None
    assert (
        "certificate" in (result.error or "").lower() or "issuer" in (result.error or "").lower()
    ), result.error
    assert_clean(result)


# -- which client ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "expected"),
    [({}, ReqwestSender), ({"DISPATCHER_HTTP_CLIENT": "aiohttp"}, AiohttpSender)],
)
async def test_the_setting_picks_the_client(
    environ: dict[str, str], expected: type[Sender]
) -> None:
    sender = http_client.create_sender(load_settings(environ))
    try:
        assert isinstance(sender, expected)
    finally:
        await sender.close()


def test_an_unknown_client_is_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="DISPATCHER_HTTP_CLIENT"):
        load_settings({"DISPATCHER_HTTP_CLIENT": "curl"})
