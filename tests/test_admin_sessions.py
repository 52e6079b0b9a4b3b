"""Console sign-out and sign-in across instances: a logout is refused by every instance at once
and after a restart, the database being unreachable is a 503 page, and the login throttle slows
wrong guesses without ever locking out the admin token."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import pytest
from aiohttp.test_utils import TestClient

from admin.keys import THROTTLE
from admin.session import LoginThrottle
from dispatcher.app import create_app
from dispatcher.auth import Tokens
from tests.conftest import make_settings
from tests.helpers import ADMIN_TOKEN, PUBLISH_TOKEN
from tests.test_admin import login, signed_in

Client = TestClient[Any, Any]
WRONG = "wrong-token-0123456789"


def session_cookie(client: Client) -> str:
    """The value of the client's console session cookie."""
    cookies = client.session.cookie_jar.filter_cookies(client.make_url("/admin/"))
    return cookies["dispatcher_session"].value


async def overview_with(client: Client, cookie: str) -> int:
    """The status of the overview page for a request carrying ``cookie`` (no other cookies)."""
    client.session.cookie_jar.clear()
    client.session.cookie_jar.update_cookies(
        {"dispatcher_session": cookie}, client.make_url("/admin")
    )
    answer = await client.get("/admin/", allow_redirects=False)
    await answer.read()
    return answer.status


async def logout(client: Client, csrf: str) -> None:
    answer = await client.post("/admin/logout", data={"csrf_token": csrf}, allow_redirects=False)
    assert answer.status == 303, await answer.text()


# --------------------------------------------------------------------------------------------
# logout


async def test_a_logout_is_refused_by_every_instance_at_once(make_client: Any) -> None:
    first, second = await make_client(), await make_client()
    csrf = await signed_in(first)
    cookie = session_cookie(first)
    # Sessions are signed, not stored: the other instance accepts the cookie as it is.
    assert await overview_with(second, cookie) == 200

    await logout(first, csrf)
    # No waiting: the very next request on the other instance is refused.
    assert await overview_with(second, cookie) == 303
    assert await overview_with(first, cookie) == 303


async def test_a_logout_survives_a_restart(make_client: Any) -> None:
    before = await make_client()
    csrf = await signed_in(before)
    cookie = session_cookie(before)
    await logout(before, csrf)
    await before.close()  # the instance that saw the logout is gone

    after = await make_client()
    assert await overview_with(after, cookie) == 303
    # ... while a session that was never signed out still works there.
    fresh = await make_client()
    await signed_in(fresh)
    assert await overview_with(after, session_cookie(fresh)) == 200


class Outage:
    """A TCP proxy in front of Postgres that can be cut: the database, as the app sees it,
    becomes unreachable (open connections reset, new ones refused) and can come back."""

    def __init__(self, dsn: str) -> None:
        parts = urlsplit(dsn)
        host = parse_qs(parts.query).get("host", [parts.hostname or "127.0.0.1"])[0]
        port = parts.port or 5432
        self._unix = f"{host}/.s.PGSQL.{port}" if host.startswith("/") else None
        self._tcp = (host, port)
        self._parts = parts
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def dsn(self) -> str:
        """The DSN through the proxy."""
        netloc = f"{self._parts.username or 'postgres'}@127.0.0.1:{self.port}"
        return urlunsplit(self._parts._replace(netloc=netloc, query=""))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self._unix:
                up_reader, up_writer = await asyncio.open_unix_connection(self._unix)
            else:
                up_reader, up_writer = await asyncio.open_connection(*self._tcp)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@pytest.fixture
async def outage(database_url: str) -> AsyncIterator[Outage]:
    proxy = Outage(database_url)
    await proxy.start()
    try:
        yield proxy
    finally:
        with contextlib.suppress(AssertionError):
            await proxy.cut()


async def test_an_unreachable_database_is_a_503_page_not_a_way_in(
    aiohttp_client: Any, outage: Outage, tmp_path: Path, make_client: Any
) -> None:
    settings = make_settings(outage.dsn, tmp_path)
    app = create_app(settings, outage.dsn, Tokens(ADMIN_TOKEN, (PUBLISH_TOKEN,)))
    client: Client = await aiohttp_client(app)
    csrf = await signed_in(client)
    live = session_cookie(client)
    other = await make_client()
    other_csrf = await signed_in(other)
    revoked = session_cookie(other)
    await logout(other, other_csrf)

    await outage.cut()
    for cookie in (revoked, live):
        for method, path, data in (
            ("GET", "/admin/", None),
            # The sign-in page needs no database, but with a session it would lead inside.
            ("GET", "/admin/login", None),
            ("POST", "/admin/logout", {"csrf_token": csrf}),
        ):
            client.session.cookie_jar.clear()
            client.session.cookie_jar.update_cookies(
                {"dispatcher_session": cookie}, client.make_url("/admin")
            )
            answer = await client.request(method, path, data=data, allow_redirects=False)
            text = await answer.text()
            assert answer.status == 503, (method, path, answer.status, text[:300])
            assert answer.content_type == "text/html"
            assert "The database is unreachable" in text
            assert answer.headers["Retry-After"]


