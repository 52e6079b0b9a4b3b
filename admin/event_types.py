"""Event type pages: the catalogue, add, edit the description, enable/disable, delete."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from admin.forms import Form, event_type_values, text, validate
from admin.listing import cursor_of
from admin.render import redirect, render
from dispatcher.api import event_types as api
from dispatcher.app_keys import POOL
from dispatcher.matching import name_problem
from dispatcher.pagination import Page, page_body
from dispatcher.problems import not_found
from dispatcher.schemas import EventTypeCreate, EventTypePatch
from dispatcher.store import event_types as store

routes = web.RouteTableDef()

PAGE_SIZE = 50
LIST = "/admin/event-types"


def _name(request: web.Request) -> str:
    name = request.match_info["name"]
    if name_problem(name):
        raise not_found("Event type", name[:100])
    return name


async def _load(request: web.Request) -> dict[str, Any]:
    name = _name(request)
    row = await store.get(request.app[POOL], name)
    if row is None:
        raise not_found("Event type", name)
    return row


async def _list_page(
    request: web.Request, form: Form[Any] | None = None, status: int = 200
) -> web.Response:
    after = cursor_of(request)
    rows = await store.list_page(request.app[POOL], after=after, limit=PAGE_SIZE + 1)
    page = page_body(rows, Page(PAGE_SIZE, after), key="name")
    form = form or Form(values={"name": "", "description": "", "enabled": True})
    return render(
        request,
        "event_types.html",
        {
            "nav": "event_types",
            "event_types": page["data"],
            "next_cursor": page["next_cursor"],
            "paged": after is not None,
            "values": form.values,
            "errors": form.errors,
        },
        status=status,
    )


@routes.get(LIST)
async def list_event_types(request: web.Request) -> web.Response:
    """The catalogue, alphabetically, with the add form."""
    return await _list_page(request)


@routes.post(LIST)
async def create_event_type(request: web.Request) -> web.Response:
    """Register a type, validated as ``POST /v1/event-types``."""
    values = event_type_values(await request.post())
    form: Form[EventTypeCreate] = Form(values=values)
    validate(EventTypeCreate, dict(values), form)
    if form.model is not None and not form.errors:
        async with request.app[POOL].acquire() as conn:
            row = await store.create(conn, form.model)
        if row is None:
            form.errors["name"] = f"Event type {form.model.name!r} already exists."
        else:
            await api.changed(request)
            return redirect(request, LIST, ("success", f"Event type “{row['name']}” added."))
    return await _list_page(request, form, status=422)


@routes.get(LIST + "/{name}")
async def edit_event_type(request: web.Request) -> web.Response:
    """The description form."""
    row = await _load(request)
    return render(
        request,
        "event_type.html",
        {"nav": "event_types", "event_type": row, "values": row, "errors": {}},
    )


@routes.post(LIST + "/{name}")
async def save_event_type(request: web.Request) -> web.Response:
    """Save the description, validated as ``PATCH /v1/event-types/{name}``."""
    row = await _load(request)
    values = {"description": text(await request.post(), "description")}
    form: Form[EventTypePatch] = Form(values=values)
    validate(EventTypePatch, dict(values), form)
    if form.model is None or form.errors:
        return render(
            request,
            "event_type.html",
            {"nav": "event_types", "event_type": row, "values": values, "errors": form.errors},
            status=422,
        )
    await _update(request, row["name"], form.model)
    return redirect(request, LIST, ("success", f"Event type “{row['name']}” saved."))


async def _update(request: web.Request, name: str, patch: EventTypePatch) -> None:
    async with request.app[POOL].acquire() as conn:
        if await store.update(conn, name, patch) is None:
            raise not_found("Event type", name)
    await api.changed(request)


@routes.post(LIST + "/{name}/enable")
async def enable_event_type(request: web.Request) -> web.Response:
    """Events of this type create deliveries again."""
    name = _name(request)
    await _update(request, name, EventTypePatch(enabled=True))
    return redirect(request, LIST, ("success", f"Event type “{name}” enabled."))


@routes.post(LIST + "/{name}/disable")
async def disable_event_type(request: web.Request) -> web.Response:
    """Events of this type are stored but create no deliveries."""
    name = _name(request)
    await _update(request, name, EventTypePatch(enabled=False))
    return redirect(
        request,
        LIST,
        ("success", f"Event type “{name}” disabled. Its events are stored but not delivered."),
    )


@routes.get(LIST + "/{name}/delete")
async def confirm_delete(request: web.Request) -> web.Response:
    """Ask before deleting."""
    row = await _load(request)
    return render(
        request,
        "confirm_delete.html",
        {
            "nav": "event_types",
            "kind": "event type",
            "title": f"Delete event type “{row['name']}”?",
            "name": row["name"],
            "crumbs": [("Event types", LIST), (row["name"], f"{LIST}/{row['name']}")],
            "action": f"{LIST}/{row['name']}/delete",
            "back": LIST,
            "consequences": [
                "It is removed from the catalogue; webhooks subscribed to it keep their "
                "subscriptions.",
                "Events of this type are delivered again even if the type was disabled.",
            ],
            "button": "Delete event type",
        },
    )


@routes.post(LIST + "/{name}/delete")
async def delete_event_type(request: web.Request) -> web.Response:
    """Delete, like ``DELETE /v1/event-types/{name}``."""
    name = _name(request)
    await api.delete_event_type(request)
    return redirect(request, LIST, ("success", f"Event type “{name}” deleted."))
