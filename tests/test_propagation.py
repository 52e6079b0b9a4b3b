"""Several instances on one database, in one process: a registration change made through one
applies on the others within a second (LISTEN/NOTIFY), a lost LISTEN connection is re-established
and what was missed is reloaded, and the periodic reload applies a change whose notification was
lost."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import pytest

from dispatcher.app_keys import LISTENER, REGISTRY
from tests.helpers import (
    PROPAGATION,
    Client,
    MakeClient,
    blocked_backend,
    call,
    create_webhook,
    deliveries_of,
    eventually,
    idle,
    listening,
    propagated,
    publish,
    two,
    verify,
)
from tests.receiver import Receiver

pytestmark = pytest.mark.timeout(60)


# --------------------------------------------------------------------------------------------
# a change made through one instance applies on the others within a second


async def test_change_made_while_a_new_instance_opens_its_listen_connection_reaches_it(
    receiver: Receiver, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An instance must not miss a change committed while its LISTEN connection is still
    being opened (here: held back until the change is committed). B loads its registry before
    it listens, so the change is only found by a reload after the first LISTEN (or by listening
    before loading); the periodic reload comes 300 s later."""
    a = await make_client()
    await listening(a)
    hook = await create_webhook(a, url=receiver.url("/old"))

    opening = asyncio.Event()
    release = asyncio.Event()
    real_connect = asyncpg.connect

    async def slow_listener_connect(*args: Any, **kwargs: Any) -> Any:
        settings = kwargs.get("server_settings") or {}
        if settings.get("application_name") == "dispatcher-listener":
            opening.set()
            await asyncio.wait_for(release.wait(), 10)
        return await real_connect(*args, **kwargs)

    monkeypatch.setattr(asyncpg, "connect", slow_listener_connect)
    # B starts; whether its start-up waits for the LISTEN connection or not, the change below
    # is committed while that connection is being opened.
    starting = asyncio.ensure_future(make_client())
    await asyncio.wait_for(opening.wait(), 10)
    await call(a, "PATCH", f"/v1/webhooks/{hook['id']}", 200, json={"url": receiver.url("/new")})
    release.set()
    b = await asyncio.wait_for(starting, 10)
    assert (await b.get("/readyz")).status == 200
    await asyncio.wait_for(b.app[LISTENER].connected.wait(), 5)
    await propagated(
        lambda: b.app[REGISTRY].webhooks[hook["id"]].url == receiver.url("/new"),
        "B to apply a change made while its LISTEN connection was being opened",
    )


async def test_created_webhook_is_used_by_another_instance_within_a_second(
    receiver: Receiver, make_client: MakeClient
) -> None:
    a, b = await two(make_client)
    hook = await create_webhook(a, url=receiver.url("/new"))
    await propagated(lambda: hook["id"] in b.app[REGISTRY].webhooks, "B to learn the webhook")
    sent = await publish(b)
    assert sent["deliveries"] == 1
    [got] = await receiver.wait_for(1, "/new", timeout=5)
    assert got.json()["id"] == sent["id"]
    verify(hook["secret"], got)


async def test_url_and_patterns_changed_on_one_instance_apply_on_another(
    receiver: Receiver, make_client: MakeClient
) -> None:
    a, b = await two(make_client)
    hook = await create_webhook(a, url=receiver.url("/old"))
    await propagated(lambda: hook["id"] in b.app[REGISTRY].webhooks, "B to learn the webhook")

    await call(a, "PATCH", f"/v1/webhooks/{hook['id']}", 200, json={"url": receiver.url("/new")})
    await propagated(
        lambda: b.app[REGISTRY].webhooks[hook["id"]].url == receiver.url("/new"),
        "B to use the new URL",
    )
    await publish(b)
    await receiver.wait_for(1, "/new", timeout=5)

    await call(a, "PATCH", f"/v1/webhooks/{hook['id']}", 200, json={"event_types": ["invoice.*"]})
    await propagated(
        lambda: not b.app[REGISTRY].webhooks[hook["id"]].matcher.matches("order.created"),
        "B to use the new patterns",
    )
    assert (await publish(b, "order.created"))["deliveries"] == 0
    assert (await publish(b, "invoice.paid"))["deliveries"] == 1
    await receiver.wait_for(2, "/new", timeout=5)
    await idle(a, b)
    assert receiver.at("/old") == []


async def test_disable_and_enable_on_one_instance_apply_on_another(
    receiver: Receiver, make_client: MakeClient, db: asyncpg.Connection
) -> None:
    a, b = await two(make_client)
    hook = await create_webhook(a, url=receiver.url())
    await propagated(lambda: hook["id"] in b.app[REGISTRY].webhooks, "B to learn the webhook")

    await call(a, "POST", f"/v1/webhooks/{hook['id']}/disable", 200)
    await propagated(
        lambda: not b.app[REGISTRY].webhooks[hook["id"]].enabled, "B to see it disabled"
    )
    assert (await publish(b))["deliveries"] == 0
    assert await deliveries_of(db, hook["id"]) == []

    await call(a, "POST", f"/v1/webhooks/{hook['id']}/enable", 200)
    await propagated(lambda: b.app[REGISTRY].webhooks[hook["id"]].enabled, "B to see it enabled")
    sent = await publish(b)
    assert sent["deliveries"] == 1
    [got] = await receiver.wait_for(1, timeout=5)
    assert got.json()["id"] == sent["id"]


