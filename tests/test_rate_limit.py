"""A webhook's ``rate_limit_per_second`` holds whatever the arrival pattern: events that come
one by one, each finding the webhook idle, wait for the token bucket like a burst does.

The engine's buckets run on ``engine.clock``; the tests hold it still, so "before the refill"
is a state, not a race with the wall clock."""

from __future__ import annotations

from dispatcher.app_keys import ENGINE
from tests.helpers import Client, create_webhook, eventually, idle, publish
from tests.receiver import Receiver


class StillClock:
    """A monotonic clock that moves only when told."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_an_event_arriving_at_an_idle_rate_limited_webhook_waits_for_the_bucket(
    receiver: Receiver, client: Client
) -> None:
    engine = client.app[ENGINE]
    clock = engine.clock = StillClock(engine.clock())
    webhook = await create_webhook(client, url=receiver.url("/limited"), rate_limit_per_second=2)
    await publish(client)
    await receiver.wait_for(1, "/limited")
    await idle(client)

    # The first send spent the lane's token and no time has passed: the second event, handed
    # to the engine in-process before its 202, finds the webhook idle but must wait.
    await publish(client)
    lane = engine.lanes[webhook["id"]]
    assert (len(lane.queue), lane.in_flight, lane.timer is not None) == (1, 0, True)
    assert len(receiver.at("/limited")) == 1

    # Half a second refills one token at 2/s: the waiting event goes out.
    clock.now += 0.5
    await receiver.wait_for(2, "/limited")
    await idle(client)

    # Once its bucket is full again an idle lane is forgotten: nothing is kept for ever.
    clock.now += 10

    async def forgotten() -> bool:
        return webhook["id"] not in engine.lanes

    await eventually(forgotten, 5, "the idle lane with a full bucket to be dropped")


async def test_an_idle_webhook_without_a_rate_limit_keeps_no_lane(
    receiver: Receiver, client: Client
) -> None:
    engine = client.app[ENGINE]
    engine.clock = StillClock(engine.clock())
    webhook = await create_webhook(client, url=receiver.url("/free"))
    await publish(client)
    await receiver.wait_for(1, "/free")
    await idle(client)
    assert webhook["id"] not in engine.lanes
