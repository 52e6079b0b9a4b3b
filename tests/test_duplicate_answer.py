"""A duplicate submission is answered with the stored event, not with what was sent again:
resending an ``id`` with another ``type`` answers the stored type (it used to echo the new
one, while the event kept the old)."""

from __future__ import annotations

from tests.helpers import ADMIN, PUBLISHER, Client


async def test_a_resent_id_with_another_type_answers_the_stored_type(client: Client) -> None:
    first = {"id": "order-7", "type": "order.created", "data": {"n": 1}}
    resp = await client.post("/v1/events", json=first, headers=PUBLISHER)
    assert resp.status == 202, await resp.text()
    again = {"id": "order-7", "type": "order.cancelled", "data": {"n": 2}}
    resp = await client.post("/v1/events", json=again, headers=PUBLISHER)
    assert resp.status == 202, await resp.text()
    answer = await resp.json()
    assert (answer["id"], answer["type"], answer["duplicate"]) == (
        "order-7",
        "order.created",
        True,
    )
    stored = await (await client.get("/v1/events/order-7", headers=ADMIN)).json()
    assert stored["type"] == "order.created"


async def test_batch_duplicates_answer_the_stored_type(client: Client) -> None:
    resp = await client.post(
        "/v1/events", json={"id": "old-1", "type": "order.created", "data": {}}, headers=PUBLISHER
    )
    assert resp.status == 202, await resp.text()
    events = [
        {"id": "old-1", "type": "order.shipped", "data": {}},  # stored before
        {"id": "new-1", "type": "order.paid", "data": {}},
        {"id": "new-1", "type": "order.refunded", "data": {}},  # earlier in this batch
    ]
    resp = await client.post("/v1/events/batch", json={"events": events}, headers=PUBLISHER)
    assert resp.status == 202, await resp.text()
    answers = (await resp.json())["data"]
    assert [(a["id"], a["type"], a["duplicate"]) for a in answers] == [
        ("old-1", "order.created", True),
        ("new-1", "order.paid", False),
        ("new-1", "order.paid", True),
    ]
