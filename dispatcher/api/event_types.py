"""``/v1/event-types``: the optional catalogue of event types."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dispatcher import catalogue
from dispatcher.api.common import json_response, read_model
from dispatcher.app_keys import POOL, REGISTRY
from dispatcher.event_schemas import catalogue_errors
from dispatcher.matching import name_problem
from dispatcher.openapi import PAGINATION, operation
from dispatcher.pagination import page_body, page_from_query
from dispatcher.problems import Problem, not_found, validation_failed
from dispatcher.schemas import EventType, EventTypeCreate, EventTypePage, EventTypePatch
from dispatcher.store import Conn
from dispatcher.store import event_types as store
from dispatcher.tenancy import scope

routes = web.RouteTableDef()


async def changed(request: web.Request) -> None:
    """Apply a catalogue change to this instance at once (others learn it through NOTIFY)."""
    await request.app[REGISTRY].refresh_event_types(request.app[POOL])


def check_schema(body: EventTypeCreate | EventTypePatch, stored: dict[str, Any] | None) -> None:
    """422 unless the schema (as sent, or as stored) is valid and the examples match it."""
    sent = body.model_fields_set
    schema = body.schema_ if "schema_" in sent or stored is None else stored["schema"]
    examples = body.examples if "examples" in sent or stored is None else stored["examples"]
    if "examples" in sent and body.examples is None:
        raise validation_failed([{"field": "examples", "message": "must be a list, not null"}])
    errors = catalogue_errors(schema, examples or [])
    if errors:
        raise validation_failed(errors)


async def update(conn: Conn, name: str, body: EventTypePatch) -> dict[str, Any] | None:
    """Apply a PATCH once it is checked against what is stored (None: no such type)."""
    async with conn.transaction():
        stored = await store.get_for_update(conn, name)
        if stored is None:
            return None
        if body.model_fields_set & {"schema_", "examples"}:
            check_schema(body, stored)
        return await store.update(conn, name, body)


def _name(request: web.Request) -> str:
    name = request.match_info["name"]
    if name_problem(name):
        raise not_found("Event type", name[:100])
    return name


@routes.post("/v1/event-types")
@operation(
    summary="Register an event type",
    tag="event-types",
    body=EventTypeCreate,
    responses={201: EventType},
    problems=(409,),
)
async def create_event_type(request: web.Request) -> web.Response:
    """Register an event type (409 if the name exists)."""
    body = await read_model(request, EventTypeCreate)
    check_schema(body, None)
    async with request.app[POOL].acquire() as conn:
        row = await store.create(conn, body)
    if row is None:
        raise Problem(409, f"Event type {body.name!r} already exists.", slug="conflict")
    await changed(request)
    return json_response(row, status=201)


@routes.get("/v1/event-types")
@operation(
    summary="List event types", tag="event-types", responses={200: EventTypePage}, query=PAGINATION
)
async def list_event_types(request: web.Request) -> web.Response:
    """The catalogue, alphabetically."""
    page = page_from_query(request.query)
    # A tenant sees only what it can receive: the enabled types.
    rows = await store.list_page(
        request.app[POOL],
        after=page.after,
        limit=page.limit + 1,
        enabled_only=scope(request) is not None,
    )
    return json_response(page_body(rows, page, key="name"))


@routes.get("/v1/event-types/{name}")
@operation(summary="An event type", tag="event-types", responses={200: EventType}, problems=(404,))
async def get_event_type(request: web.Request) -> web.Response:
    """One event type."""
    name = _name(request)
    # For a tenant a disabled type is as missing as an unknown one.
    row = await store.get(request.app[POOL], name, enabled_only=scope(request) is not None)
    if row is None:
        raise not_found("Event type", name)
    return json_response(row)


@routes.patch("/v1/event-types/{name}")
@operation(
    summary="Change an event type",
    tag="event-types",
    body=EventTypePatch,
    responses={200: EventType},
    problems=(404,),
)
async def patch_event_type(request: web.Request) -> web.Response:
    """Change the description, the enabled flag, the schema or the examples."""
    name = _name(request)
    body = await read_model(request, EventTypePatch)
    async with request.app[POOL].acquire() as conn:
        row = await update(conn, name, body)
    if row is None:
        raise not_found("Event type", name)
    await changed(request)
    return json_response(row)


@routes.delete("/v1/event-types/{name}")
@operation(
    summary="Remove an event type", tag="event-types", responses={204: None}, problems=(404,)
)
async def delete_event_type(request: web.Request) -> web.Response:
    """Remove an event type from the catalogue (events of that type flow again)."""
    name = _name(request)
    async with request.app[POOL].acquire() as conn:
        if not await store.delete(conn, name):
            raise not_found("Event type", name)
    await changed(request)
    return web.Response(status=204)


@routes.get("/v1/catalogue")
@operation(
    summary="The event catalogue as an OpenAPI 3.1 document (one webhooks entry per type)",
    tag="event-types",
    responses={200: catalogue.CatalogueDocument},
)
async def get_catalogue(request: web.Request) -> web.Response:
    """What receivers get, type by type: generate types from it. Any token but a publish one."""
    rows = await store.catalogue_rows(request.app[POOL])
    return json_response(catalogue.build(rows))
