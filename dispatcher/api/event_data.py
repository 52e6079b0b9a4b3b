"""Ingestion's schema check: events of a type with a JSON Schema must match it, or nothing of
the request is stored (the check runs before anything is submitted)."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from dispatcher.app_keys import REGISTRY
from dispatcher.event_schemas import data_errors
from dispatcher.problems import validation_failed
from dispatcher.schemas import EventIn


def check_data(request: web.Request, events: Sequence[EventIn], *, batch: bool = False) -> None:
    """A 422 naming every place (``data.lines[2].sku``) where an event breaks its schema."""
    errors = data_errors(request.app[REGISTRY].schemas, events, batch=batch)
    if errors:
        what = "An event's data does not" if batch else "The event's data does not"
        raise validation_failed(errors, f"{what} match its type's schema.")
