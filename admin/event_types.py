"""Event type pages: the list, add, edit (description, JSON Schema, examples), enable/disable,
delete; the catalogue as receivers see it; and "Send example" from a webhook's page."""

from __future__ import annotations

import json
from typing import Any

import orjson
from aiohttp import web
from pydantic import ValidationError

from admin.forms import Form, event_type_values, text, validate
from admin.listing import cursor_of
from admin.render import redirect, render
from dispatcher import catalogue
from dispatcher.api import event_types as api
from dispatcher.api import send_test
from dispatcher.api.common import path_id
from dispatcher.api.webhooks import existing
from dispatcher.app_keys import POOL
from dispatcher.matching import name_problem
from dispatcher.pagination import Page, page_body
from dispatcher.problems import Problem, not_found
from dispatcher.schemas import EventTypeCreate, EventTypePatch, SendTestIn
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


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _values_of(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": row["description"],
        "schema": "" if row["schema"] is None else _pretty(row["schema"]),
        "examples": _pretty(row["examples"]) if row["examples"] else "",
    }


def _parse_json(raw: str, field: str, form: Form[Any]) -> Any:
    """The JSON in a textarea (None when blank); a parse error is the field's error."""
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        form.errors[field] = f"is not valid JSON: {exc}"
        return None


@routes.get(LIST + "/{name}")
async def edit_event_type(request: web.Request) -> web.Response:
    """The description, schema and examples form."""
    row = await _load(request)
    return render(
        request,
        "event_type.html",
        {"nav": "event_types", "event_type": row, "values": _values_of(row), "errors": {}},
    )


@routes.post(LIST + "/{name}")
async def save_event_type(request: web.Request) -> web.Response:
    """Save, validated as ``PATCH /v1/event-types/{name}``: a schema problem or an example
    that breaks the schema is shown at its field, with the place inside it."""
    row = await _load(request)
    posted = await request.post()
    values = {name: text(posted, name) for name in ("description", "schema", "examples")}
    form: Form[EventTypePatch] = Form(values=values)
    data: dict[str, Any] = {"description": values["description"]}
    data["schema"] = _parse_json(values["schema"], "schema", form)
    examples = _parse_json(values["examples"], "examples", form)
    if examples is not None and not isinstance(examples, list):
        form.errors["examples"] = "must be a JSON list of examples, like [{...}, {...}]"
    data["examples"] = examples if isinstance(examples, list) else []
    for name in form.errors:
        data.pop(name, None)
    validate(EventTypePatch, data, form)
    if form.model is not None and not form.errors:
        try:
            async with request.app[POOL].acquire() as conn:
                if await api.update(conn, row["name"], form.model) is None:
                    raise not_found("Event type", row["name"])
        except Problem as problem:
            if problem.status != 422:
                raise
            form.add_errors(problem.errors or [])
        else:
            await api.changed(request)
            return redirect(request, LIST, ("success", f"Event type “{row['name']}” saved."))
    return render(
        request,
        "event_type.html",
        {"nav": "event_types", "event_type": row, "values": values, "errors": form.errors},
        status=422,
    )


@routes.get("/admin/catalogue")
async def catalogue_page(request: web.Request) -> web.Response:
    """The catalogue as receivers get it: each enabled type's schema and examples."""
    rows = await store.catalogue_rows(request.app[POOL])
    entries = [
        {
            "name": r["name"],
            "description": r["description"],
            "schema": None if r["schema"] is None else _pretty(r["schema"]),
            "examples": [_pretty(e) for e in r["examples"]],
        }
        for r in rows
    ]
    return render(request, "catalogue.html", {"nav": "event_types", "entries": entries})


@routes.get("/admin/catalogue.json")
async def catalogue_document(request: web.Request) -> web.Response:
    """The same OpenAPI document as ``GET /v1/catalogue``, to download from the console."""
    rows = await store.catalogue_rows(request.app[POOL])
    return web.Response(
        body=orjson.dumps(catalogue.build(rows), option=orjson.OPT_INDENT_2),
        content_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="catalogue.json"'},
    )


@routes.post("/admin/webhooks/{id}/test")
async def send_example(request: web.Request) -> web.Response:
    """ "Send example": one event of the chosen type (its first example) to this webhook."""
    webhook_id = path_id(request, "Webhook")
    back = f"/admin/webhooks/{webhook_id}"
    webhook = await existing(request)
    event_type = text(await request.post(), "event_type")
    try:
        body = SendTestIn.model_validate({"event_type": event_type})
        if not webhook["enabled"]:
            raise Problem(409, "The webhook is disabled; enable it to send it an example.")
        data = send_test.data_to_send(body, await store.get(request.app[POOL], event_type))
        answer = await send_test.send(request, webhook_id, event_type, data)
    except Problem as problem:
        return redirect(request, back, ("error", problem.detail))
    except ValidationError:
        return redirect(request, back, ("error", "Choose an event type to send."))
    return redirect(
        request,
        back,
        ("success", f"Example {event_type} sent as {answer['id']}; it appears in the Logs tab."),
    )


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
