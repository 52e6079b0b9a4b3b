"""Ids: valid ULIDs (checked with python-ulid), time-ordered, unique."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st
from ulid import ULID

from dispatcher import ids


def test_ids_are_ulids_carrying_their_creation_time() -> None:
    before = datetime.now(UTC)
    made = ids.delivery_id()
    after = datetime.now(UTC)
    prefix, _, text = made.partition("_")
    assert prefix == "dlv"
    parsed = ULID.from_str(text)
    assert str(parsed) == text
    # ULIDs carry milliseconds.
    assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= parsed.datetime
    assert parsed.datetime <= after


@given(st.integers(min_value=2, max_value=3000))
def test_ids_made_in_a_row_sort_in_the_order_made_and_never_repeat(n: int) -> None:
    made = [ids.event_id() for _ in range(n)]
    assert made == sorted(made)
    assert len(set(made)) == n


def test_ids_made_in_different_milliseconds_sort_by_time() -> None:
    first = ids.webhook_id()
    time.sleep(0.002)
    second = ids.webhook_id()
    assert first < second
    assert ULID.from_str(first[3:]).timestamp < ULID.from_str(second[3:]).timestamp


def test_time_bound_orders_ids_by_creation_time() -> None:
    before = time.time_ns() // 1_000_000
    made = ids.delivery_id()
    after = time.time_ns() // 1_000_000
    assert ids.time_bound("dlv", before) <= made < ids.time_bound("dlv", after + 1)
    assert ids.time_bound("dlv", -5) == "dlv_" + "0" * 26
