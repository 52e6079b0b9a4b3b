"""The console for running Dispatcher day to day, without a browser: delivery filters and
search, the events pages, bulk retry/cancel counted before confirming, and an attempt's
request as sent next to its response."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from admin.chart import bar_chart, latency_chart
from admin.forms import in_words
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


def ago(**delta: float) -> str:
    """A datetime-local form value, ``delta`` before now (UTC)."""
    return (datetime.now(UTC) - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M")


async def test_replay_failed_from_the_console_counts_then_confirms(
    client: Client, receiver: Receiver, db: asyncpg.Connection
) -> None:
    csrf = await signed_in(client)
    receiver.responders["/hook"] = answer(400)
    hook = await create_webhook(client, url=receiver.url())
    await publish(client)
    await publish(client)
    await settled(db, 2)
    since = ago(hours=1)
    text = await page(client, f"/admin/webhooks/{hook['id']}/replay?mode=failed&since={since}")
    assert 'id="replay-count">2<' in text and "Replay 2" in text
    resp = await client.post(
        f"/admin/webhooks/{hook['id']}/replay",
        data={"mode": "failed", "since": since},
        allow_redirects=False,
    )
    assert resp.status == 403
    assert len(receiver.at()) == 2
    receiver.responders["/hook"] = answer(200)
    resp = await client.post(
        f"/admin/webhooks/{hook['id']}/replay",
        data={"mode": "failed", "since": since, "csrf_token": csrf},
        allow_redirects=False,
    )
    assert resp.status == 303
    await receiver.wait_for(4)
    assert "2 failed deliveries queued again." in await page(client, resp.headers["Location"])


async def test_send_what_was_missed_from_the_console(
    client: Client, receiver: Receiver, db: asyncpg.Connection
) -> None:
    csrf = await signed_in(client)
    hook = await create_webhook(client, url=receiver.url(), enabled=False)
    missed_events = [await publish(client) for _ in range(3)]
    resp = await client.post(f"/v1/webhooks/{hook['id']}/enable", headers=ADMIN)
    assert resp.status == 200
    since = ago(minutes=30)
    path = f"/admin/webhooks/{hook['id']}/replay?mode=missing&since={since}"
    text = await page(client, path)
    assert 'id="replay-count">3<' in text and "Send 3" in text
    assert await deliveries(db) == []  # the preview creates nothing
    resp = await client.post(
        f"/admin/webhooks/{hook['id']}/replay",
        data={"mode": "missing", "since": since, "csrf_token": csrf},
        allow_redirects=False,
    )
    assert resp.status == 303
    got = await receiver.wait_for(3)
    assert {r.headers["webhook-id"] for r in got} == {e["id"] for e in missed_events}
    assert "3 missed deliveries created and queued." in await page(client, resp.headers["Location"])
    assert "Nothing to send since" in await page(client, path)


async def test_replay_needs_a_time_in_words(client: Client) -> None:
    await signed_in(client)
    hook = await create_webhook(client)
    for since, message in (
        ("", "Choose when to replay from."),
        ("last tuesday", "Enter a date and time, like 2026-11-25 14:00 (UTC)."),
        (
            (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M"),
            "Choose a time in the past.",
        ),
    ):
        resp = await client.get(f"/admin/webhooks/{hook['id']}/replay?mode=missing&since={since}")
        assert resp.status == 422
        assert message in await resp.text()


async def test_webhook_page_charts_attempts_success_and_latency(
    client: Client, db: asyncpg.Connection
) -> None:
    await signed_in(client)
    hook = await create_webhook(client)
    other = await create_webhook(client, name="other")
    await db.execute(
        "INSERT INTO events (id, type, data, occurred_at) VALUES ('evt_p', 'order.created', "
        "'{}', now())"
    )
    for delivery_id, webhook_id in (("dlv_p1", hook["id"]), ("dlv_p2", other["id"])):
        await db.execute(
            "INSERT INTO deliveries (id, event_id, webhook_id, event_type, status) "
            "VALUES ($1, 'evt_p', $2, 'order.created', 'success')",
            delivery_id,
            webhook_id,
        )
    # Last hour: 3 of 4 succeeded, durations 10, 20, 30, 1000 ms; six hours ago: 2 failures.
    rows = [
        (hook["id"], "dlv_p1", 200, 10.0, 5),
        (hook["id"], "dlv_p1", 200, 20.0, 10),
        (hook["id"], "dlv_p1", 200, 30.0, 15),
        (hook["id"], "dlv_p1", 500, 1000.0, 20),
        (hook["id"], "dlv_p1", 500, 50.0, 360),
        (hook["id"], "dlv_p1", 500, 50.0, 361),
        (other["id"], "dlv_p2", 500, 9.0, 5),
    ]
    for webhook_id, delivery_id, code, ms, minutes_ago in rows:
        await db.execute(
            # failed as the outcome write stores it (dispatcher.retry.classify): the charts
            # count that column.
            "INSERT INTO attempts (delivery_id, number, webhook_id, started_at, duration_ms, "
            "status_code, url, failed) VALUES ($1, 1, $2, now() - make_interval(mins => $3), "
            "$4, $5, 'http://example.com/', $5 >= 300)",
            delivery_id,
            webhook_id,
            minutes_ago,
            ms,
            code,
        )
    text = await page(client, f"/admin/webhooks/{hook['id']}")
    assert 'id="perf-attempts">4<' in text
    assert 'id="perf-rate">75.0%<' in text
    assert 'id="perf-p50">25 ms<' in text
    assert 'id="perf-p99">' in text and "Last hour" in text
    assert text.count('<rect class="failed"') == 1  # one bar holds the failure
    assert 'class="line p50"' in text and 'class="line p99"' in text
    text = await page(client, f"/admin/webhooks/{hook['id']}?span=day")
    assert 'id="perf-attempts">6<' in text
    assert 'id="perf-rate">50.0%<' in text
    assert "over the last day" in text
    empty = await create_webhook(client, name="quiet")
    text = await page(client, f"/admin/webhooks/{empty['id']}")
    assert 'id="perf-attempts">0<' in text and "No attempts in the last hour" in text


def test_bar_and_latency_charts_bucket_by_their_step() -> None:
    now = datetime(2026, 11, 25, 12, 10, tzinfo=UTC)
    step = timedelta(minutes=30)
    rows = [(now - timedelta(hours=3, minutes=5), 4, 1), (now, 2, 0)]
    chart = bar_chart(rows, now, slots=48, step=step, span="the last day")
    assert len(chart.bars) == 48
    assert (chart.succeeded, chart.failed, chart.peak) == (6, 1, 5)
    assert chart.bars[-1].label == "12:00 UTC: 2 succeeded, 0 failed"
    assert chart.bars[-7].label == "09:00 UTC: 4 succeeded, 1 failed"
    assert "per 30 minutes over the last day" in chart.summary
    line = latency_chart([(now, 20.0, 180.0)], now, slots=48, step=step)
    assert line.lines["p50"].count(",") == 1 and not line.empty
    assert latency_chart([], now, slots=60, step=timedelta(minutes=1)).empty


def test_form_errors_read_as_people_write_them() -> None:
    assert in_words(
        "event_types", "", "List should have at least 1 item after validation, not 0"
    ) == ("Choose at least one event type.")
    assert in_words("url", "", "Value error, must be an http:// or https:// URL") == (
        "Enter a URL starting with http:// or https://."
    )
    assert in_words("max_retries", "", "Input should be less than or equal to 100") == (
        "Enter 100 or less."
    )
    assert in_words("name", "", "String should have at most 255 characters") == (
        "Use at most 255 characters."
    )
    # Anything not known is still a sentence.
    assert in_words("headers", "", "'bad name' is not a valid header name") == (
        "'bad name' is not a valid header name."
    )