# --------------------------------------------------------------------------------------------
# login throttle


async def test_wrong_guesses_from_many_addresses_pace_every_check() -> None:
    throttle = LoginThrottle(limit=10, global_limit=30, pace_seconds=0.05)
    for n in range(29):
        throttle.failed(f"198.51.100.{n}")
    assert not throttle.under_attack()
    throttle.failed("203.0.113.1")
    # No single address is over its limit, but together they are guessing.
    assert not any(throttle.blocked(f"198.51.100.{n}") for n in range(29))
    assert throttle.under_attack()
    # Checks are now taken one at a time, a pace apart: the second waits for the first.
    first = asyncio.create_task(throttle.wait_turn())
    second = asyncio.create_task(throttle.wait_turn())
    await first
    assert not second.done()
    await second


async def test_under_a_distributed_guess_the_admin_token_still_signs_in(client: Client) -> None:
    throttle = client.app[THROTTLE]
    for n in range(throttle.global_limit):
        throttle.failed(f"198.51.100.{n % 250}")
    assert throttle.under_attack()
    assert (await login(client, WRONG)).status == 401
    assert (await login(client, ADMIN_TOKEN)).status == 303
    assert (await client.get("/admin/", allow_redirects=False)).status == 200


async def login_form(client: Client) -> str:
    """Fetch the sign-in form once; its CSRF token serves many concurrent sign-ins."""
    page = await client.get("/admin/login")
    match = re.search(r'name="csrf_token" value="([^"]+)"', await page.text())
    assert match
    return match.group(1)


async def post_token(client: Client, csrf: str, token: str) -> tuple[int, str]:
    answer = await client.post(
        "/admin/login",
        data={"token": token, "csrf_token": csrf, "next": "/admin/"},
        allow_redirects=False,
    )
    return answer.status, await answer.text()


async def until(check: Callable[[], bool], what: str) -> None:
    for _ in range(2000):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


async def test_a_flood_of_wrong_tokens_neither_queues_without_bound_nor_delays_the_admin(
    client: Client,
) -> None:
    throttle = client.app[THROTTLE]
    # Guesses from many addresses (the test client's all come from one): none is over its
    # own limit, together they are over the global one.
    throttle.limit = 10**6
    for n in range(throttle.global_limit):
        throttle.failed(f"198.51.100.{n % 250}")
    csrf = await login_form(client)
    # Hold the queue: whoever enters it waits until the test lets go.
    await throttle._gate.acquire()
    flood = [asyncio.create_task(post_token(client, csrf, WRONG)) for _ in range(60)]
    try:
        await until(lambda: sum(t.done() for t in flood) == 60 - throttle.queue_limit, "busy")
        assert throttle.waiting == throttle.queue_limit == 20
        busy = [t.result() for t in flood if t.done()]
        assert {status for status, _ in busy} == {429}
        assert all("Too many sign-in attempts right now" in text for _, text in busy)
        # The admin token signs in while the queue is held full: it waited for nothing.
        # (A fresh form: every answer with the form set a new form cookie.)
        status, _ = await post_token(client, await login_form(client), ADMIN_TOKEN)
        assert status == 303
        assert throttle.waiting == 20
    finally:
        throttle._gate.release()
        answers = await asyncio.gather(*flood, return_exceptions=True)
    # The twenty that waited their turn are told the token was wrong.
    statuses = sorted(a[0] for a in answers if isinstance(a, tuple))
    assert statuses == [401] * 20 + [429] * 40
    assert (await client.get("/admin/", allow_redirects=False)).status == 200


async def test_a_blocked_address_is_refused_before_the_queue(client: Client) -> None:
    throttle = client.app[THROTTLE]
    for n in range(throttle.global_limit):
        throttle.failed(f"198.51.100.{n % 250}")
    for _ in range(throttle.limit):
        throttle.failed("127.0.0.1")
    csrf = await login_form(client)
    await throttle._gate.acquire()
    try:
        # (Were they queued, they would wait until the gate is let go: the test would fail.)
        answers = await asyncio.wait_for(
            asyncio.gather(*(post_token(client, csrf, WRONG) for _ in range(30))), 30
        )
        assert [status for status, _ in answers] == [429] * 30
        assert all("Too many wrong tokens from your address" in text for _, text in answers)
        assert throttle.waiting == 0
        # The right token from the same address still signs in, with the queue held.
        assert (await post_token(client, await login_form(client), ADMIN_TOKEN))[0] == 303
    finally:
        throttle._gate.release()
