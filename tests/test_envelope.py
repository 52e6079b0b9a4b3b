"""The envelope receivers get (dispatcher.jobs.Payload), without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson

from dispatcher.jobs import Payload

WHEN = datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)


def test_the_envelope_carries_id_type_timestamp_and_data_as_sent() -> None:
    data = b'{"b":1,"a":[1.50,"\\u00e9"]}'
    body = Payload("evt_1", "order.created", WHEN, data).envelope(True)
    assert orjson.loads(body) == {
        "id": "evt_1",
        "type": "order.created",
        "timestamp": "2026-03-04T05:06:07.890000+00:00",
        "data": {"b": 1, "a": [1.5, "é"]},
    }
    # The producer's bytes are passed through untouched (key order, number forms).
    assert body.endswith(b',"data":' + data + b"}")


def test_without_the_payload_there_is_no_data() -> None:
    body = Payload("evt_1", "order.created", WHEN, b'{"secret":1}').envelope(False)
    assert orjson.loads(body) == {
        "id": "evt_1",
        "type": "order.created",
        "timestamp": "2026-03-04T05:06:07.890000+00:00",
    }


def test_strings_are_escaped() -> None:
    body = Payload('evt_"1', "a.b", WHEN, b"null").envelope(True)
    assert orjson.loads(body)["id"] == 'evt_"1'


def test_the_timestamp_keeps_its_offset() -> None:
    local = WHEN.astimezone(timezone(timedelta(hours=2)))
    body = Payload("evt_1", "a.b", local, b"1").envelope(True)
    assert orjson.loads(body)["timestamp"] == "2026-03-04T07:06:07.890000+02:00"


def test_the_envelope_is_built_once_per_form() -> None:
    p = Payload("evt_1", "a.b", WHEN, b"1")
    assert p.envelope(True) is p.envelope(True)
    assert p.envelope(False) is p.envelope(False)
