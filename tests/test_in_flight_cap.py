"""An endpoint that never answers gets at most its in-flight cap of connections, and a lane
whose attempts time out does not grow: a customer's server must not see Dispatcher as an
attack. The other webhooks are served meanwhile."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from dispatcher import engine as engine_module
from dispatcher.app_keys import ENGINE
from dispatcher.config import ConfigError, load_settings
from tests.helpers import ADMIN, PUBLISHER, webhook_body
from tests.receiver import ok


@dataclass
class Hung:
    """A loopback server that accepts connections, reads them and never answers."""

    port: int = 0
    open: int = 0
    peak: int = 0
    accepted: int = 0
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.accepted += 1
        self.peak = max(self.peak, self.open)
        self.writers.append(writer)
        try:
            while await reader.read(65536):
                pass
        except ConnectionError:
            pass
        finally:
            self.open -= 1
            writer.close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
async def hung() -> AsyncIterator[Hung]:
    state = Hung()
    server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        # Hang up on every held attempt, so the app under test stops without waiting them out.
        for writer in state.writers:
            writer.close()
        server.close()


async def until(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.02)


def count_ticks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of times the lane tuner has run (in a one-element list)."""
    ticks = [0]
    original = engine_module.Engine._retune

    def counted(self: engine_module.Engine, now: float) -> None:
        ticks[0] += 1
        original(self, now)

    monkeypatch.setattr(engine_module.Engine, "_retune", counted)
    return ticks


async def create(client: Any, **fields: Any) -> str:
    resp = await client.post("/v1/webhooks", json=webhook_body(**fields), headers=ADMIN)
    assert resp.status == 201, await resp.text()
    webhook_id: str = (await resp.json())["id"]
    return webhook_id


async def publish(client: Any, n: int) -> None:
    events = [{"type": "order.created", "data": {"i": i}} for i in range(n)]
    resp = await client.post("/v1/events/batch", json={"events": events}, headers=PUBLISHER)
    assert resp.status == 202, await resp.text()


