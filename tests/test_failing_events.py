"""Paging without floods: ``dispatcher.webhook.failing`` once per failing episode, then
``dispatcher.webhook.recovered`` at the next success, across instances, to a real receiver."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from dispatcher.app_keys import REGISTRY
from dispatcher.failing import FAILING_AFTER, transitions
from dispatcher.outcomes import Outcome
from dispatcher.retry import classify
from tests.receiver import Receiver
from tests.test_delivery import MakeClient, answer, create_webhook, eventually, publish

PAGED = ["dispatcher.webhook.failing", "dispatcher.webhook.recovered"]


def types(receiver: Receiver) -> list[str]:
    """The operational event types the pager got, in order."""
    return [r.json()["type"] for r in receiver.at("/pager")]


async def test_a_burst_of_failures_pages_once_and_the_next_success_recovers(
    receiver: Receiver, make_client: MakeClient, db: asyncpg.Connection
) -> None:
    client = await make_client(max_retries=0)
    receiver.responders["/down"] = answer(500)
    down = await create_webhook(client, name="down", url=receiver.url("/down"))
    await create_webhook(client, name="pager", url=receiver.url("/pager"), event_types=PAGED)

    for _ in range(12):
        await publish(client)
    await receiver.wait_for(12, "/down")
    [failing] = await receiver.wait_for(1, "/pager")
    body = failing.json()
    assert body["type"] == "dispatcher.webhook.failing"
    data = body["data"]
    assert data["webhook_id"] == down["id"] and data["name"] == "down"
    assert data["consecutive_failures"] == FAILING_AFTER
    assert data["last_status_code"] == 500
    assert data["failures_in_window"] >= FAILING_AFTER
    assert await db.fetchval("SELECT failing_since FROM webhooks WHERE id = $1", down["id"])

    receiver.responders["/down"] = answer(200)
    await publish(client)
    got = await receiver.wait_for(2, "/pager")
    # Twelve failures, one page; the success ends the episode.
    assert types(receiver) == PAGED
    recovered = got[1].json()["data"]
    assert recovered["webhook_id"] == down["id"]
    assert recovered["failing_since"] == data["failing_since"]
    assert recovered["failed_for_seconds"] >= 0
    assert await db.fetchval("SELECT failing_since FROM webhooks WHERE id = $1", down["id"]) is None

    # More successes publish nothing; a new run of failures is a new episode.
    for _ in range(3):
        await publish(client)
    await receiver.wait_for(16, "/down")
    receiver.responders["/down"] = answer(503)
    for _ in range(FAILING_AFTER):
        await publish(client)
    await receiver.wait_for(3, "/pager")
    assert types(receiver) == [*PAGED, "dispatcher.webhook.failing"]


async def test_fewer_failures_than_the_threshold_page_nothing(
    receiver: Receiver, make_client: MakeClient, db: asyncpg.Connection
) -> None:
    client = await make_client(max_retries=0)
    receiver.responders["/flaky"] = answer(*([500] * (FAILING_AFTER - 1)), 200)
    flaky = await create_webhook(client, name="flaky", url=receiver.url("/flaky"))
    await create_webhook(client, name="pager", url=receiver.url("/pager"), event_types=PAGED)
    for _ in range(FAILING_AFTER + 1):
        await publish(client)
    await receiver.wait_for(FAILING_AFTER + 1, "/flaky")

    async def settled() -> bool:
        n = await db.fetchval(
            "SELECT count(*) FROM deliveries WHERE webhook_id = $1 AND status IN "
            "('success', 'failed')",
            flaky["id"],
        )
        return bool(n == FAILING_AFTER + 1)

    await eventually(settled, what="every delivery finished")
    # Nothing was marked (so nothing can be published): the streak never reached the threshold.
    assert (
        await db.fetchval("SELECT failing_since FROM webhooks WHERE id = $1", flaky["id"]) is None
    )
    assert receiver.at("/pager") == []


async def test_two_instances_publish_each_transition_once(
    receiver: Receiver, make_client: MakeClient
) -> None:
    a = await make_client(max_retries=0)
    b = await make_client(max_retries=0)
    receiver.responders["/down"] = answer(500)
    down = await create_webhook(a, name="down", url=receiver.url("/down"))
    await create_webhook(a, name="pager", url=receiver.url("/pager"), event_types=PAGED)

    async def b_knows_both() -> bool:
        return len(b.app[REGISTRY].webhooks) == 2

    await eventually(b_knows_both, what="instance B to see both webhooks")
    # Each instance sends what it ingests, so both see failures of the same webhook.
    for i in range(10):
        await publish(a if i % 2 else b)
    await receiver.wait_for(10, "/down")
    await receiver.wait_for(1, "/pager")

    async def both_know_it_fails() -> bool:
        return all(c.app[REGISTRY].webhooks[down["id"]].failing_since is not None for c in (a, b))

    await eventually(both_know_it_fails, what="both registries to see the failing state")
    receiver.responders["/down"] = answer(200)
    await publish(b)
    await publish(a)
    await receiver.wait_for(12, "/down")
    await receiver.wait_for(2, "/pager")
    for _ in range(4):
        await publish(a)
        await publish(b)
    await receiver.wait_for(20, "/down")
    assert types(receiver) == PAGED


def outcome(webhook_id: str, status_code: int | None) -> Outcome:
    """An outcome with only what the transition rule reads."""
    return Outcome(
        delivery_id="dlv_x",
        webhook_id=webhook_id,
        status="failed",
        answer=classify(status_code),
        number=1,
        started_at=datetime.now(UTC),
        duration_ms=1.0,
        status_code=status_code,
        response_body=None,
        error=None,
        url="http://example.com/",
        next_attempt_at=None,
    )


def test_transitions_follow_the_last_outcome_of_each_webhook() -> None:
    failing: dict[str, Any] = {"wh_sick": True}
    batch = [
        outcome("wh_a", 500),
        outcome("wh_b", 200),
        outcome("wh_b", None),
        outcome("wh_c", 502),
        outcome("wh_c", 204),
        outcome("wh_sick", 500),
        outcome("wh_sick", 200),
        outcome("wh_sick2", 200),
    ]
    maybe, recovered = transitions(batch, lambda w: failing.get(w, False))
    assert maybe == {"wh_a", "wh_b"}
    assert recovered == {"wh_sick"}
    # Already failing: another failure is no news.
    assert transitions([outcome("wh_sick", 500)], lambda w: True) == (set(), set())
