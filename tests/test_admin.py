"""The admin console without a browser: sessions, CSRF, secrets, forms and the pages."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from admin.chart import minute_chart, nice_step
from admin.forms import parse_headers, parse_metadata, split_event_types
from admin.session import Signer
from dispatcher.app_keys import REGISTRY
from tests.helpers import ADMIN, ADMIN_TOKEN, PUBLISH_TOKEN, PUBLISHER, webhook_body

Client = TestClient[Any, Any]
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')

PAGES = [
    "/admin",
    "/admin/",
    "/admin/webhooks",
    "/admin/webhooks/new",
    "/admin/deliveries",
    "/admin/event-types",
]


async def login(client: Client, token: str = ADMIN_TOKEN) -> Any:
    """Sign in through the form; returns the answer to the POST (not followed)."""
    page = await client.get("/admin/login")
    assert page.status == 200
    match = CSRF.search(await page.text())
    assert match
    return await client.post(
        "/admin/login",
        data={"token": token, "csrf_token": match.group(1), "next": "/admin/"},
        allow_redirects=False,
    )


async def signed_in(client: Client) -> str:
    """Sign in and return the session's CSRF token."""
    answer = await login(client)
    assert answer.status == 303, await answer.text()
    page = await client.get("/admin/")
    assert page.status == 200
    match = CSRF.search(await page.text())
    assert match
    return match.group(1)


async def create_webhook(client: Client, **overrides: Any) -> dict[str, Any]:
    answer = await client.post("/v1/webhooks", json=webhook_body(**overrides), headers=ADMIN)
    assert answer.status == 201, await answer.text()
    created: dict[str, Any] = await answer.json()
    return created


async def test_unauthenticated_requests_redirect_to_login(client: Client) -> None:
    for path in [*PAGES, "/admin/webhooks/wh_nope", "/admin/deliveries/dlv_nope"]:
        answer = await client.get(path, allow_redirects=False)
        assert answer.status == 303, path
        assert answer.headers["Location"].startswith("/admin/login"), path
    deep = await client.get("/admin/webhooks?state=active", allow_redirects=False)
    assert deep.headers["Location"] == "/admin/login?next=%2Fadmin%2Fwebhooks%3Fstate%3Dactive"


async def test_unauthenticated_post_changes_nothing(client: Client, db: asyncpg.Connection) -> None:
    hook = await create_webhook(client)
    for path in (
        f"/admin/webhooks/{hook['id']}/disable",
        f"/admin/webhooks/{hook['id']}/delete",
        "/admin/webhooks/new",
    ):
        answer = await client.post(
            path,
            data={"name": "x", "url": "http://127.0.0.1:9/", "event_types": "a"},
            allow_redirects=False,
        )
        assert answer.status == 303
        assert answer.headers["Location"].startswith("/admin/login")
    rows = await db.fetch("SELECT enabled FROM webhooks")
    assert [r["enabled"] for r in rows] == [True]


async def test_login_page_and_stylesheet_need_no_session(client: Client) -> None:
    page = await client.get("/admin/login")
    assert page.status == 200
    text = await page.text()
    assert '<label for="token">' in text
    css = re.search(r'href="(/admin/static/admin\.css\?v=[^"]+)"', text)
    assert css
    sheet = await client.get(css.group(1))
    assert sheet.status == 200
    assert sheet.content_type == "text/css"


async def test_admin_token_signs_in_with_a_strict_http_only_cookie(client: Client) -> None:
    answer = await login(client)
    assert answer.status == 303
    assert answer.headers["Location"] == "/admin/"
    cookie = next(
        v for v in answer.headers.getall("Set-Cookie") if v.startswith("dispatcher_session=")
    )
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/admin" in cookie
    assert "Secure" not in cookie  # plain http in tests
    assert ADMIN_TOKEN not in cookie
    overview = await client.get("/admin/", allow_redirects=False)
    assert overview.status == 200
    assert "<h1>Overview</h1>" in await overview.text()


