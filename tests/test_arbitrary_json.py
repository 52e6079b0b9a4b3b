"""Property: whatever JSON (or form) a client sends to whatever route takes a body, the answer is
never a 5xx, and a 4xx changes nothing.

The routes are read from the application's router, so a new one is fuzzed (or, if its path has
a placeholder this file cannot fill, fails the test) without anyone remembering to add it. The
bodies are deep, wide, odd numbers (1e400, -0, integers past 64 bits), odd strings (lone
surrogates, NUL, right-to-left marks, very long keys), alone or in place of one field of a valid
body, so validation is reached, not only the parser.

Hypothesis drives a synchronous test; the application, its client session and a database
connection live on an event loop in a thread of their own.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote_from_bytes

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dispatcher.app import create_app
from dispatcher.auth import Tokens
from tests.conftest import TABLES, make_settings
from tests.helpers import ADMIN, ADMIN_TOKEN, PUBLISH_TOKEN, webhook_body
from tests.receiver import Receiver

T = TypeVar("T")
EXAMPLES_PER_ROUTE = 12
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')

# ---------------------------------------------------------------------------------------------
# JSON text, written by hand so it can say what json.dumps will not.

SPECIAL_NUMBERS = [
    "1e400",
    "-1e400",
    "1e-400",
    "-0",
    "-0.0",
    "0e0",
    "123456789012345678901234567890",
    "-9223372036854775809",
    "18446744073709551616",
    "1E+2",
]
SPECIAL_STRINGS = [
    r'"\ud800"',  # lone surrogates
    r'"\udfff x"',
    r'"a\u0000b"',  # NUL
    '"\u202eevil\u202c"',  # right-to-left override
    '"\u0645\u0631\u062d\u0628\u0627"',
    r'"\\"',
    '""',
    '"' + "k" * 5000 + '"',
]
leaf = st.one_of(
    st.none().map(lambda _: "null"),
    st.booleans().map(json.dumps),
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(json.dumps),
    st.text(max_size=20).map(json.dumps),
    st.sampled_from(SPECIAL_NUMBERS),
    st.sampled_from(SPECIAL_STRINGS),
)
key = st.one_of(st.text(max_size=10).map(json.dumps), st.sampled_from(SPECIAL_STRINGS))


def _array(items: list[str]) -> str:
    return "[" + ",".join(items) + "]"


def _object(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}"


shallow = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(_array),
        st.lists(st.tuples(key, inner), max_size=4).map(_object),
    ),
    max_leaves=12,
)


@st.composite
def deep(draw: st.DrawFn) -> str:
    """Nested just under, at and over the caps, and past what orjson reads."""
    depth = draw(st.sampled_from([63, 64, 65, 127, 128, 129, 254, 255, 300, 1023, 1024, 1100]))
    inner = draw(shallow)
    if draw(st.booleans()):
        return "[" * depth + inner + "]" * depth
    return '{"a":' * depth + inner + "}" * depth


@st.composite
def wide(draw: st.DrawFn) -> str:
    n = draw(st.sampled_from([1_000, 20_000]))
    if draw(st.booleans()):
        return _array(["0"] * n)
    return _object([(f'"k{i}"', "1") for i in range(n)])


any_json = st.one_of(shallow, deep(), wide())

# Tried at every place of every route's valid body, whatever hypothesis draws besides: the
# values that have broken a route before.
KNOWN_BAD = [
    "[" * 300 + "]" * 300,  # accepted, then unwritable by orjson
    '{"a":' * 1000 + "1" + "}" * 1000,  # readable by orjson, past Python's recursion limit
    "1e400",
    r'"\ud800"',
    "123456789012345678901234567890",
    r'"a\u0000b"',
]

# ---------------------------------------------------------------------------------------------
# Bodies: arbitrary JSON alone, or in place of one field of a valid body.


def valid_body(path: str, receiver_url: str) -> Any:
    """A body the route accepts (or at least validates past the parser), by route template."""
    bodies: dict[str, Any] = {
        "/v1/webhooks": webhook_body(url=receiver_url),
        "/v1/webhooks/{id}": {"name": "renamed"},
        "/v1/webhooks/{id}/replay": {"since": "2020-01-01T00:00:00Z"},
        "/v1/webhooks/{id}/test": {"event_type": "order.created", "data": {}},
        "/v1/event-types": {"name": "fuzz.created", "description": "d"},
        "/v1/event-types/{name}": {"description": "d"},
        "/v1/events": {"type": "order.created", "data": {}},
        "/v1/events/batch": {"events": [{"type": "order.created", "data": {}}]},
    }
    return bodies.get(path, {})


def paths_of(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in ``value`` one could put something else (and a new key of each object)."""
    found = [at]
    if isinstance(value, dict):
        found.append((*at, "extra"))
        for k, v in value.items():
            found += paths_of(v, (*at, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += paths_of(v, (*at, i))
    return found


def render(value: Any, at: tuple[Any, ...], raw: str) -> str:
    """``value`` as JSON text with ``raw`` (JSON text) at path ``at``."""
    if not at:
        return raw
    head, rest = at[0], at[1:]
    if isinstance(value, dict):
        items = dict(value)
        items.setdefault(head, None)
        return _object(
            [
                (json.dumps(k), render(v, rest, raw) if k == head else json.dumps(v))
                for k, v in items.items()
            ]
        )
    assert isinstance(value, list)
    return _array(
        [render(v, rest, raw) if i == head else json.dumps(v) for i, v in enumerate(value)]
    )


@st.composite
def json_body(draw: st.DrawFn, base: Any) -> str:
    raw = draw(any_json)
    return render(base, draw(st.sampled_from(paths_of(base))), raw)


FORM_FIELDS = [
    "token", "next", "name", "url", "event_types", "description", "headers", "metadata",
    "max_retries", "timeout_seconds", "rate_limit_per_second", "max_in_flight", "secret",
    "enabled", "include_payload", "status", "since", "ids", "event_type", "data", "schema",
    "examples",
]  # fmt: skip
form_value = st.one_of(
    st.binary(max_size=40),  # not necessarily UTF-8
    any_json.map(str.encode),
    st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


@st.composite
def form_body(draw: st.DrawFn, csrf: str) -> bytes:
    pairs = draw(st.lists(st.tuples(st.sampled_from(FORM_FIELDS), form_value), max_size=6))
    if draw(st.integers(0, 9)):  # mostly with the session's token, so the handler is reached
        pairs.append(("csrf_token", csrf.encode()))
    return "&".join(
        f"{quote_from_bytes(k.encode())}={quote_from_bytes(v)}" for k, v in pairs
    ).encode()


# ---------------------------------------------------------------------------------------------
# The application on a loop of its own.


class Served:
    """The app, an HTTP session signed in to the console, and a database connection."""

    def __init__(self, database_url: str, data_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.database_url = database_url
        self.data_dir = data_dir

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout=60)

    async def start(self) -> None:
        self.db = await asyncpg.connect(self.database_url)
        await self.db.execute(f"TRUNCATE {TABLES}")
        self.receiver = Receiver()
        await self.receiver.start()
        settings_ = make_settings(self.database_url, self.data_dir)
        self.app = create_app(settings_, self.database_url, Tokens(ADMIN_TOKEN, (PUBLISH_TOKEN,)))
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        self.http = aiohttp.ClientSession(self.base, cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = await self.sign_in()

    async def sign_in(self) -> str:
        async with self.http.get("/admin/login") as page:
            match = CSRF.search(await page.text())
        assert match
        form = {"token": ADMIN_TOKEN, "csrf_token": match.group(1), "next": "/admin/"}
        async with self.http.post("/admin/login", data=form, allow_redirects=False) as answer:
            assert answer.status == 303, await answer.text()
        async with self.http.get("/admin/") as page:
            match = CSRF.search(await page.text())
        assert match
        return match.group(1)

    async def stop(self) -> None:
        await self.http.close()
        await self.runner.cleanup()
        await self.receiver.stop()
        await self.db.close()

    async def ensure_resources(self) -> dict[str, str]:
        """A webhook, an event type and a delivery to aim ``{id}``/``{name}`` routes at."""
        hook = await self.db.fetchval("SELECT id FROM webhooks WHERE enabled ORDER BY id LIMIT 1")
        if hook is None:
            body = webhook_body(url=self.receiver.url(), event_types=["*"])
            async with self.http.post("/v1/webhooks", json=body, headers=ADMIN) as resp:
                assert resp.status == 201, await resp.text()
                hook = (await resp.json())["id"]
        name = await self.db.fetchval("SELECT name FROM event_types ORDER BY name LIMIT 1")
        if name is None:
            body = {"name": "order.created", "description": "fuzzing target"}
            async with self.http.post("/v1/event-types", json=body, headers=ADMIN) as resp:
                assert resp.status == 201, await resp.text()
            name = "order.created"
        delivery = await self.db.fetchval("SELECT id FROM deliveries ORDER BY id LIMIT 1")
        if delivery is None:
            # A webhook of its own: the fuzzed one may no longer match (or be enabled).
            body = webhook_body(url=self.receiver.url(), event_types=["*"])
            async with self.http.post("/v1/webhooks", json=body, headers=ADMIN) as resp:
                assert resp.status == 201, await resp.text()
            event = {"type": "fuzz.target", "data": {}}
            async with self.http.post("/v1/events", json=event, headers=ADMIN) as resp:
                assert resp.status == 202, await resp.text()
            delivery = await self.db.fetchval("SELECT id FROM deliveries ORDER BY id LIMIT 1")
            assert delivery is not None
        # A tenant and one of its tokens (a fuzzed delete may remove the tenant: made again).
        tenant = await self.db.fetchval("SELECT id FROM tenants ORDER BY id LIMIT 1")
        if tenant is None:
            body = {"id": "fuzz-tenant", "name": "Fuzz"}
            async with self.http.post("/v1/tenants", json=body, headers=ADMIN) as resp:
                assert resp.status == 201, await resp.text()
            tenant = "fuzz-tenant"
        token = await self.db.fetchval(
            "SELECT id FROM tenant_tokens WHERE tenant_id = $1 ORDER BY id LIMIT 1", tenant
        )
        if token is None:
            async with self.http.post(
                f"/v1/tenants/{tenant}/tokens", json={}, headers=ADMIN
            ) as resp:
                assert resp.status == 201, await resp.text()
                token = (await resp.json())["id"]
        return {
            "webhook": hook,
            "event_type": name,
            "delivery": delivery,
            "tenant": tenant,
            "token": token,
        }

    async def snapshot(self) -> list[list[Any]]:
        """What a request can change. Delivery progress, attempts and heartbeats are left
        out: the engine changes them on its own while the test runs."""
        return [
            list(await self.db.fetch("SELECT * FROM webhooks ORDER BY id")),
            list(await self.db.fetch("SELECT * FROM webhook_secrets ORDER BY 1, 2")),
            list(await self.db.fetch("SELECT * FROM event_types ORDER BY name")),
            list(
                await self.db.fetch(
                    "SELECT id, type, data::text, occurred_at FROM events ORDER BY id"
                )
            ),
            list(
                await self.db.fetch("SELECT id, event_id, webhook_id FROM deliveries ORDER BY id")
            ),
            list(await self.db.fetch("SELECT * FROM tenants ORDER BY id")),
            list(await self.db.fetch("SELECT * FROM tenant_tokens ORDER BY id")),
            list(await self.db.fetch("SELECT link_hash FROM portal_links ORDER BY 1")),
        ]

    async def send(
        self, path: str, method: str, body: bytes, content_type: str, headers: dict[str, str]
    ) -> tuple[int, str, str]:
        async with self.http.request(
            method,
            path,
            data=body,
            headers={**headers, "Content-Type": content_type},
            allow_redirects=False,
        ) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), (await resp.text())[:500]


@pytest.fixture(scope="module")
def served(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    handle = Served(database_url, tmp_path_factory.mktemp("fuzz"))
    handle.run(handle.start())
    try:
        yield handle
    finally:
        handle.run(handle.stop())
        handle.loop.call_soon_threadsafe(handle.loop.stop)
        handle.thread.join(10)


def body_routes(app: web.Application, prefix: str) -> list[tuple[str, str]]:
    """(method, path template) of every route under ``prefix`` that takes a body."""
    found = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("formatter") or info.get("path") or ""
        if route.method in ("POST", "PUT", "PATCH") and path.startswith(prefix):
            found.append((route.method, path))
    return sorted(found, key=lambda r: (r[1], r[0]))


def fill(template: str, resources: dict[str, str], action: str) -> str:
    """A real path for a route template; a placeholder nobody taught this file fails."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "id" and template.startswith(("/v1/webhooks/", "/admin/webhooks/")):
            return resources["webhook"]
        if name == "id" and template.startswith(("/v1/deliveries/", "/admin/deliveries/")):
            return resources["delivery"]
        if name == "name" and template.startswith(("/v1/event-types/", "/admin/event-types/")):
            return resources["event_type"]
        if name == "id" and template.startswith(("/v1/tenants/", "/admin/tenants/")):
            return resources["tenant"]
        if name == "token_id" and template.startswith(("/v1/tenants/", "/admin/tenants/")):
            return resources["token"]
        if name == "action":
            return action
        pytest.fail(f"{template}: teach tests/test_arbitrary_json.py what {{{name}}} is")

    return re.sub(r"{(\w+)}", one, template)


def check(
    served: Served, method: str, path: str, body: bytes, content_type: str, headers: dict[str, str]
) -> None:
    before = served.run(served.snapshot())
    status, answered_as, text = served.run(served.send(path, method, body, content_type, headers))
    assert status < 500, f"{method} {path} -> {status}: {text}\nbody: {body[:300]!r}"
    if status < 400:
        # What was accepted must stay readable (a stored value orjson cannot write broke
        # every list that included it).
        for read in READ_BACK:
            got, _, text = served.run(served.send(read, "GET", b"", "text/plain", ADMIN))
            assert got == 200, f"after {method} {path} -> {status}: GET {read} -> {got}: {text}"
    if 400 <= status < 500:
        after = served.run(served.snapshot())
        assert after == before, f"{method} {path} -> {status} changed the database: {text}"
        # A coding aiohttp has no decoder for (br without Brotli) is refused by its HTTP
        # parser, in plain text, before any handler runs.
        if path.startswith("/v1/") and headers.get("Content-Encoding") != "br":
            assert answered_as.startswith("application/problem+json"), (status, answered_as, text)


# Mostly none; otherwise a label the (uncompressed) body does not live up to.
LABELS = st.sampled_from([None, None, None, None, "gzip", "deflate", "br", "x-gzip", "identity"])
READ_BACK = ("/v1/events", "/v1/webhooks", "/v1/event-types", "/v1/deliveries")

FUZZ = settings(
    max_examples=EXAMPLES_PER_ROUTE,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _routes(prefix: str) -> list[tuple[str, str]]:
    app = create_app(
        make_settings("postgresql://unused/x", Path("/nonexistent")), "", Tokens("x" * 30, ())
    )
    return body_routes(app, prefix)


@pytest.mark.parametrize(("method", "template"), _routes("/v1/"))
def test_arbitrary_json_to_an_api_route_is_never_a_5xx(
    served: Served, method: str, template: str
) -> None:
    base = valid_body(template, served.receiver.url())

    known = [render(base, at, raw) for at in paths_of(base) for raw in KNOWN_BAD]

    @FUZZ
    @given(body=json_body(base), coding=LABELS)
    def one(body: str, coding: str | None) -> None:
        resources = served.run(served.ensure_resources())
        path = fill(template, resources, "retry")
        headers = {**ADMIN, "Content-Encoding": coding} if coding else ADMIN
        check(
            served, method, path, body.encode("utf-8", "surrogatepass"), "application/json", headers
        )

    for body in known:
        one = example(body=body, coding=None)(one)
    one()


# Signing out would end the session every other console example uses.
CONSOLE_SKIPPED = {("POST", "/admin/logout")}


@pytest.mark.parametrize(
    ("method", "template"), [r for r in _routes("/admin/") if r not in CONSOLE_SKIPPED]
)
def test_arbitrary_forms_to_a_console_route_are_never_a_5xx(
    served: Served, method: str, template: str
) -> None:
    @FUZZ
    @given(
        body=form_body(served.csrf),
        action=st.sampled_from(["retry", "cancel", "nonsense"]),
        coding=LABELS,
    )
    def one(body: bytes, action: str, coding: str | None) -> None:
        resources = served.run(served.ensure_resources())
        path = fill(template, resources, action)
        headers = {"Content-Encoding": coding} if coding else {}
        check(served, method, path, body, "application/x-www-form-urlencoded", headers)

    one()