async def test_delete_on_one_instance_applies_on_another(
    receiver: Receiver, make_client: MakeClient, db: asyncpg.Connection
) -> None:
    a, b = await two(make_client)
    hook = await create_webhook(a, url=receiver.url())
    await propagated(lambda: hook["id"] in b.app[REGISTRY].webhooks, "B to learn the webhook")

    await call(a, "DELETE", f"/v1/webhooks/{hook['id']}", 204)
    await propagated(lambda: hook["id"] not in b.app[REGISTRY].webhooks, "B to forget it")
    assert (await publish(b))["deliveries"] == 0
    assert await deliveries_of(db, hook["id"]) == []
    await idle(a, b)
    assert receiver.at() == []


async def test_rotated_secret_signs_on_another_instance_within_a_second(
    receiver: Receiver, make_client: MakeClient
) -> None:
    a, b = await two(make_client)
    hook = await create_webhook(a, url=receiver.url())
    await propagated(lambda: hook["id"] in b.app[REGISTRY].webhooks, "B to learn the webhook")

    new = (await call(a, "POST", f"/v1/webhooks/{hook['id']}/secret/rotate", 200))["secret"]
    assert new != hook["secret"]
    await propagated(
        lambda: new in [s for s, _ in b.app[REGISTRY].webhooks[hook["id"]].secrets],
        "B to sign with the new secret",
    )
    await publish(b)
    [got] = await receiver.wait_for(1, timeout=5)
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    verify(new, got)
    verify(hook["secret"], got)  # the old one is still in its grace period


async def test_event_type_disabled_on_one_instance_applies_on_another(
    receiver: Receiver, make_client: MakeClient
) -> None:
    a, b = await two(make_client)
    hook = await create_webhook(a, url=receiver.url())
    await propagated(lambda: hook["id"] in b.app[REGISTRY].webhooks, "B to learn the webhook")

    await call(a, "POST", "/v1/event-types", 201, json={"name": "order.created", "enabled": False})
    await propagated(
        lambda: "order.created" in b.app[REGISTRY].disabled_types, "B to see the type disabled"
    )
    assert (await publish(b, "order.created"))["deliveries"] == 0
    assert (await publish(b, "order.updated"))["deliveries"] == 1

    await call(a, "PATCH", "/v1/event-types/order.created", 200, json={"enabled": True})
    await propagated(
        lambda: "order.created" not in b.app[REGISTRY].disabled_types, "B to see it enabled"
    )
    assert (await publish(b, "order.created"))["deliveries"] == 1

    await call(a, "PATCH", "/v1/event-types/order.created", 200, json={"enabled": False})
    await propagated(
        lambda: "order.created" in b.app[REGISTRY].disabled_types, "B to see it disabled again"
    )
    await call(a, "DELETE", "/v1/event-types/order.created", 204)
    await propagated(
        lambda: "order.created" not in b.app[REGISTRY].disabled_types, "B to see it deleted"
    )
    assert (await publish(b, "order.created"))["deliveries"] == 1
    got = await receiver.wait_for(3, timeout=5)
    assert sorted(r.json()["type"] for r in got) == [
        "order.created",
        "order.created",
        "order.updated",
    ]


async def test_publishing_on_b_right_after_a_change_on_a(
    receiver: Receiver, make_client: MakeClient
) -> None:
    """Behaviour, not only the registry: B publishes in a loop until it sees the change."""
    a, b = await two(make_client)
    hook = await create_webhook(a, url=receiver.url())
    started = time.monotonic()

    async def delivered_by_b() -> bool:
        return bool((await publish(b))["deliveries"] == 1)

    await eventually(delivered_by_b, PROPAGATION, "B to fan out to the new webhook")
    assert time.monotonic() - started < PROPAGATION

    await call(a, "POST", f"/v1/webhooks/{hook['id']}/disable", 200)
    started = time.monotonic()

    async def not_delivered_by_b() -> bool:
        return bool((await publish(b))["deliveries"] == 0)

    await eventually(not_delivered_by_b, PROPAGATION, "B to stop fanning out to it")
    assert time.monotonic() - started < PROPAGATION


# --------------------------------------------------------------------------------------------
# a lost LISTEN connection is re-established and what was missed is reloaded


async def listener_pids(db: asyncpg.Connection) -> list[int]:
    """Backends of every dispatcher listener on the test database."""
    return [
        r["pid"]
        for r in await db.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'dispatcher-listener' "
            "AND datname = current_database()"
        )
    ]