async def test_cookie_is_secure_behind_https(client: Client) -> None:
    https = {"X-Forwarded-Proto": "https"}
    page = await client.get("/admin/login", headers=https)
    login_cookie = next(
        v for v in page.headers.getall("Set-Cookie") if v.startswith("dispatcher_login=")
    )
    assert "Secure" in login_cookie
    nonce = login_cookie.split(";", 1)[0].split("=", 1)[1]
    match = CSRF.search(await page.text())
    assert match
    # The jar keeps Secure cookies from a plain-http test server, so send it by hand.
    client.session.cookie_jar.clear()
    answer = await client.post(
        "/admin/login",
        data={"token": ADMIN_TOKEN, "csrf_token": match.group(1)},
        headers={**https, "Cookie": f"dispatcher_login={nonce}"},
        allow_redirects=False,
    )
    assert answer.status == 303
    cookie = next(
        v for v in answer.headers.getall("Set-Cookie") if v.startswith("dispatcher_session=")
    )
    assert "Secure" in cookie


@pytest.mark.parametrize("token", [PUBLISH_TOKEN, "wrong-token-0123456789", ""])
async def test_other_tokens_cannot_sign_in(client: Client, token: str) -> None:
    answer = await login(client, token)
    assert answer.status == 401
    assert "That is not the admin token." in await answer.text()
    assert not any(
        v.startswith("dispatcher_session=") for v in answer.headers.getall("Set-Cookie", [])
    )
    after = await client.get("/admin/", allow_redirects=False)
    assert after.status == 303


async def test_login_form_needs_its_csrf_token(client: Client) -> None:
    await client.get("/admin/login")
    for token in ("", "forged"):
        answer = await client.post(
            "/admin/login",
            data={"token": ADMIN_TOKEN, "csrf_token": token},
            allow_redirects=False,
        )
        assert answer.status == 403
    assert (await client.get("/admin/", allow_redirects=False)).status == 303


async def test_repeated_failed_logins_are_throttled_but_the_admin_token_signs_in(
    client: Client,
) -> None:
    for _ in range(10):
        assert (await login(client, "wrong-token-0123456789")).status == 401
    throttled = await login(client, "wrong-token-0123456789")
    assert throttled.status == 429
    assert "Too many wrong tokens" in await throttled.text()
    assert throttled.headers["Retry-After"]
    # Guessing from the same address does not lock the operator out.
    assert (await login(client, ADMIN_TOKEN)).status == 303
    assert (await client.get("/admin/", allow_redirects=False)).status == 200
    client.session.cookie_jar.clear()
    for _ in range(2):
        assert (await login(client, "wrong-token-0123456789")).status == 429


async def test_next_only_leads_into_the_console(client: Client) -> None:
    page = await client.get("/admin/login?next=https://evil.example/")
    match = CSRF.search(await page.text())
    assert match
    for target, expected in (
        ("https://evil.example/", "/admin/"),
        ("//evil.example/admin", "/admin/"),
        ("/admin/\r\nSet-Cookie: x=1", "/admin/"),
        ("/admin/event-types", "/admin/event-types"),
    ):
        client.session.cookie_jar.clear_domain("127.0.0.1")
        page = await client.get("/admin/login")
        match = CSRF.search(await page.text())
        assert match
        answer = await client.post(
            "/admin/login",
            data={"token": ADMIN_TOKEN, "csrf_token": match.group(1), "next": target},
            allow_redirects=False,
        )
        assert answer.headers["Location"] == expected


async def test_logout_ends_the_session(client: Client) -> None:
    csrf = await signed_in(client)
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/admin/"))
    old = cookie["dispatcher_session"].value
    answer = await client.post("/admin/logout", data={"csrf_token": csrf}, allow_redirects=False)
    assert answer.status == 303
    assert answer.headers["Location"] == "/admin/login"
    assert (await client.get("/admin/", allow_redirects=False)).status == 303
    page = await client.get("/admin/login")
    assert "You have been signed out." in await page.text()
    # The old cookie, replayed, is refused too.
    client.session.cookie_jar.update_cookies({"dispatcher_session": old}, client.make_url("/admin"))
    assert (await client.get("/admin/", allow_redirects=False)).status == 303


async def test_logout_needs_csrf(client: Client) -> None:
    await signed_in(client)
    answer = await client.post("/admin/logout", data={}, allow_redirects=False)
    assert answer.status == 403
    assert (await client.get("/admin/", allow_redirects=False)).status == 200


