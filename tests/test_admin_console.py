"""The console for running Dispatcher day to day, without a browser: delivery filters and
search, the events pages, bulk retry/cancel counted before confirming, and an attempt's
request as sent next to its response."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from tests.helpers import ADMIN, PUBLISHER
from tests.receiver import Receiver
from tests.test_admin import create_webhook, signed_in
from tests.test_delivery import answer, eventually

Client = TestClient[Any, Any]


async def publish(client: Client, type_: str = "order.created", **data: Any) -> dict[str, Any]:
    resp = await client.post(
        "/v1/events", json={"type": type_, "data": data or {"n": 1}}, headers=PUBLISHER
    )
    assert resp.status == 202, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def deliveries(db: asyncpg.Connection, **where: str) -> list[asyncpg.Record]:
    rows = await db.fetch("SELECT * FROM deliveries ORDER BY id")
    return [r for r in rows if all(r[k] == v for k, v in where.items())]


async def settled(db: asyncpg.Connection, count: int) -> None:
    """Wait until ``count`` deliveries exist and none is being sent."""

    async def check() -> bool:
        rows = await deliveries(db)
        return len(rows) == count and all(r["lease_owner"] is None for r in rows)

    await eventually(check, what=f"{count} settled deliveries")


async def page(client: Client, path: str) -> str:
    resp = await client.get(path)
    assert resp.status == 200, path
    return await resp.text()


async def test_deliveries_filter_by_webhook_type_status_and_time(
    client: Client, receiver: Receiver, db: asyncpg.Connection
) -> None:
    await signed_in(client)
    receiver.responders["/bad"] = answer(400)
    good = await create_webhook(client, name="good", url=receiver.url("/good"))
    bad = await create_webhook(client, name="bad", url=receiver.url("/bad"))
    await publish(client, "order.created")
    await publish(client, "order.shipped")
    await settled(db, 4)
    all_rows = await deliveries(db)

    def shown(text: str) -> set[str]:
        return {r["id"] for r in all_rows if f"/admin/deliveries/{r['id']}" in text}

    assert shown(await page(client, "/admin/deliveries")) == {r["id"] for r in all_rows}
    by_webhook = shown(await page(client, f"/admin/deliveries?webhook={good['id']}"))
    assert by_webhook == {r["id"] for r in all_rows if r["webhook_id"] == good["id"]}
    by_type = shown(await page(client, "/admin/deliveries?type=order.shipped"))
    assert by_type == {r["id"] for r in all_rows if r["event_type"] == "order.shipped"}
    failed = shown(await page(client, "/admin/deliveries?status=failed&type=order.created"))
    assert failed == {
        r["id"]
        for r in all_rows
        if r["webhook_id"] == bad["id"] and r["event_type"] == "order.created"
    }
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    soon = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M")
    assert len(shown(await page(client, f"/admin/deliveries?from={hour_ago}&to={soon}"))) == 4
    assert shown(await page(client, f"/admin/deliveries?from={soon}")) == set()
    assert shown(await page(client, f"/admin/deliveries?to={hour_ago}")) == set()
    # The status tabs keep the other filters.
    text = await page(client, f"/admin/deliveries?webhook={bad['id']}")
    assert f"?webhook={bad['id']}&amp;status=failed" in text


async def test_search_by_delivery_or_event_id(
    client: Client, receiver: Receiver, db: asyncpg.Connection
) -> None:
    await signed_in(client)
    await create_webhook(client, name="a", url=receiver.url("/a"))
    await create_webhook(client, name="b", url=receiver.url("/b"))
    first = await publish(client)
    await publish(client)
    await settled(db, 4)
    [one, *_] = await deliveries(db, event_id=first["id"])
    resp = await client.get(f"/admin/deliveries?q={one['id']}", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == f"/admin/deliveries/{one['id']}"
    text = await page(client, f"/admin/deliveries?q={first['id']}")
    listed = {r["id"] for r in await deliveries(db) if f"/admin/deliveries/{r['id']}" in text}
    assert listed == {r["id"] for r in await deliveries(db, event_id=first["id"])}
    assert len(listed) == 2
    assert "No deliveries match" in await page(client, "/admin/deliveries?q=evt_nothing")


async def test_bad_filters_are_explained_not_applied(client: Client) -> None:
    await signed_in(client)
    text = await page(client, "/admin/deliveries?type=not%20a%20type&from=yesterday")
    assert "Enter an event type name, like order.created." in text
    assert "Enter a date and time, like 2026-11-25 14:00 (UTC)." in text
    text = await page(client, "/admin/deliveries?from=2026-01-02T00:00&to=2026-01-01T00:00")
    assert "Choose an end after the start." in text


async def test_bulk_retry_shows_the_count_then_retries_on_confirm(
    client: Client, receiver: Receiver, db: asyncpg.Connection
) -> None:
    csrf = await signed_in(client)
    receiver.responders["/bad"] = answer(400)
    bad = await create_webhook(client, name="bad", url=receiver.url("/bad"))
    await create_webhook(client, name="good", url=receiver.url("/good"))
    for _ in range(3):
        await publish(client)
    await settled(db, 6)
    query = f"webhook={bad['id']}&status=failed"
    text = await page(client, f"/admin/deliveries/bulk/retry?{query}")
    assert 'id="bulk-count">3<' in text
    assert "Retry 3 deliveries" in text
    # Without the session's CSRF token nothing happens.
    resp = await client.post(
        "/admin/deliveries/bulk/retry",
        data={"webhook": bad["id"], "status": "failed"},
        allow_redirects=False,
    )
    assert resp.status == 403
    assert len(await deliveries(db, status="failed")) == 3
    receiver.responders["/bad"] = answer(200)
    resp = await client.post(
        "/admin/deliveries/bulk/retry",
        data={"webhook": bad["id"], "status": "failed", "csrf_token": csrf},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert resp.headers["Location"] == f"/admin/deliveries?{query}"
    await receiver.wait_for(6, "/bad")
    await eventually(
        lambda: _all_success(db), what="every delivery to succeed after the bulk retry"
    )
    flash = await page(client, resp.headers["Location"])
    assert "3 deliveries scheduled for an immediate attempt." in flash


async def _all_success(db: asyncpg.Connection) -> bool:
    return all(r["status"] == "success" for r in await deliveries(db))


async def test_bulk_cancel_counts_only_what_waits(
    client: Client, receiver: Receiver, db: asyncpg.Connection
) -> None:
    csrf = await signed_in(client)
    ok = await create_webhook(client, name="ok", url=receiver.url("/ok"))
    await publish(client)
    await settled(db, 1)
    held = await create_webhook(client, name="held", url=receiver.url("/held"))
    await publish(client, "order.shipped")
    await publish(client, "order.shipped")
    await settled(db, 5)
    resp = await client.post(f"/v1/webhooks/{held['id']}/disable", headers=ADMIN)
    assert resp.status == 200
    # Make the held webhook's two deliveries wait (as if its endpoint had been down).
    await db.execute(
        "UPDATE deliveries SET status = 'retrying', due_at = NULL WHERE webhook_id = $1",
        held["id"],
    )
    text = await page(client, "/admin/deliveries/bulk/cancel")
    assert 'id="bulk-count">2<' in text
    text = await page(client, f"/admin/deliveries/bulk/cancel?webhook={ok['id']}")
    assert "Nothing to cancel" in text and 'btn-danger" type="submit"' not in text
    resp = await client.post(
        "/admin/deliveries/bulk/cancel", data={"csrf_token": csrf}, allow_redirects=False
    )
    assert resp.status == 303
    statuses = sorted((r["webhook_id"] == held["id"], r["status"]) for r in await deliveries(db))
    assert statuses == [
        (False, "success"),
        (False, "success"),
        (False, "success"),
        (True, "cancelled"),
        (True, "cancelled"),
    ]
    assert "2 deliveries cancelled." in await page(client, resp.headers["Location"])


async def test_bulk_actions_are_only_retry_and_cancel(client: Client) -> None:
    csrf = await signed_in(client)
    assert (await client.get("/admin/deliveries/bulk/delete")).status == 404
    resp = await client.post("/admin/deliveries/bulk/delete", data={"csrf_token": csrf})
    assert resp.status == 404


async def test_events_page_lists_filters_and_shows_each_event_with_its_deliveries(
    client: Client, receiver: Receiver, db: asyncpg.Connection
) -> None:
    await signed_in(client)
    await create_webhook(client, name="alpha", url=receiver.url("/a"), event_types=["order.*"])
    await create_webhook(client, name="beta", url=receiver.url("/b"), event_types=["*"])
    order = await publish(client, "order.created", total=12)
    invoice = await publish(client, "invoice.paid")
    await settled(db, 3)
    text = await page(client, "/admin/events")
    assert f"/admin/events/{order['id']}" in text and f"/admin/events/{invoice['id']}" in text
    text = await page(client, "/admin/events?type=invoice.paid")
    assert f"/admin/events/{invoice['id']}" in text and f"/admin/events/{order['id']}" not in text
    resp = await client.get(f"/admin/events?q={order['id']}", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == f"/admin/events/{order['id']}"
    text = await page(client, f"/admin/events/{order['id']}")
    assert "alpha" in text and "beta" in text
    for row in await deliveries(db, event_id=order["id"]):
        assert f"/admin/deliveries/{row['id']}" in text
    assert "&#34;total&#34;: 12" in text
    assert (await client.get("/admin/events/evt_nope")).status == 404


async def test_an_attempt_shows_the_request_as_sent(
    client: Client, receiver: Receiver, db: asyncpg.Connection
) -> None:
    await signed_in(client)
    hook = await create_webhook(
        client, url=receiver.url(), headers={"X-Team": "billing-secret-value"}
    )
    event = await publish(client, total=7)
    [got] = await receiver.wait_for(1)
    await settled(db, 1)
    [delivery] = await deliveries(db)
    text = html.unescape(await page(client, f"/admin/deliveries/{delivery['id']}"))
    assert "Request as sent" in text
    assert got.body.decode() in text  # the body byte for byte
    received = {k.lower(): v for k, v in got.headers.items()}
    for name in ("webhook-id", "webhook-timestamp", "user-agent", "content-type"):
        assert f'<th scope="row">{name}</th><td class="mono">{received[name]}</td>' in text
    # Never rotated: the signature is the one the receiver got.
    assert got.headers["webhook-signature"] in text
    assert "recomputed with the secret that was current" in text
    # The webhook's own header values stay hidden.
    assert "x-team" in text.lower() and "billing-secret-value" not in text
    assert event["id"] in text

    resp = await client.post(f"/v1/webhooks/{hook['id']}/secret/rotate", headers=ADMIN)
    assert resp.status == 200
    text = html.unescape(await page(client, f"/admin/deliveries/{delivery['id']}"))
    assert got.headers["webhook-signature"] not in text
    assert "v1,••••••••" in text and "cannot be recomputed" in text


async def test_without_payload_the_request_shows_the_envelope_only(
    client: Client, receiver: Receiver, db: asyncpg.Connection
) -> None:
    await signed_in(client)
    await create_webhook(client, url=receiver.url(), include_payload=False)
    await publish(client, secret_total=99)
    [got] = await receiver.wait_for(1)
    await settled(db, 1)
    [delivery] = await deliveries(db)
    text = html.unescape(await page(client, f"/admin/deliveries/{delivery['id']}"))
    assert got.body.decode() in text and b"secret_total" not in got.body