async def metric_value(client: Client, name: str) -> float:
    """One unlabelled sample from ``/metrics``."""
    resp = await client.get("/metrics")
    assert resp.status == 200
    for line in (await resp.text()).splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def test_dropped_listen_connection_reconnects_and_reloads_what_it_missed(
    receiver: Receiver, make_client: MakeClient, db: asyncpg.Connection
) -> None:
    a, b = await two(make_client)
    moved = await create_webhook(a, url=receiver.url("/old"))
    quiet = await create_webhook(a, url=receiver.url("/quiet-old"))
    await propagated(lambda: quiet["id"] in b.app[REGISTRY].webhooks, "B to learn the webhooks")
    await asyncio.wait_for(b.app[LISTENER].connected.wait(), 5)
    reconnects = b.app[LISTENER].reconnects
    metric_before = await metric_value(b, "dispatcher_listen_reconnects_total")

    old_pids = await listener_pids(db)
    assert len(old_pids) == 2, old_pids  # A's and B's
    terminated = await db.fetch(
        "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity "
        "WHERE application_name = 'dispatcher-listener' AND datname = current_database()"
    )
    assert [r["ok"] for r in terminated] == [True, True]
    # A listener notices within 0.5 s and then waits at least 0.2 s before reconnecting, so
    # what follows (a few milliseconds) is missed: an API change on A whose NOTIFY reaches
    # nobody, and a change made directly in the database with no NOTIFY at all, which only a
    # reload can find.
    await db.execute(
        "UPDATE webhooks SET url = $2 WHERE id = $1", quiet["id"], receiver.url("/quiet-new")
    )
    await call(a, "PATCH", f"/v1/webhooks/{moved['id']}", 200, json={"url": receiver.url("/new")})

    async def reconnected() -> bool:
        return bool(b.app[LISTENER].reconnects > reconnects and b.app[LISTENER].connected.is_set())

    await eventually(reconnected, 10, "B's listener to reconnect")
    await propagated(
        lambda: (
            b.app[REGISTRY].webhooks[moved["id"]].url == receiver.url("/new")
            and b.app[REGISTRY].webhooks[quiet["id"]].url == receiver.url("/quiet-new")
        ),
        "B to reload what it missed",
    )
    assert await metric_value(b, "dispatcher_listen_reconnects_total") >= metric_before + 1
    new_pids = await listener_pids(db)
    assert len(new_pids) == 2 and not set(new_pids) & set(old_pids)

    await publish(b)
    await receiver.wait_for(1, "/new", timeout=5)
    await receiver.wait_for(1, "/quiet-new", timeout=5)

    # Notifications flow again on the new connection.
    await call(a, "POST", f"/v1/webhooks/{moved['id']}/disable", 200)
    await propagated(
        lambda: not b.app[REGISTRY].webhooks[moved["id"]].enabled, "B to see the next change"
    )
    await idle(a, b)
    assert receiver.at("/old") == [] and receiver.at("/quiet-old") == []


async def test_reload_after_reconnect_does_not_undo_a_newer_change(
    receiver: Receiver, make_client: MakeClient, db: asyncpg.Connection, database_url: str
) -> None:
    """B's full reload (after its LISTEN connection came back) reads the webhooks, then waits;
    meanwhile a change made on A reaches B through NOTIFY and is applied. When the reload
    finishes, its older snapshot must not replace the newer registration."""
    a, b = await two(make_client)
    hook = await create_webhook(a, url=receiver.url("/old"))
    await propagated(lambda: hook["id"] in b.app[REGISTRY].webhooks, "B to learn the webhook")
    b_pid = b.app[LISTENER]._conn.get_server_pid()  # type: ignore[union-attr]
    reconnects = b.app[LISTENER].reconnects

    locker = await asyncpg.connect(database_url)
    try:
        async with locker.transaction():
            # Registry.load reads webhooks, then event types: hold it between the two.
            await locker.execute("LOCK TABLE event_types IN ACCESS EXCLUSIVE MODE")
            assert await db.fetchval("SELECT pg_terminate_backend($1)", b_pid)
            await blocked_backend(db, "FROM event_types WHERE NOT enabled")
            await call(
                a, "PATCH", f"/v1/webhooks/{hook['id']}", 200, json={"url": receiver.url("/new")}
            )
            await propagated(
                lambda: b.app[REGISTRY].webhooks[hook["id"]].url == receiver.url("/new"),
                "B to apply the change it was notified of",
            )
    finally:
        await locker.close()

    async def reloaded() -> bool:
        listener = b.app[LISTENER]
        return listener.reconnects > reconnects and listener.connected.is_set()

    await eventually(reloaded, 5, "B's reload after reconnecting to finish")
    assert b.app[REGISTRY].webhooks[hook["id"]].url == receiver.url("/new")


async def test_periodic_reload_applies_a_change_whose_notification_was_lost(
    make_client: MakeClient, db: asyncpg.Connection
) -> None:
    a = await make_client(reload_interval_seconds=0.5)
    await listening(a)
    hook = await create_webhook(a, url="http://127.0.0.1:9/old")
    await db.execute("UPDATE webhooks SET url = 'http://127.0.0.1:9/new' WHERE id = $1", hook["id"])

    async def reloaded() -> bool:
        return bool(a.app[REGISTRY].webhooks[hook["id"]].url == "http://127.0.0.1:9/new")

    await eventually(reloaded, 3, "the periodic reload to apply the change")