async def test_forged_or_expired_session_cookies_are_refused(client: Client) -> None:
    signer = Signer(ADMIN_TOKEN)
    good, _ = signer.issue()
    expires, nonce, signature = good.split(".", 2)
    expired, _ = signer.issue(now=0)
    for value in (
        "garbage",
        f"{int(expires) + 1000}.{nonce}.{signature}",  # extended expiry, old signature
        Signer("some-other-admin-token").issue()[0],
        expired,
    ):
        client.session.cookie_jar.update_cookies(
            {"dispatcher_session": value}, client.make_url("/admin")
        )
        assert (await client.get("/admin/", allow_redirects=False)).status == 303, value
    jar = client.session.cookie_jar
    jar.update_cookies({"dispatcher_session": good}, client.make_url("/admin"))
    assert (await client.get("/admin/", allow_redirects=False)).status == 200


async def test_posts_without_valid_csrf_are_rejected_and_change_nothing(
    client: Client, db: asyncpg.Connection
) -> None:
    csrf = await signed_in(client)
    hook = await create_webhook(client)
    other = Signer(ADMIN_TOKEN).issue()[1].csrf  # a valid token of another session
    actions = [
        (f"/admin/webhooks/{hook['id']}/disable", {}),
        (f"/admin/webhooks/{hook['id']}/delete", {}),
        (f"/admin/webhooks/{hook['id']}/secret/rotate", {}),
        (f"/admin/webhooks/{hook['id']}/edit", {"name": "changed", "url": hook["url"]}),
        ("/admin/webhooks/new", {"name": "n", "url": "http://127.0.0.1:9/", "event_types": "a"}),
        ("/admin/event-types", {"name": "order.created"}),
    ]
    secret_before = await db.fetchval("SELECT secret FROM webhook_secrets")
    for path, data in actions:
        for token in (None, "", "wrong", other, csrf + "x"):
            body = dict(data)
            if token is not None:
                body["csrf_token"] = token
            answer = await client.post(path, data=body, allow_redirects=False)
            assert answer.status == 403, (path, token)
            assert "This form could not be accepted" in await answer.text()
    assert await db.fetchval("SELECT count(*) FROM webhooks") == 1
    row = await db.fetchrow("SELECT name, enabled FROM webhooks")
    assert row is not None
    assert (row["name"], row["enabled"]) == ("orders", True)
    assert await db.fetchval("SELECT secret FROM webhook_secrets") == secret_before
    assert await db.fetchval("SELECT count(*) FROM event_types") == 0
    # The right token works.
    ok = await client.post(
        f"/admin/webhooks/{hook['id']}/disable", data={"csrf_token": csrf}, allow_redirects=False
    )
    assert ok.status == 303
    assert await db.fetchval("SELECT enabled FROM webhooks") is False


async def test_secret_appears_only_when_asked_for(client: Client) -> None:
    csrf = await signed_in(client)
    hook = await create_webhook(client)
    secret = hook["secret"]
    event = await client.post(
        "/v1/events", json={"type": "order.created", "data": {"n": 1}}, headers=PUBLISHER
    )
    assert event.status == 202
    deliveries = await (await client.get("/v1/deliveries", headers=ADMIN)).json()
    delivery_id = deliveries["data"][0]["id"]
    pages = [
        *PAGES,
        f"/admin/webhooks/{hook['id']}",
        f"/admin/webhooks/{hook['id']}/edit",
        f"/admin/webhooks/{hook['id']}/logs",
        f"/admin/webhooks/{hook['id']}/delete",
        f"/admin/deliveries/{delivery_id}",
        "/admin/webhooks?q=orders",
    ]
    for path in pages:
        answer = await client.get(path)
        assert answer.status == 200, path
        text = await answer.text()
        assert secret not in text, path
        assert secret.removeprefix("whsec_") not in text, path
        assert ADMIN_TOKEN not in text, path
        assert PUBLISH_TOKEN not in text, path
    shown = await client.get(f"/admin/webhooks/{hook['id']}?secret=show")
    assert shown.headers["Cache-Control"] == "no-store"
    assert secret in await shown.text()
    # Rotation shows the new secret, and only that one.
    rotated = await client.post(
        f"/admin/webhooks/{hook['id']}/secret/rotate", data={"csrf_token": csrf}
    )
    assert rotated.status == 200
    text = await rotated.text()
    new = (await (await client.get(f"/v1/webhooks/{hook['id']}/secret", headers=ADMIN)).json())[
        "secret"
    ]
    assert new != secret
    assert new in text
    assert secret not in text
    assert "Secret rotated." in text
    assert new not in await (await client.get(f"/admin/webhooks/{hook['id']}")).text()


