"""``/v1/events``: ingestion (single and batch) and the event log."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from dispatcher import ids, pagination
from dispatcher.api.common import json_response, path_id, query_str, read_json
from dispatcher.api.event_data import check_data
from dispatcher.api.scoping import known_tenant, tenant_filter
from dispatcher.app_keys import INGEST_BUDGET, INGESTOR, POOL, SETTINGS
from dispatcher.budget import Reservation
from dispatcher.ingest import NewEvent
from dispatcher.matching import name_problem
from dispatcher.openapi import NAME, PAGINATION, STR, Param, operation
from dispatcher.pagination import encode_cursor, page_from_query
from dispatcher.problems import Problem, invalid, not_found, unavailable
from dispatcher.schemas import (
    EventAccepted,
    EventBatchAccepted,
    EventBatchIn,
    EventIn,
    EventOut,
    EventPage,
)
from dispatcher.store.events import Q
from dispatcher.tenancy import scope

routes = web.RouteTableDef()


def _check_enabled(request: web.Request) -> None:
    if not request.app[SETTINGS].events_enabled:
        raise Problem(
            503,
            "Event ingestion is switched off (DISPATCHER_EVENTS_ENABLED=false).",
            slug="ingestion-disabled",
            headers={"Retry-After": "60"},
        )


def _reserver(held: Reservation) -> Callable[[int], None]:
    """``read_json``'s ``reserve``: a 503 when the process's ingestion budget is spent."""

    def reserve(total: int) -> None:
        if not held.cover(total):
            raise unavailable(
                "Ingestion is already holding as many request bytes as it may "
                "(DISPATCHER_INGEST_MEMORY_BYTES); try again shortly."
            )

    return reserve


def to_new_event(event: EventIn, max_bytes: int, field: str = "data") -> NewEvent:
    """A validated event, serialized once, ready for the ingestor."""
    try:
        data_json = orjson.dumps(event.data)
    except orjson.JSONEncodeError:
        # Integers beyond 64 bits (parsed by the stdlib fallback in read_json) are kept exact;
        # what JSON cannot carry (infinities, lone surrogates) is the producer's error.
        try:
            data_json = json.dumps(
                event.data, separators=(",", ":"), ensure_ascii=False, allow_nan=False
            ).encode()
        except (ValueError, UnicodeEncodeError) as exc:
            raise invalid(field, f"cannot be represented as JSON: {exc}") from None
    if len(data_json) > max_bytes:
        raise Problem(413, f"{field} is larger than {max_bytes} bytes.", slug="too-large")
    return NewEvent(
        id=event.id or ids.event_id(),
        type=event.type,
        data_json=data_json,
        # Stored and re-read as UTC: normalising now keeps every attempt's body identical.
        occurred_at=(event.occurred_at or datetime.now(UTC)).astimezone(UTC),
        tenant_id=event.tenant_id,
    )


@routes.post("/v1/events")
@operation(
    summary="Publish an event",
    tag="events",
    body=EventIn,
    responses={202: EventAccepted},
    auth="publish",
)
async def publish(request: web.Request) -> web.Response:
    """Accept one event: 202 once it and its deliveries are committed."""
    _check_enabled(request)
    max_bytes = request.app[SETTINGS].max_payload_bytes
    # The body's bytes count against the budget until the event is committed or refused.
    with request.app[INGEST_BUDGET].reservation() as held:
        event = EventIn.model_validate(await read_json(request, max_bytes, _reserver(held)))
        check_data(request, [event])
        await known_tenant(request, event.tenant_id, "tenant_id")
        [answer] = await request.app[INGESTOR].submit([to_new_event(event, max_bytes)])
    return json_response(answer.as_dict(), status=202)


@routes.post("/v1/events/batch")
@operation(
    summary="Publish up to 1,000 events",
    tag="events",
    body=EventBatchIn,
    responses={202: EventBatchAccepted},
    auth="publish",
)
async def publish_batch(request: web.Request) -> web.Response:
    """Accept up to 1,000 events in one request; one answer per event, in order."""
    _check_enabled(request)
    settings = request.app[SETTINGS]
    max_bytes = settings.max_payload_bytes
    with request.app[INGEST_BUDGET].reservation() as held:
        raw = await read_json(request, settings.max_batch_bytes, _reserver(held))
        batch = EventBatchIn.model_validate(raw)
        check_data(request, batch.events, batch=True)
        for i, e in enumerate(batch.events):
            await known_tenant(request, e.tenant_id, f"events[{i}].tenant_id")
        events = [
            to_new_event(e, max_bytes, field=f"events[{i}].data")
            for i, e in enumerate(batch.events)
        ]
        # Serialized now: the parsed objects (several times the body's size) need not live
        # through the commit.
        del raw, batch
        answers = await request.app[INGESTOR].submit(events)
    return json_response({"data": [a.as_dict() for a in answers]}, status=202)


def _event(row: Any) -> dict[str, Any]:
    return dict(row)


@routes.get("/v1/events")
@operation(
    summary="List events",
    tag="events",
    responses={200: EventPage},
    query=(*PAGINATION, Param("type", NAME), Param("tenant_id", STR, "only this tenant's")),
)
async def list_events(request: web.Request) -> web.Response:
    """Events, newest first; ``?type=`` and ``?tenant_id=`` filter."""
    page = page_from_query(request.query)
    event_type = query_str(request, "type")
    if event_type is not None and name_problem(event_type):
        raise invalid("type", name_problem(event_type) or "")
    after_ts: datetime | None = None
    after_id: str | None = None
    if page.after is not None:
        stamp, _, after_id = page.after.partition("|")
        try:
            after_ts = datetime.fromisoformat(stamp)
        except ValueError:
            raise invalid("cursor", "not a cursor returned by this API") from None
    rows = await request.app[POOL].fetch(
        Q["list_events"],
        after_ts,
        after_id,
        event_type,
        page.limit + 1,
        scope(request),
        tenant_filter(request),
        pagination.MAX_PAGE_BYTES,
    )
    # Fewer rows than were found: the page is full by bytes, the rest on the next one.
    fetched = rows[0]["fetched"] if rows else 0
    data = [_event(r) for r in rows[: page.limit]]
    for event in data:
        del event["fetched"]
    next_cursor = None
    if fetched > len(data) and data:
        last = data[-1]
        next_cursor = encode_cursor(f"{last['created_at'].isoformat()}|{last['id']}")
    return json_response({"data": data, "next_cursor": next_cursor})


@routes.get("/v1/events/{id}")
@operation(
    summary="An event with its deliveries by status",
    tag="events",
    responses={200: EventOut},
    problems=(404,),
)
async def get_event(request: web.Request) -> web.Response:
    """One event with a count of its deliveries by status."""
    event_id = path_id(request, "Event")
    row = await request.app[POOL].fetchrow(Q["get_event"], event_id, scope(request))
    if row is None:
        raise not_found("Event", event_id)
    return json_response(_event(row))
