"""The event-type catalogue as the tenant's receivers get it: descriptions, schemas, examples."""

from __future__ import annotations

from aiohttp import web

from admin.portal.render import render
from admin.render import pretty_json
from dispatcher.app_keys import POOL
from dispatcher.store import event_types as store

routes = web.RouteTableDef()


@routes.get("/portal/event-types")
async def catalogue_page(request: web.Request) -> web.Response:
    """Every enabled event type (the operator's catalogue, the same for every tenant)."""
    rows = await store.catalogue_rows(request.app[POOL])
    entries = [
        {
            "name": r["name"],
            "description": r["description"],
            "schema": None if r["schema"] is None else pretty_json(r["schema"]),
            "examples": [pretty_json(e) for e in r["examples"]],
        }
        for r in rows
    ]
    return render(request, "catalogue.html", {"nav": "event_types", "entries": entries})