async def test_security_headers(client: Client) -> None:
    await signed_in(client)
    for path in ("/admin/", "/admin/login", "/admin/webhooks"):
        answer = await client.get(path)
        csp = answer.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp
        assert "frame-ancestors 'none'" in csp
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["Cache-Control"] == "no-store"


async def test_the_api_keeps_its_own_auth(client: Client) -> None:
    await signed_in(client)  # a console session is not an API credential
    answer = await client.get("/v1/webhooks")
    assert answer.status == 401
    assert answer.content_type == "application/problem+json"


async def test_every_page_renders(client: Client, db: asyncpg.Connection) -> None:
    await signed_in(client)
    hook = await create_webhook(client, metadata={"team": "billing"}, headers={"X-Key": "v"})
    await client.post("/v1/event-types", json={"name": "order.created"}, headers=ADMIN)
    await client.post(
        "/v1/events", json={"type": "order.created", "data": {"n": 1}}, headers=PUBLISHER
    )
    await db.execute(
        "UPDATE webhooks SET enabled = false, disabled_reason = 'gone', disabled_at = now()"
    )
    for path in [
        *PAGES,
        f"/admin/webhooks/{hook['id']}",
        f"/admin/webhooks/{hook['id']}/logs",
        f"/admin/webhooks/{hook['id']}/logs?status=created",
        "/admin/webhooks?state=disabled",
        "/admin/webhooks?cursor=garbage",
        "/admin/deliveries?status=failed",
        "/admin/event-types/order.created",
        "/admin/event-types/order.created/delete",
    ]:
        answer = await client.get(path)
        assert answer.status == 200, path
        assert answer.content_type == "text/html", path
    details = await (await client.get(f"/admin/webhooks/{hook['id']}")).text()
    assert "Endpoint gone since" in details
    assert "410 Gone" in details


async def test_missing_things_get_an_html_404(client: Client) -> None:
    await signed_in(client)
    for path in (
        "/admin/webhooks/wh_missing",
        "/admin/deliveries/dlv_missing",
        "/admin/event-types/nope",
        "/admin/nothing-here",
    ):
        answer = await client.get(path)
        assert answer.status == 404, path
        assert answer.content_type == "text/html"
        assert "Not Found" in await answer.text()


async def test_create_form_reports_the_api_field_errors(client: Client) -> None:
    csrf = await signed_in(client)
    answer = await client.post(
        "/admin/webhooks/new",
        data={
            "csrf_token": csrf,
            "name": "",
            "url": "ftp://example.com/",
            "event_types": " , \n",
            "headers": "no colon here",
            "metadata": "[1, 2]",
            "max_retries": "1.5",
            "timeout_seconds": "900",
        },
    )
    assert answer.status == 422
    text = await answer.text()
    # The API's field errors, in words people use.
    assert "Enter a name." in text
    assert "Enter a URL starting with http:// or https://." in text
    assert "Choose at least one event type." in text
    assert "Enter 300 or less." in text
    assert "Line 1: write each header as Name: value." in text
    assert "Enter a JSON object" in text
    assert "Enter a whole number, like 5." in text
    assert "should have" not in text and "Input should" not in text
    assert 'id="url-error"' in text
    assert 'aria-invalid="true" aria-describedby="url-error"' in text
    assert 'value="ftp://example.com/"' in text  # what was typed is kept
    assert (await (await client.get("/v1/webhooks", headers=ADMIN)).json())["data"] == []


async def test_private_targets_are_refused_like_the_api(make_client: Any) -> None:
    client = await make_client(allow_private_targets=False)
    csrf = await signed_in(client)
    answer = await client.post(
        "/admin/webhooks/new",
        data={
            "csrf_token": csrf,
            "name": "internal",
            "url": "http://127.0.0.1:8080/hook",
            "event_types": "order.created",
        },
    )
    assert answer.status == 422
    text = await answer.text()
    api = await client.post(
        "/v1/webhooks", json=webhook_body(url="http://127.0.0.1:8080/hook"), headers=ADMIN
    )
    assert api.status == 422
    message = (await api.json())["errors"][0]["message"]
    assert message in text


