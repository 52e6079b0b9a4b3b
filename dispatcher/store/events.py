"""The event log. The group commit of :mod:`dispatcher.ingest` writes through
:func:`insert_events`; reads here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

from dispatcher.db import load_queries
from dispatcher.store import Executor

Q = load_queries(Path(__file__).with_suffix(".sql"))


# Rows as named tuples, not dataclasses: one per delivery on the ingestion path, built and
# turned into column arrays (zip) at the cost of a tuple.
class EventRow(NamedTuple):
    """One new event as stored."""

    id: str
    type: str
    data: str  # the JSON text as the producer sent it
    occurred_at: datetime
    sent_to: str | None  # the one webhook a ping or test send is for
    tenant_id: str | None


class DeliveryRow(NamedTuple):
    """One delivery of a new event, stored only if its event is new."""

    id: str
    event_id: str
    webhook_id: str
    event_type: str
    leased: bool  # leased to ``owner`` at once (its job is handed to the engine in-process)
    tenant_id: str | None  # its webhook's


async def insert_events(
    conn: Executor,
    *,
    events: Sequence[EventRow],
    deliveries: Sequence[DeliveryRow],
    owner: str,
    lease_seconds: float,
    created_at: datetime,
) -> set[str]:
    """Insert events and the deliveries of those that are new, in one statement; the new ids.

    ``created_at`` is every delivery's age origin (and its outcomes' fence).
    """
    e_cols = tuple(zip(*events, strict=True)) or ((),) * len(EventRow._fields)
    d_cols = tuple(zip(*deliveries, strict=True)) or ((),) * len(DeliveryRow._fields)
    rows = await conn.fetch(Q["insert_events"], owner, lease_seconds, created_at, *e_cols, *d_cols)
    return {r["id"] for r in rows}


class Stored(NamedTuple):
    """What is stored of an event submitted again: its type and how many deliveries it has."""

    event_id: str
    type: str
    deliveries: int


async def stored(conn: Executor, event_ids: list[str]) -> list[Stored]:
    """The stored type and delivery count of each of ``event_ids`` that exists."""
    rows = await conn.fetch(Q["delivery_counts"], event_ids)
    return [Stored(r["event_id"], r["type"], r["n"]) for r in rows]
