"""The console's deliveries and events pages show each row's tenant and filter by it
(``?tenant=<id>``, or ``?tenant=(operator)`` for the operator's own, also on the webhooks
page), and a bulk retry or cancel of a filtered set changes only that tenant's deliveries."""

from __future__ import annotations

import html
import json
from typing import Any
from urllib.parse import quote

import asyncpg
from aiohttp.test_utils import TestClient

from admin.listing import OPERATOR, TenantFilter, tenant_filter
from dispatcher.store.deliveries import Q as DELIVERY_Q
from dispatcher.store.events import Q as EVENT_Q
from tests.helpers import ADMIN
from tests.receiver import Receiver
from tests.test_admin import create_webhook, signed_in
from tests.test_admin_console import deliveries, page, settled

Client = TestClient[Any, Any]


async def two_tenants_and_the_operator(
    client: Client, receiver: Receiver, db: asyncpg.Connection
) -> dict[str | None, list[str]]:
    """Tenants acme (2 events) and globex (1) and the operator (1), a webhook each; returns
    each owner's event ids once every delivery has settled."""
    events: dict[str | None, list[str]] = {}
    for tenant, count in (("acme", 2), ("globex", 1), (None, 1)):
        if tenant:
            made = await client.post(
                "/v1/tenants", json={"id": tenant, "name": tenant.title()}, headers=ADMIN
            )
            assert made.status == 201
        await create_webhook(
            client, name=f"hook-{tenant or 'mine'}", url=receiver.url("/ok"), tenant_id=tenant
        )
        for _ in range(count):
            body: dict[str, Any] = {"type": "order.created", "data": {"n": 1}}
            if tenant:
                body["tenant_id"] = tenant
            resp = await client.post("/v1/events", json=body, headers=ADMIN)
            assert resp.status == 202, await resp.text()
            events.setdefault(tenant, []).append((await resp.json())["id"])
    await settled(db, 4)
    return events


async def test_deliveries_and_events_show_and_filter_by_tenant(
    client: Client, receiver: Receiver, db: asyncpg.Connection
) -> None:
    await signed_in(client)
    events = await two_tenants_and_the_operator(client, receiver, db)
    by_owner = {
        owner: [r["id"] for r in await deliveries(db) if r["tenant_id"] == owner]
        for owner in events
    }

    everything = await page(client, "/admin/deliveries")
    assert all(d in everything for ids in by_owner.values() for d in ids)
    assert 'href="/admin/tenants/acme"' in everything
    assert 'href="/admin/tenants/globex"' in everything
    assert ">operator<" in everything

    acme = await page(client, "/admin/deliveries?tenant=acme")
    assert all(d in acme for d in by_owner["acme"])
    assert not any(d in acme for d in by_owner["globex"] + by_owner[None])
    assert 'href="/admin/tenants/globex"' not in acme
    # Pages and bulk actions keep the filter.
    assert "/admin/deliveries/bulk/retry?tenant=acme" in acme

    mine = await page(client, f"/admin/deliveries?tenant={quote(OPERATOR)}")
    assert all(d in mine for d in by_owner[None])
    assert not any(d in mine for d in by_owner["acme"] + by_owner["globex"])

    listed = await page(client, "/admin/events?tenant=globex")
    assert events["globex"][0] in listed
    assert not any(e in listed for e in events["acme"] + events[None])
    assert 'href="/admin/tenants/globex"' in listed
    listed = await page(client, f"/admin/events?tenant={quote(OPERATOR)}")
    assert events[None][0] in listed
    assert not any(e in listed for e in events["acme"] + events["globex"])

    hooks = await page(client, f"/admin/webhooks?tenant={quote(OPERATOR)}")
    assert ">hook-mine<" in hooks
    assert ">hook-acme<" not in hooks and ">hook-globex<" not in hooks
    hooks = await page(client, f"/admin/webhooks?tenant={quote(OPERATOR)}&q=hook")
    # (The search highlights what it matched.)
    assert hooks.count('class="primary-cell"') == 1 and "/admin/tenants/" not in hooks

    detail = await page(client, f"/admin/events/{events['acme'][0]}")
    assert 'href="/admin/tenants/acme"' in detail
    detail = await page(client, f"/admin/deliveries/{by_owner['globex'][0]}")
    assert 'href="/admin/tenants/globex"' in detail
    detail = await page(client, f"/admin/deliveries/{by_owner[None][0]}")
    assert 'href="/admin/tenants/' not in detail
    assert ">operator<" in detail


async def test_a_malformed_tenant_is_explained_not_applied(client: Client) -> None:
    await signed_in(client)
    for path in ("/admin/deliveries?tenant=a%20b", "/admin/events?tenant=a%20b"):
        text = html.unescape(await page(client, path))
        assert 'aria-invalid="true" aria-describedby="tenant-error"' in text, path
        assert "Enter a tenant id" in text, path
    text = await page(client, "/admin/deliveries/bulk/cancel?tenant=a%20b")
    assert "Nothing to cancel" in text