async def test_create_and_edit_apply_at_once(client: Client) -> None:
    csrf = await signed_in(client)
    answer = await client.post(
        "/admin/webhooks/new",
        data={
            "csrf_token": csrf,
            "name": "Billing",
            "url": "http://127.0.0.1:9/billing",
            "event_types": "invoice.*, order.created\nrefund.issued",
            "headers": "X-Api-Key: abc\nX-Team: billing",
            "metadata": '{"owner": "ana"}',
            "include_payload": "on",
            "enabled": "on",
            "max_retries": "3",
            "timeout_seconds": "2.5",
            "description": "The billing service",
        },
        allow_redirects=False,
    )
    assert answer.status == 303, await answer.text()
    location = answer.headers["Location"]
    hook_id = location.rsplit("/", 1)[1]
    api = await (await client.get(f"/v1/webhooks/{hook_id}", headers=ADMIN)).json()
    assert api["event_types"] == ["invoice.*", "order.created", "refund.issued"]
    assert api["headers"] == {"X-Api-Key": "abc", "X-Team": "billing"}
    assert api["metadata"] == {"owner": "ana"}
    assert (api["max_retries"], api["timeout_seconds"]) == (3, 2.5)
    assert api["include_payload"] is True and api["enabled"] is True
    page = await client.get(location)
    assert "created. Reveal its signing secret below." in await page.text()
    registry = client.app[REGISTRY]
    assert registry.webhooks[hook_id].url == "http://127.0.0.1:9/billing"

    form = await (await client.get(f"/admin/webhooks/{hook_id}/edit")).text()
    assert "X-Api-Key: abc" in form
    assert 'value="2.5"' in form
    edited = await client.post(
        f"/admin/webhooks/{hook_id}/edit",
        data={
            "csrf_token": csrf,
            "name": "Billing v2",
            "url": "http://127.0.0.1:9/v2",
            "event_types": "invoice.paid",
            "headers": "",
            "metadata": "",
            "max_retries": "",
            "timeout_seconds": "",
        },
        allow_redirects=False,
    )
    assert edited.status == 303
    api = await (await client.get(f"/v1/webhooks/{hook_id}", headers=ADMIN)).json()
    assert api["name"] == "Billing v2"
    assert api["event_types"] == ["invoice.paid"]
    assert api["headers"] == {} and api["metadata"] == {}
    assert api["max_retries"] is None and api["timeout_seconds"] is None
    assert api["include_payload"] is False  # unchecked box
    assert registry.webhooks[hook_id].url == "http://127.0.0.1:9/v2"

    bad = await client.post(
        f"/admin/webhooks/{hook_id}/edit",
        data={"csrf_token": csrf, "name": "x", "url": "http://h/", "event_types": "bad name"},
    )
    assert bad.status == 422
    assert "“bad name” is not an event type: use a name like order.created" in await bad.text()


async def test_delivery_actions_show_409_as_a_message(client: Client, receiver: Any) -> None:
    csrf = await signed_in(client)
    await create_webhook(client, url=receiver.url())
    await client.post(
        "/v1/events", json={"type": "order.created", "data": {"n": 1}}, headers=PUBLISHER
    )
    await receiver.wait_for(1)
    delivery: dict[str, Any] = {}
    for _ in range(50):
        listed = await (await client.get("/v1/deliveries", headers=ADMIN)).json()
        delivery = listed["data"][0]
        if delivery["status"] == "success":
            break
        await asyncio.sleep(0.1)
    assert delivery["status"] == "success"
    page = await (await client.get(f"/admin/deliveries/{delivery['id']}")).text()
    assert "Retry now" not in page and "Cancel delivery" not in page
    assert "&#34;n&#34;: 1" in page  # the payload, pretty-printed and escaped
    for action, message in (
        ("retry", "This delivery already succeeded."),
        ("cancel", "This delivery has finished (success)."),
    ):
        answer = await client.post(
            f"/admin/deliveries/{delivery['id']}/{action}", data={"csrf_token": csrf}
        )
        assert answer.status == 200
        assert message in await answer.text()


async def test_ping_of_a_disabled_webhook_is_a_message(client: Client) -> None:
    csrf = await signed_in(client)
    hook = await create_webhook(client, enabled=False)
    answer = await client.post(f"/admin/webhooks/{hook['id']}/ping", data={"csrf_token": csrf})
    assert answer.status == 200
    assert "The webhook is disabled; enable it to ping it." in await answer.text()


