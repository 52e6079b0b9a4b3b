"""``dispatcher events list|show`` against the real server on a real port."""

from __future__ import annotations

import asyncio

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


async def test_events_list_and_show(http: Invoke, receiver: Receiver) -> None:
    hook = as_json(await http("webhooks", "create", "o", receiver.url(), "-e", "order.*", "--json"))
    created = as_json(await http("events", "send", "order.created", '{"order": 1}', "--json"))
    paid = as_json(
        await http("events", "send", "order.paid", '{"order": 1, "total": 99}', "--json")
    )
    other = as_json(await http("events", "send", "user.created", "{}", "--json"))
    await receiver.wait_for(2)

    listed = as_json(await http("events", "list", "--json"))
    assert [e["id"] for e in listed["data"]] == [other["id"], paid["id"], created["id"]]
    only = as_json(await http("events", "list", "--type", "order.paid", "--json"))
    assert [e["id"] for e in only["data"]] == [paid["id"]]

    # Pages: one at a time with a hint on stderr, or every page with --all.
    first = await http("events", "list", "--limit", "2")
    assert "--cursor" in first.stderr and other["id"] in first.stdout
    every = as_json(await http("events", "list", "--limit", "1", "--all", "--json"))
    assert len(every["data"]) == 3 and every["next_cursor"] is None

    # Once delivered, the table shows each event's deliveries by status.
    async def table() -> list[str]:
        return ok(await http("events", "list")).stdout.splitlines()

    for _ in range(100):
        rows = await table()
        if sum("1 success" in row for row in rows) == 2:
            break
        await asyncio.sleep(0.05)
    assert rows[0].split()[:3] == ["ID", "TYPE", "DELIVERIES"]
    [row] = [r for r in rows if r.startswith(paid["id"])]
    assert "order.paid" in row and "1 success" in row
    [row] = [r for r in rows if r.startswith(other["id"])]
    assert "none" in row

    shown = as_json(await http("events", "show", paid["id"], "--json"))
    assert shown["data"] == {"order": 1, "total": 99} and shown["deliveries"] == {"success": 1}
    human = ok(await http("events", "show", paid["id"])).stdout
    assert "order.paid" in human and '"total": 99' in human
    # ... with its deliveries, one line each.
    [line] = [ln for ln in human.splitlines() if hook["id"] in ln]
    assert "success" in line

    missing = await http("events", "show", "evt_nope")
    assert missing.exit_code == 1 and "404" in missing.stderr
    bad_type = await http("events", "list", "--type", "no spaces")
    assert bad_type.exit_code == 1 and "422" in bad_type.stderr
