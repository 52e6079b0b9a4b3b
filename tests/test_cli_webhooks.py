"""``dispatcher webhooks update|ping|test|replay`` against the real server on a real port."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from dispatcher.cli.webhooks import since_time
from tests.helpers import answer
from tests.receiver import Receiver
from tests.test_cli import (
    Invoke,
    _keep_logging,
    as_json,
    base_env,
    http,
    invoke,
    ok,
    server,
    settings,
)

__all__ = ["_keep_logging", "base_env", "http", "invoke", "server", "settings"]  # fixtures


async def test_update_changes_only_what_is_given(http: Invoke, receiver: Receiver) -> None:
    hook = as_json(
        await http(
            "webhooks",
            "create",
            "billing",
            receiver.url("/old"),
            "-e",
            "order.*",
            "--header",
            "X-Team: billing",
            "--max-retries",
            "3",
            "--timeout",
            "2.5",
            "--json",
        )
    )
    changed = as_json(
        await http(
            "webhooks",
            "update",
            hook["id"],
            "--name",
            "invoices",
            "--target",
            receiver.url("/new"),
            "-e",
            "invoice.*",
            "-e",
            "refund.created",
            "--no-payload",
            "--max-retries",
            "default",
            "--rate-limit",
            "5",
            "--json",
        )
    )
    assert changed["name"] == "invoices"
    assert changed["url"] == receiver.url("/new")
    assert changed["event_types"] == ["invoice.*", "refund.created"]
    assert changed["include_payload"] is False
    assert changed["max_retries"] is None  # "default": the global setting again
    assert changed["rate_limit_per_second"] == 5
    # Not given, so unchanged.
    assert changed["headers"] == {"X-Team": "billing"}
    assert changed["timeout_seconds"] == 2.5

    human = ok(await http("webhooks", "update", hook["id"], "--no-headers", "--timeout", "default"))
    assert "invoices" in human.stdout and "default" in human.stdout
    shown = as_json(await http("webhooks", "show", hook["id"], "--json"))
    assert shown["headers"] == {} and shown["timeout_seconds"] is None

    # A delivery now goes to the new URL, without its data.
    sent = as_json(await http("events", "send", "invoice.paid", '{"n": 1}', "--json"))
    assert sent["deliveries"] == 1
    [got] = await receiver.wait_for(1, "/new")
    assert got.json()["type"] == "invoice.paid" and "data" not in got.json()
    assert receiver.at("/old") == []

    nothing = await http("webhooks", "update", hook["id"])
    assert nothing.exit_code == 2 and "nothing to change" in nothing.stderr
    not_a_number = await http("webhooks", "update", hook["id"], "--max-retries", "lots")
    assert not_a_number.exit_code == 2 and "'lots' is not a number" in not_a_number.stderr
    both = await http("webhooks", "update", hook["id"], "--header", "A: b", "--no-headers")
    assert both.exit_code == 2 and "contradict" in both.stderr
    invalid = await http("webhooks", "update", hook["id"], "--target", "ftp://x", "--json")
    assert invalid.exit_code == 1 and '"url"' in invalid.stderr
    missing = await http("webhooks", "update", "wh_nope", "--name", "x")
    assert missing.exit_code == 1 and "404" in missing.stderr
    assert as_json(await http("webhooks", "show", hook["id"], "--json")) == shown


async def test_ping_and_test_send_to_one_webhook_only(http: Invoke, receiver: Receiver) -> None:
    hook = as_json(await http("webhooks", "create", "a", receiver.url("/a"), "-e", "*", "--json"))
    as_json(await http("webhooks", "create", "b", receiver.url("/b"), "-e", "*", "--json"))
    ok(await http("event-types", "create", "order.created", "--example", '{"order": 42}', "--json"))

    pinged = ok(await http("webhooks", "ping", hook["id"])).stdout.strip()
    assert pinged.startswith("evt_") and pinged.endswith(": webhook.ping, 1 delivery")

    example = as_json(await http("webhooks", "test", hook["id"], "order.created", "--json"))
    assert example["type"] == "order.created" and example["deliveries"] == 1
    given = ok(
        await http("webhooks", "test", hook["id"], "order.created", "-", input='{"order": 7}')
    ).stdout
    assert given.strip().endswith(": order.created, 1 delivery")

    got = await receiver.wait_for(3, "/a")
    assert [r.json()["type"] for r in got] == ["webhook.ping", "order.created", "order.created"]
    assert [r.json()["data"] for r in got[1:]] == [{"order": 42}, {"order": 7}]
    assert receiver.at("/b") == []

    no_example = await http("webhooks", "test", hook["id"], "order.paid")
    assert no_example.exit_code == 1 and "422" in no_example.stderr
    bad_json = await http("webhooks", "test", hook["id"], "order.created", "{nope")
    assert bad_json.exit_code == 2 and "not valid JSON" in bad_json.stderr
    assert (await http("webhooks", "ping", "wh_nope")).exit_code == 1


async def test_replay_failed_and_missing(
    http: Invoke, receiver: Receiver, db: asyncpg.Connection
) -> None:
    receiver.responders["/flaky"] = answer(500, 200)
    hook = as_json(
        await http(
            "webhooks",
            "create",
            "flaky",
            receiver.url("/flaky"),
            "-e",
            "order.*",
            "--max-retries",
            "0",
            "--json",
        )
    )
    first = as_json(await http("events", "send", "order.created", "{}", "--json"))
    await receiver.wait_for(1, "/flaky")

    async def status_of(event_id: str) -> str | None:
        status: str | None = await db.fetchval(
            "SELECT status FROM deliveries WHERE event_id = $1", event_id
        )
        return status

    for _ in range(100):
        if await status_of(first["id"]) == "failed":
            break
        await asyncio.sleep(0.05)
    assert await status_of(first["id"]) == "failed"

    replayed = ok(await http("webhooks", "replay", hook["id"], "--since", "1h")).stdout
    assert replayed.strip() == f"{hook['id']}: 1 delivery re-queued"
    await receiver.wait_for(2, "/flaky")

    # Sent while the webhook was disabled: no delivery, until a replay of what was missing.
    ok(await http("webhooks", "disable", hook["id"]))
    missed = as_json(await http("events", "send", "order.paid", "{}", "--json"))
    assert missed["deliveries"] == 0
    ok(await http("webhooks", "enable", hook["id"]))
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    created = as_json(
        await http(
            "webhooks", "replay", hook["id"], "--since", since, "--status", "missing", "--json"
        )
    )
    assert created == {"count": 1}
    [_, _, third] = await receiver.wait_for(3, "/flaky")
    assert third.json()["id"] == missed["id"]
    again = ok(
        await http("webhooks", "replay", hook["id"], "--since", "1h", "--status", "missing")
    ).stdout
    assert again.strip() == f"{hook['id']}: 0 deliveries created"

    bad_since = await http("webhooks", "replay", hook["id"], "--since", "yesterday")
    assert bad_since.exit_code == 1 and "since" in bad_since.stderr
    no_since = await http("webhooks", "replay", hook["id"])
    assert no_since.exit_code == 2 and "--since" in no_since.stderr


@pytest.mark.parametrize(
    ("given", "ago"),
    [("30s", timedelta(seconds=30)), ("15m", timedelta(minutes=15)), ("2h", timedelta(hours=2))],
)
def test_since_takes_a_duration_before_now(given: str, ago: timedelta) -> None:
    before = datetime.now(UTC)
    got = datetime.fromisoformat(since_time(given))
    assert before - ago - timedelta(seconds=5) <= got <= datetime.now(UTC) - ago


def test_since_passes_a_time_through() -> None:
    assert since_time("2026-01-02T03:04:05Z") == "2026-01-02T03:04:05Z"
    assert since_time("7d") != "7d"