async def test_event_types_through_the_console(client: Client) -> None:
    csrf = await signed_in(client)
    created = await client.post(
        "/admin/event-types",
        data={
            "csrf_token": csrf,
            "name": "order.created",
            "description": "An order",
            "enabled": "on",
        },
    )
    assert created.status == 200
    assert "Event type “order.created” added." in await created.text()
    duplicate = await client.post(
        "/admin/event-types", data={"csrf_token": csrf, "name": "order.created"}
    )
    assert duplicate.status == 422
    assert "already exists" in await duplicate.text()
    invalid = await client.post("/admin/event-types", data={"csrf_token": csrf, "name": "bad name"})
    assert invalid.status == 422
    assert "Use dot-separated words of letters, digits" in await invalid.text()
    await client.post("/admin/event-types/order.created/disable", data={"csrf_token": csrf})
    got = await (await client.get("/v1/event-types/order.created", headers=ADMIN)).json()
    assert got["enabled"] is False
    assert "order.created" in client.app[REGISTRY].disabled_types
    await client.post(
        "/admin/event-types/order.created", data={"csrf_token": csrf, "description": "Changed"}
    )
    got = await (await client.get("/v1/event-types/order.created", headers=ADMIN)).json()
    assert got["description"] == "Changed"
    await client.post("/admin/event-types/order.created/delete", data={"csrf_token": csrf})
    gone = await client.get("/v1/event-types/order.created", headers=ADMIN)
    assert gone.status == 404


async def test_webhook_search_filter_and_pages(client: Client) -> None:
    await signed_in(client)
    for i in range(27):
        await create_webhook(client, name=f"hook-{i:02d}", url=f"http://127.0.0.1:9/h{i}")
    await create_webhook(client, name="Special", url="http://127.0.0.1:9/special", enabled=False)
    first = await (await client.get("/admin/webhooks")).text()
    assert first.count("<tr>") == 26  # header row + 25
    assert "Older →" in first
    cursor = re.search(r'href="\?cursor=([^"]+)" rel="next"', first)
    assert cursor
    second = await (await client.get(f"/admin/webhooks?cursor={cursor.group(1)}")).text()
    assert second.count("<tr>") == 4
    found = await (await client.get("/admin/webhooks?q=SPECIAL")).text()
    assert "<mark>Special</mark>" in found and "hook-01" not in found
    disabled = await (await client.get("/admin/webhooks?state=disabled")).text()
    assert "Special" in disabled and "hook-01" not in disabled
    none = await (await client.get("/admin/webhooks?state=active&q=special")).text()
    assert "No matching webhooks" in none


# Pure helpers


def test_form_parsers() -> None:
    assert split_event_types("a.b, c.*\n\n *  ,") == ["a.b", "c.*", "*"]
    assert parse_headers("X-A: 1\n\nX-B:two: three") == ({"X-A": "1", "X-B": "two: three"}, None)
    assert parse_headers("X-A 1")[1] == "Line 1: write each header as Name: value."
    assert parse_headers("X-A: 1\nX-A: 2")[1] == "X-A is given twice; keep one."
    assert parse_metadata("") == ({}, None)
    assert parse_metadata('{"n": 12345678901234567890}') == ({"n": 12345678901234567890}, None)
    assert parse_metadata("NaN")[1] is not None
    assert parse_metadata("[]")[1] is not None


def test_minute_chart_layout() -> None:
    now = datetime(2026, 1, 1, 12, 30, 20, tzinfo=UTC)
    rows = [
        (datetime(2026, 1, 1, 12, 30, tzinfo=UTC), 6, 2),
        (datetime(2026, 1, 1, 11, 40, tzinfo=UTC), 3, 0),
        (now - timedelta(hours=2), 100, 100),  # outside the window
    ]
    chart = minute_chart(rows, now=now)
    assert len(chart.bars) == 60
    assert (chart.succeeded, chart.failed, chart.peak) == (9, 2, 8)
    last = chart.bars[-1]
    assert last.label == "12:30 UTC: 6 succeeded, 2 failed"
    assert last.failed_y + last.failed_height == last.ok_y
    assert last.ok_y + last.ok_height == chart.bottom
    assert [t.label for t in chart.y_ticks] == ["0", "2", "4", "6", "8"]
    assert chart.x_ticks[-1].label == "now"
    assert minute_chart([], now=now).empty
    assert [nice_step(p) for p in (0, 4, 7, 21, 130)] == [1, 1, 2, 10, 50]