async def test_bulk_actions_are_confined_to_the_tenant_filter(
    client: Client, receiver: Receiver, db: asyncpg.Connection
) -> None:
    csrf = await signed_in(client)
    await two_tenants_and_the_operator(client, receiver, db)
    # Make every delivery wait (as if each endpoint had been down), none due.
    await db.execute("UPDATE deliveries SET status = 'retrying', due_at = NULL")

    text = await page(client, "/admin/deliveries/bulk/cancel?tenant=acme")
    assert 'id="bulk-count">2<' in text
    assert "<code>acme</code>" in text
    text = await page(client, f"/admin/deliveries/bulk/retry?tenant={quote(OPERATOR)}")
    assert 'id="bulk-count">1<' in text
    assert "The operator's own only" in html.unescape(text)
    assert 'id="bulk-count">4<' in await page(client, "/admin/deliveries/bulk/cancel")

    resp = await client.post(
        "/admin/deliveries/bulk/cancel",
        data={"tenant": "acme", "csrf_token": csrf},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert resp.headers["Location"] == "/admin/deliveries?tenant=acme"
    assert "2 deliveries cancelled." in await page(client, resp.headers["Location"])
    statuses = sorted((r["tenant_id"] or "", r["status"]) for r in await deliveries(db))
    assert statuses == [
        ("", "retrying"),
        ("acme", "cancelled"),
        ("acme", "cancelled"),
        ("globex", "retrying"),
    ]

    resp = await client.post(
        "/admin/deliveries/bulk/cancel",
        data={"tenant": OPERATOR, "csrf_token": csrf},
        allow_redirects=False,
    )
    assert resp.status == 303
    statuses = sorted((r["tenant_id"] or "", r["status"]) for r in await deliveries(db))
    assert statuses == [
        ("", "cancelled"),
        ("acme", "cancelled"),
        ("acme", "cancelled"),
        ("globex", "retrying"),
    ]


def _indexes(plan: Any) -> set[str]:
    """Every index an EXPLAIN (FORMAT JSON) plan reads."""
    found: set[str] = set()
    if isinstance(plan, dict):
        if "Index Name" in plan:
            found.add(plan["Index Name"])
        for value in plan.values():
            found |= _indexes(value)
    elif isinstance(plan, list):
        for value in plan:
            found |= _indexes(value)
    return found


async def test_a_tenants_pages_are_served_by_the_tenant_indexes(db: asyncpg.Connection) -> None:
    # 20,000 events and deliveries over 100 tenants (1 in 10 the operator's): one tenant's
    # page is 1% of the table, which a scan of the primary key would wade through.
    await db.execute(
        """
        INSERT INTO events (id, type, data, occurred_at, created_at, tenant_id)
        SELECT 'evt_' || lpad(n::text, 8, '0'), 'order.created', '{}', now(),
               now() - make_interval(secs => 20000 - n),
               CASE WHEN n % 10 = 0 THEN NULL ELSE 't' || (n % 100) END
        FROM generate_series(1, 20000) AS n;
        INSERT INTO deliveries (id, event_id, webhook_id, event_type, status, tenant_id)
        SELECT 'dlv_' || substr(id, 5), id, 'wh_x', type, 'failed', tenant_id FROM events;
        ANALYZE events;
        ANALYZE deliveries;
        SET plan_cache_mode = force_custom_plan;
        """
    )

    async def indexes(query: str, *args: Any) -> set[str]:
        plan = await db.fetchval(f"EXPLAIN (FORMAT JSON) {query}", *args)
        return _indexes(json.loads(plan))

    none = (None,) * 6  # webhook, event, status, type, from, to
    assert "deliveries_tenant" in await indexes(
        DELIVERY_Q["console_deliveries"], None, *none, "t7", False, 26
    )
    assert "deliveries_tenant" in await indexes(
        DELIVERY_Q["console_bulk_page"], None, *none, "t7", False, "retry", 1000
    )
    assert "events_tenant" in await indexes(
        EVENT_Q["console_events"], None, None, None, 26, "t7", False
    )
    # The pages read what the plan promises: only t7's rows.
    rows = await db.fetch(DELIVERY_Q["console_deliveries"], None, *none, "t7", False, 26)
    assert len(rows) == 26 and {r["tenant_id"] for r in rows} == {"t7"}
    rows = await db.fetch(EVENT_Q["console_events"], None, None, None, 26, None, True)
    assert len(rows) == 26 and {r["tenant_id"] for r in rows} == {None}


def test_a_tenant_filter_is_an_id_the_operator_or_nothing() -> None:
    assert tenant_filter("") == TenantFilter()
    assert tenant_filter("  acme.eu:1 ") == TenantFilter(tenant_id="acme.eu:1")
    assert tenant_filter(OPERATOR) == TenantFilter(operator_only=True)
    for bad in ("a b", "acme\nx", "x" * 129, "(operator"):
        parsed = tenant_filter(bad)
        assert parsed.error and parsed.tenant_id is None and not parsed.operator_only, bad