async def test_a_hung_endpoint_gets_no_more_connections_than_its_cap(
    make_client: Any, hung: Hung, receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks = count_ticks(monkeypatch)
    client = await make_client(max_in_flight_per_webhook=10)
    default_cap = await create(client, name="hung", url=hung.url("/default"), timeout_seconds=120)
    await create(
        client, name="hung-own", url=hung.url("/own"), timeout_seconds=120, max_in_flight=3
    )
    await create(client, name="healthy", url=receiver.url("/ok"))
    await publish(client, 200)

    # The healthy webhook is not held up by the 400 attempts queued for the hung ones.
    await receiver.wait_for(200, "/ok")
    engine = client.app[ENGINE]

    # Every attempt started is connected, and the tuner has had many ticks to grow the lanes
    # (a stalled lane doubles each tick: 1 tick would take it past 10 uncapped).
    def connected() -> bool:
        return engine.in_flight == hung.open > 0

    await until("the hung lanes' attempts are connected", connected)
    seen = ticks[0]
    await until("ten more tuner ticks", lambda: ticks[0] >= seen + 10)
    await until("the hung lanes' attempts are connected", connected)
    assert (hung.peak, hung.open) == (13, 13)  # 10 (the setting) + 3 (the webhook's own cap)
    assert engine.lanes[default_cap].limit <= 10
    assert len(engine.lanes[default_cap].queue) == 190


async def test_a_lane_whose_attempts_time_out_shrinks_back(
    make_client: Any, hung: Hung, receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await make_client(max_in_flight_per_webhook=16, max_retries=0)
    webhook_id = await create(client, name="hung", url=hung.url("/t"), timeout_seconds=0.2)
    await create(client, name="healthy", url=receiver.url("/ok"))
    await publish(client, 300)
    await receiver.wait_for(300, "/ok")
    engine = client.app[ENGINE]

    def shrunk() -> bool:
        lane = engine.lanes.get(webhook_id)
        return lane is not None and lane.limit == engine_module.MIN_LIMIT and lane.queue != []

    # Without the timeout rule the lane, never completing anything in time, counts as
    # "stalled" and stays at its cap.
    await until("the timing-out lane shrank to its minimum", shrunk)
    # And the endpoint sees it: once the attempts past the new limit time out, no more than
    # MIN_LIMIT connections are held open.
    await until("the held connections drop", lambda: hung.open <= engine_module.MIN_LIMIT)
    assert engine.lanes[webhook_id].in_flight <= engine_module.MIN_LIMIT


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        *(("DISPATCHER_MAX_IN_FLIGHT_PER_WEBHOOK", v) for v in ["0", "-1", "many", "100001"]),
        *(("DISPATCHER_MAX_IN_FLIGHT_PER_PROCESS", v) for v in ["0", "-1", "lots", "1000001"]),
    ],
)
def test_the_cap_settings_are_validated(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{variable}: "):
        load_settings({variable: value})


def test_the_caps_default_to_100_per_webhook_and_7000_per_process() -> None:
    settings = load_settings({})
    assert (settings.max_in_flight_per_webhook, settings.max_in_flight_per_process) == (100, 7000)


async def test_all_webhooks_together_stay_within_the_process_cap(
    make_client: Any, hung: Hung, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks = count_ticks(monkeypatch)
    client = await make_client(max_in_flight_per_process=7, max_in_flight_per_webhook=10)
    for i in range(3):
        await create(client, name=f"hung{i}", url=hung.url(f"/{i}"), timeout_seconds=120)
    await publish(client, 30)
    engine = client.app[ENGINE]

    # Three lanes of 10 (their cap) each would hold 30; the process holds 7, and no more
    # after the tuner has had ticks to look at them.
    await until("the cap is reached", lambda: hung.open == 7)
    seen = ticks[0]
    await until("ten more tuner ticks", lambda: ticks[0] >= seen + 10)
    assert (hung.peak, hung.open, engine.in_flight) == (7, 7, 7)


async def test_no_lane_takes_more_than_a_quarter_of_the_process_cap(
    make_client: Any, hung: Hung, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks = count_ticks(monkeypatch)
    client = await make_client(max_in_flight_per_process=200, max_in_flight_per_webhook=100)
    webhook_id = await create(client, name="hung", url=hung.url("/h"), timeout_seconds=120)
    await publish(client, 150)
    engine = client.app[ENGINE]

    # The stalled lane doubles each tick from 16: 32, then 50 (200 // LANE_SHARE), not 64.
    await until("the lane grew to its share", lambda: hung.open == 50)
    seen = ticks[0]
    await until("ten more tuner ticks", lambda: ticks[0] >= seen + 10)
    assert (hung.peak, hung.open, engine.lanes[webhook_id].limit) == (50, 50, 50)


async def test_a_freed_slot_goes_to_a_lane_waiting_for_room(
    make_client: Any, receiver: Any
) -> None:
    """With the process cap full, a newcomer is served at the next answer, not after the busy
    lanes' backlogs."""
    served_before_newcomer: list[int] = []

    async def slow(_request: Any, _n: int) -> Any:
        await asyncio.sleep(0.02)  # the endpoint's own pace
        return await ok(_request, _n)

    async def newcomer(request: Any, n: int) -> Any:
        served_before_newcomer.append(len(receiver.at("/a")) + len(receiver.at("/b")))
        return await ok(request, n)

    receiver.responders.update({"/a": slow, "/b": slow, "/c": newcomer})
    client = await make_client(max_in_flight_per_process=8, max_in_flight_per_webhook=4)
    await create(client, name="a", url=receiver.url("/a"))
    await create(client, name="b", url=receiver.url("/b"))
    await publish(client, 150)  # 300 deliveries to /a and /b, 8 at a time
    await receiver.wait_for(1, "/a")
    await create(client, name="c", url=receiver.url("/c"), event_types=["invoice.paid"])
    resp = await client.post(
        "/v1/events", json={"type": "invoice.paid", "data": {}}, headers=PUBLISHER
    )
    assert resp.status == 202, await resp.text()

    await receiver.wait_for(1, "/c")
    await receiver.wait_for(150, "/a")
    await receiver.wait_for(150, "/b")
    # Served while most of the 300 were still to go (after all of them, before the change).
    assert served_before_newcomer[0] < 150


async def test_a_burst_to_a_new_lane_goes_out_over_several_connections(
    make_client: Any, hung: Hung, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before the tuner has looked at it, a new lane sends START_LIMIT attempts at once: with
    a floor of 4, a burst queued behind 4 connections and the latency p99 tripled."""
    monkeypatch.setattr(engine_module.Engine, "_retune", lambda self, now: None)
    client = await make_client()
    webhook_id = await create(client, name="hung", url=hung.url("/b"), timeout_seconds=120)
    await publish(client, 40)
    engine = client.app[ENGINE]

    await until("the burst is connected", lambda: hung.open == engine_module.START_LIMIT)
    assert engine_module.START_LIMIT == 16
    assert engine.lanes[webhook_id].in_flight == 16
    assert len(engine.lanes[webhook_id].queue) == 40 - 16
