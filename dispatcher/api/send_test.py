"""``POST /v1/webhooks/{id}/test``: one event of a type, to this webhook only.

The data is the body's ``data`` or else the type's first example; it must match the type's
schema like any published event. The event is stored and delivered like any other (its
delivery and attempts are logged), but fan-out sends it to this webhook alone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from dispatcher import ids
from dispatcher.api.common import json_response, read_model
from dispatcher.api.webhooks import existing
from dispatcher.app_keys import INGESTOR, POOL, REGISTRY, SETTINGS
from dispatcher.db import dumps_exact
from dispatcher.event_schemas import SchemaError, compile_schema, errors_in
from dispatcher.fanout import Routing
from dispatcher.ingest import NewEvent
from dispatcher.openapi import operation
from dispatcher.problems import Problem, invalid, validation_failed
from dispatcher.schemas import EventAccepted, SendTestIn
from dispatcher.store import event_types as event_type_store

routes = web.RouteTableDef()


def data_to_send(body: SendTestIn, event_type: dict[str, Any] | None) -> Any:
    """The data to send: the body's, else the type's first example; 422 if neither, or if it
    does not match the type's schema."""
    if "data" in body.model_fields_set:
        data = body.data
    elif event_type is not None and event_type["examples"]:
        data = event_type["examples"][0]
    else:
        raise invalid(
            "data",
            "is required: the event type has no examples",
            f"Send data, or give {body.event_type!r} an example first.",
        )
    schema = event_type["schema"] if event_type is not None else None
    if schema is not None:
        try:
            errors = errors_in(compile_schema(schema), data, ["data"])
        except SchemaError:
            errors = []  # stored by other means and unusable: ingestion does not apply it either
        if errors:
            raise validation_failed(errors, "The data does not match the type's schema.")
    return data


@routes.post("/v1/webhooks/{id}/test")
@operation(
    summary="Send one event of a type (its first example, or the data given) to this webhook",
    tag="webhooks",
    body=SendTestIn,
    responses={202: EventAccepted},
    problems=(404, 409),
)
async def send_test_event(request: web.Request) -> web.Response:
    """One event of ``event_type`` to this webhook only, delivered and logged like any other."""
    webhook = await existing(request)
    # The payload limit applies as to any published event: to the body, then to the data.
    max_bytes = request.app[SETTINGS].max_payload_bytes
    body = await read_model(request, SendTestIn, max_bytes)
    if not webhook["enabled"]:
        raise Problem(409, "The webhook is disabled; enable it to send it a test.", slug="conflict")
    stored = await event_type_store.get(request.app[POOL], body.event_type)
    if stored is not None and not stored["enabled"]:
        # Fan-out would send it nowhere; say so rather than accept an event that goes nowhere.
        raise Problem(
            409, "The event type is disabled; enable it to send a test of it.", slug="conflict"
        )
    data = data_to_send(body, stored)
    if len(dumps_exact(data).encode()) > max_bytes:
        raise Problem(413, f"data is larger than {max_bytes} bytes.", slug="too-large")
    answer = await send(request, webhook["id"], body.event_type, data, webhook["tenant_id"])
    return json_response(answer, status=202)


async def send(
    request: web.Request,
    webhook_id: str,
    event_type: str,
    data: Any,
    tenant_id: str | None = None,
) -> dict[str, Any]:
    """Store and deliver one event to this webhook alone; the ingestion answer. The event is
    the webhook's tenant's (``tenant_id``, else the registry's record of the webhook)."""
    if tenant_id is None:
        spec = request.app[REGISTRY].webhooks.get(webhook_id)
        tenant_id = spec.tenant_id if spec is not None else None
    event = NewEvent(
        id=ids.event_id(),
        type=event_type,
        data_json=dumps_exact(data).encode(),
        occurred_at=datetime.now(UTC),
        routing=Routing(only=webhook_id),
        tenant_id=tenant_id,
    )
    [answer] = await request.app[INGESTOR].submit([event])
    return answer.as_dict()
