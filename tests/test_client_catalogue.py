"""The client's event-catalogue methods: schemas and examples, the catalogue, test sends."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from dispatcher.client import AsyncClient, Client, ValidationFailed
from tests.helpers import ADMIN_TOKEN
from tests.receiver import Receiver
from tests.test_client import FAST, api, in_thread, server, url_of

__all__ = ["api", "server"]  # fixtures shared with test_client

SCHEMA = {"type": "object", "required": ["order"], "properties": {"order": {"type": "integer"}}}


async def test_async_schema_examples_catalogue_and_send_test(
    api: AsyncClient, receiver: Receiver
) -> None:
    made = await api.create_event_type("order.created", schema=SCHEMA, examples=[{"order": 1}])
    assert made["schema"] == SCHEMA and made["examples"] == [{"order": 1}]
    with pytest.raises(ValidationFailed) as info:
        await api.publish("order.created", {"order": "x"})
    assert [e["field"] for e in info.value.errors] == ["data.order"]
    with pytest.raises(ValidationFailed) as info:
        await api.update_event_type("order.created", examples=[{}])
    assert [e["field"] for e in info.value.errors] == ["examples[0]"]

    document = await api.catalogue()
    assert list(document["webhooks"]) == ["order.created"]

    hook = await api.create_webhook("orders", receiver.url(), ["order.*"])
    sent = await api.send_test(hook["id"], "order.created")
    [got] = await receiver.wait_for(1)
    assert got.json()["id"] == sent["id"] and got.json()["data"] == {"order": 1}
    await api.send_test(hook["id"], "order.created", {"order": 2})
    await api.send_test(hook["id"], "unregistered", None)
    got_all = await receiver.wait_for(3)
    assert [r.json()["data"] for r in got_all[1:]] == [{"order": 2}, None]

    removed = await api.update_event_type("order.created", remove_schema=True)
    assert removed["schema"] is None and removed["examples"] == [{"order": 1}]
    assert (await api.publish("order.created", {"order": "x"}))["duplicate"] is False


async def test_sync_schema_methods(server: TestServer, receiver: Receiver) -> None:
    def scenario() -> dict[str, Any]:
        with Client(url_of(server), token=ADMIN_TOKEN, **FAST) as c:
            c.create_event_type("order.created", "placed", schema=SCHEMA, examples=[{"order": 1}])
            changed = c.update_event_type("order.created", schema={"type": "object"})
            hook = c.create_webhook("orders", receiver.url(), ["order.*"])
            sent = c.send_test(hook["id"], "order.created")
            return {"changed": changed, "catalogue": c.catalogue(), "sent": sent}

    got = await in_thread(scenario)
    assert got["changed"]["schema"] == {"type": "object"}
    assert got["changed"]["description"] == "placed"
    assert "order.created" in got["catalogue"]["webhooks"]
    [received] = await receiver.wait_for(1)
    assert received.json()["id"] == got["sent"]["id"]
