"""A tenant never reads, changes or learns of anything outside its tenant.

A property test over every ``/v1`` route and method the app's router serves (so a new route is
covered as soon as it exists): two tenants and the operator each hold a webhook, an event and
a finished delivery; a tenant token calls a route aimed at its own, the other tenant's or the
operator's resources, with drawn query filters and bodies. After every call:

- nothing outside the caller's tenant changed (rows of the other tenant and the operator,
  tenants, tokens, the catalogue);
- the answer names nothing outside its tenant (ids, secrets, URLs, tenant ids), and every item
  of a list is the caller's;
- for another tenant's or the operator's id the answer is exactly the answer for an id that
  does not exist (404, never 403): the caller learns nothing of its existence.

A second property publishes drawn events for drawn tenants to webhooks with drawn patterns and
checks, on a real receiver, that each webhook got exactly the events of its own tenant that
match it.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import asyncpg
import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher.app import create_app
from dispatcher.auth import Tokens
from dispatcher.matching import Matcher
from tests.conftest import TABLES, make_settings
from tests.helpers import ADMIN, ADMIN_TOKEN, PUBLISH_TOKEN
from tests.receiver import Receiver

T = TypeVar("T")
ACME, GLOBEX = "tenant-acme-7q", "tenant-globex-9z"
OWNERS: tuple[str | None, ...] = (ACME, GLOBEX, None)  # None: the operator
EXAMPLES_PER_ROUTE = 10
PROPERTY = settings(
    max_examples=EXAMPLES_PER_ROUTE,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def owner_path(owner: str | None) -> str:
    return f"/{owner or 'operator'}"


class World:
    """The app on a loop of its own, two tenants with tokens, and each owner's resources."""

    def __init__(self, database_url: str, data_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.database_url = database_url
        self.data_dir = data_dir
        self.tokens: dict[str, dict[str, str]] = {}

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout=60)

    async def start(self) -> None:
        self.db = await asyncpg.connect(self.database_url)
        await self.db.execute(f"TRUNCATE {TABLES}")
        self.receiver = Receiver()
        await self.receiver.start()
        self.app = create_app(
            make_settings(self.database_url, self.data_dir),
            self.database_url,
            Tokens(ADMIN_TOKEN, (PUBLISH_TOKEN,)),
        )
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.http = aiohttp.ClientSession(f"http://127.0.0.1:{self.runner.addresses[0][1]}")
        await self.admin("POST", "/v1/event-types", {"name": "order.created"}, 201)
        for tenant in (ACME, GLOBEX):
            await self.admin("POST", "/v1/tenants", {"id": tenant, "name": tenant}, 201)
            made = await self.admin("POST", f"/v1/tenants/{tenant}/tokens", {}, 201)
            self.tokens[tenant] = {"Authorization": f"Bearer {made['token']}"}
        for owner in OWNERS:
            await self.ensure(owner)

    async def stop(self) -> None:
        await self.http.close()
        await self.runner.cleanup()
        await self.receiver.stop()
        await self.db.close()

    async def admin(self, method: str, path: str, body: Any, status: int) -> Any:
        async with self.http.request(method, path, json=body, headers=ADMIN) as resp:
            assert resp.status == status, await resp.text()
            return None if status == 204 else await resp.json()

    async def ensure(self, owner: str | None) -> dict[str, str]:
        """The owner's webhook (enabled), event and finished delivery, made when missing."""
        hook = await self.db.fetchval(
            "SELECT id FROM webhooks WHERE tenant_id IS NOT DISTINCT FROM $1 AND enabled"
            " ORDER BY id LIMIT 1",
            owner,
        )
        if hook is None:
            body = {
                "name": "h",
                "url": self.receiver.url(owner_path(owner)),
                "event_types": ["*"],
                "tenant_id": owner,
            }
            hook = (await self.admin("POST", "/v1/webhooks", body, 201))["id"]
        found = await self.db.fetchrow(
            "SELECT id, event_id FROM deliveries WHERE tenant_id IS NOT DISTINCT FROM $1"
            " AND status = 'success' ORDER BY id LIMIT 1",
            owner,
        )
        if found is None:
            event = {"type": "order.created", "data": {"for": owner}, "tenant_id": owner}
            await self.admin("POST", "/v1/events", event, 202)
            for _ in range(500):
                found = await self.db.fetchrow(
                    "SELECT id, event_id FROM deliveries WHERE tenant_id IS NOT DISTINCT FROM $1"
                    " AND status = 'success' ORDER BY id LIMIT 1",
                    owner,
                )
                if found is not None:
                    break
                await asyncio.sleep(0.02)
            assert found is not None, "the owner's delivery did not finish"
        return {"webhook": hook, "delivery": found["id"], "event": found["event_id"]}

    async def settled(self) -> None:
        """No delivery is waiting or in flight (so the engine changes nothing meanwhile)."""
        for _ in range(500):
            pending = await self.db.fetchval(
                "SELECT count(*) FROM deliveries WHERE status IN ('created', 'retrying')"
                " AND (due_at IS NOT NULL OR lease_owner IS NOT NULL)"
            )
            if not pending:
                return
            await asyncio.sleep(0.02)
        raise AssertionError("deliveries did not settle")

    async def outside(self, tenant: str) -> list[Any]:
        """Every row outside ``tenant`` that a request could change, once settled."""
        await self.settled()
        queries = [
            "SELECT * FROM webhooks WHERE tenant_id IS DISTINCT FROM $1 ORDER BY id",
            "SELECT s.* FROM webhook_secrets s JOIN webhooks w ON w.id = s.webhook_id"
            " WHERE w.tenant_id IS DISTINCT FROM $1 ORDER BY s.id",
            "SELECT id, webhook_id, event_id, status, attempt_count, requeued_at, updated_at"
            " FROM deliveries WHERE tenant_id IS DISTINCT FROM $1 ORDER BY id",
            "SELECT id, type, data::text, tenant_id FROM events"
            " WHERE tenant_id IS DISTINCT FROM $1 ORDER BY id",
            "SELECT * FROM tenants WHERE $1::text IS NOT NULL ORDER BY id",
            "SELECT * FROM tenant_tokens WHERE $1::text IS NOT NULL ORDER BY id",
            "SELECT * FROM event_types WHERE $1::text IS NOT NULL ORDER BY name",
        ]
        return [list(await self.db.fetch(q, tenant)) for q in queries]

    async def foreign_strings(self, tenant: str) -> set[str]:
        """What a tenant must never read: the others' ids, secrets and URLs."""
        found = {t for t in (ACME, GLOBEX) if t != tenant}
        for q in (
            "SELECT id, url FROM webhooks WHERE tenant_id IS DISTINCT FROM $1",
            "SELECT s.secret AS id, NULL AS url FROM webhook_secrets s"
            " JOIN webhooks w ON w.id = s.webhook_id WHERE w.tenant_id IS DISTINCT FROM $1",
            "SELECT id, NULL AS url FROM events WHERE tenant_id IS DISTINCT FROM $1",
            "SELECT id, NULL AS url FROM deliveries WHERE tenant_id IS DISTINCT FROM $1",
        ):
            for row in await self.db.fetch(q, tenant):
                found.update(v for v in (row["id"], row["url"]) if v)
        return found

    async def call(
        self, method: str, path: str, body: Any, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        data = None if body is None else orjson.dumps(body)
        hdrs = {**headers, "Content-Type": "application/json"} if data else headers
        async with self.http.request(method, path, data=data, headers=hdrs) as resp:
            return resp.status, await resp.read()


@pytest.fixture(scope="module")
def world(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    handle = World(database_url, tmp_path_factory.mktemp("isolation"))
    handle.run(handle.start())
    try:
        yield handle
    finally:
        handle.run(handle.stop())
        handle.loop.call_soon_threadsafe(handle.loop.stop)
        handle.thread.join(10)


def v1_routes() -> list[tuple[str, str]]:
    """(method, path template) of every /v1 route the router serves (HEAD is GET's)."""
    app = create_app(
        make_settings("postgresql://unused/x", Path("/nonexistent")), "", Tokens("x" * 30, ())
    )
    found = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("formatter") or info.get("path") or ""
        if path.startswith("/v1/") and route.method not in ("HEAD", "*"):
            found.append((route.method, path))
    return sorted(set(found))


ROUTES = v1_routes()
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def resource_of(template: str) -> str:
    """Which kind of id a route's ``{id}`` is."""
    for prefix, kind in (
        ("/v1/webhooks/", "webhook"),
        ("/v1/deliveries/", "delivery"),
        ("/v1/events/", "event"),
        ("/v1/tenants/", "tenant"),
    ):
        if template.startswith(prefix):
            return kind
    return "name"


def made_up(ident: str) -> str:
    """An id of the same shape that names nothing."""
    return ident[:-6] + "ZZZZZZ" if len(ident) > 8 else ident + "-nobody"


def bodies(method: str, template: str, tenant: str, url: str) -> st.SearchStrategy[Any]:
    """Bodies that reach the handler's logic (valid ones, mostly), for this route."""
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    other = st.sampled_from([t for t in (ACME, GLOBEX) if t != tenant] + [tenant, "nobody-x"])
    if method in ("GET", "DELETE"):
        return st.none()
    if template == "/v1/webhooks":
        return st.builds(
            lambda t, with_t: {
                "name": "new",
                "url": url,
                "event_types": ["*"],
                **({"tenant_id": t} if with_t else {}),
            },
            other,
            st.booleans(),
        )
    if template == "/v1/webhooks/{id}":
        return st.sampled_from(
            [{"name": "renamed"}, {"url": url}, {"event_types": ["order.*"]}, {"tenant_id": ACME}]
        )
    if template.endswith("/replay"):
        return st.builds(
            lambda s: {"status": s, "since": since},
            st.sampled_from(["failed", "success", "missing", "cancelled"]),
        )
    if template.endswith("/test"):
        return st.just({"event_type": "order.created", "data": {"test": 1}})
    if template.startswith("/v1/events"):
        event = st.builds(lambda t: {"type": "order.created", "data": {}, "tenant_id": t}, other)
        return event if template == "/v1/events" else st.builds(lambda e: {"events": [e]}, event)
    if template.startswith("/v1/tenants"):
        return st.sampled_from([{}, {"id": "stolen-x", "name": "x"}, {"name": "renamed"}])
    if template.startswith("/v1/event-types"):
        return st.sampled_from([{"name": "evil.type"}, {"description": "changed"}])
    return st.sampled_from([{}, None])


def queries(kinds: dict[str, str]) -> st.SearchStrategy[str]:
    """Query strings naming (mostly) things of others."""
    return st.sampled_from(
        [
            "",
            f"?tenant_id={ACME}",
            f"?tenant_id={GLOBEX}",
            f"?webhook_id={kinds['webhook']}",
            f"?event_id={kinds['event']}",
            "?status=success",
            "?type=order.created",
            "?limit=500",
        ]
    )


def check_answer(
    status: int, raw: bytes, sent: str, forbidden: set[str], tenant: str, method: str
) -> None:
    assert status < 500, raw
    text = raw.decode(errors="replace")
    leaked = sorted(s for s in forbidden if s in text and s not in sent)
    assert not leaked, f"the answer names {leaked}: {text[:500]}"
    if status != 200 or method != "GET":
        return
    body = orjson.loads(raw)
    items = body.get("data") if isinstance(body, dict) else None
    for item in items if isinstance(items, list) else [body]:
        if isinstance(item, dict) and "tenant_id" in item:
            assert item["tenant_id"] == tenant, item


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("method", "template"), ROUTES)
def test_a_tenant_token_stays_inside_its_tenant(world: World, method: str, template: str) -> None:
    @PROPERTY
    @given(
        data=st.data(),
        tenant=st.sampled_from([ACME, GLOBEX]),
        target=st.sampled_from(["own", "other", "operator"]),
    )
    def one(data: st.DataObject, tenant: str, target: str) -> None:
        owner = {"own": tenant, "other": GLOBEX if tenant == ACME else ACME, "operator": None}[
            target
        ]
        resources = {o: world.run(world.ensure(o)) for o in OWNERS}
        theirs = resources[owner]
        kind = resource_of(template)
        ident = {"tenant": owner or "operator", "name": "order.created"}.get(kind) or theirs[kind]
        path = PLACEHOLDER.sub(lambda m: ident if m.group(1) == "id" else "tt_nothing", template)
        other = resources[GLOBEX if tenant == ACME else ACME]
        path += data.draw(queries(other), "query")
        body = data.draw(bodies(method, template, tenant, world.receiver.url(f"/{tenant}")))
        headers = world.tokens[tenant]

        before = world.run(world.outside(tenant))
        forbidden = world.run(world.foreign_strings(tenant))
        status, raw = world.run(world.call(method, path, body, headers))
        sent = path + (orjson.dumps(body).decode() if body is not None else "")
        check_answer(status, raw, sent, forbidden, tenant, method)
        assert world.run(world.outside(tenant)) == before, f"{method} {path} changed others'"

        if owner != tenant and "{" in template and kind != "name":
            # Exactly what an id that names nothing gets: nothing to tell them apart.
            fake = made_up(ident)
            fake_status, fake_raw = world.run(
                world.call(method, path.replace(ident, fake), body, headers)
            )
            assert (status, raw.replace(ident.encode(), b"<id>")) == (
                fake_status,
                fake_raw.replace(fake.encode(), b"<id>"),
            )
            assert status in (403, 404, 422), (status, raw)
            assert world.run(world.outside(tenant)) == before

    one()


# --------------------------------------------------------------------------------------------
# no event reaches another tenant's webhook


PATTERNS = st.lists(st.sampled_from(["*", "order.*", "order.created", "invoice.*"]), min_size=1)
TYPES = st.sampled_from(["order.created", "order.paid", "invoice.sent", "user.joined"])


@pytest.mark.timeout(300)
@settings(
    max_examples=8,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    hooks=st.lists(st.tuples(st.sampled_from(OWNERS), PATTERNS), min_size=1, max_size=5),
    events=st.lists(st.tuples(st.sampled_from(OWNERS), TYPES), min_size=1, max_size=8),
)
def test_no_event_reaches_another_tenant_webhook(
    world: World,
    hooks: list[tuple[str | None, list[str]]],
    events: list[tuple[str | None, str]],
) -> None:
    async def scenario() -> None:
        # A fresh receiver per example: paths name the webhook, so nothing carries over.
        run = f"/run{len(world.receiver.requests)}-"
        made = []
        for i, (owner, patterns) in enumerate(hooks):
            body = {
                "name": "p",
                "url": world.receiver.url(f"{run}{i}"),
                "event_types": patterns,
                "tenant_id": owner,
            }
            made.append((await world.admin("POST", "/v1/webhooks", body, 201))["id"])
        sent: list[str] = []
        for owner, type_ in events:
            event: dict[str, Any] = {"type": type_, "data": {}, "tenant_id": owner}
            sent.append((await world.admin("POST", "/v1/events", event, 202))["id"])
        expected = {
            i: sorted(
                sent[j]
                for j, (ev_owner, type_) in enumerate(events)
                if ev_owner == owner and Matcher.compile(patterns).matches(type_)
            )
            for i, (owner, patterns) in enumerate(hooks)
        }
        for i, ids in expected.items():
            await world.receiver.wait_for(len(ids), f"{run}{i}")
        # Every expected delivery arrived; wait for the rest of what was created to finish
        # too, so that anything wrongly sent would have arrived by now.
        await world.settled()
        for i, ids in expected.items():
            got = sorted(r.json()["id"] for r in world.receiver.at(f"{run}{i}"))
            assert got == ids, (hooks[i], events)
        for webhook_id in made:
            await world.admin("DELETE", f"/v1/webhooks/{webhook_id}", None, 204)

    world.run(scenario())
