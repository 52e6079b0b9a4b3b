"""The shapes of Dispatcher's answers and of what the client sends, as typed dicts.

They describe the JSON exactly (field names as PRODUCT.md has them); at run time they are plain
dicts, so a field the server adds later is there too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Generic, Literal, NotRequired, TypedDict, TypeVar

__all__ = [
    "Attempt",
    "Delivery",
    "DeliveryDetail",
    "DeliveryStatus",
    "Event",
    "EventAccepted",
    "EventInput",
    "EventType",
    "Page",
    "Webhook",
    "WebhookChanges",
    "WebhookOptions",
]

T = TypeVar("T")

DeliveryStatus = Literal["created", "retrying", "success", "failed", "cancelled"]


class EventAccepted(TypedDict):
    """The ingestion answer for one event."""

    id: str
    type: str
    deliveries: int
    duplicate: bool


class EventInput(TypedDict, total=False):
    """One event for :meth:`AsyncClient.publish_batch` (``type`` and ``data`` are required)."""

    type: str
    data: Any
    id: str | None
    occurred_at: str | datetime | None
    tenant_id: str | None


class Page(TypedDict, Generic[T]):
    """One page of a list; pass ``next_cursor`` as ``cursor`` for the next one."""

    data: list[T]
    next_cursor: str | None


class Webhook(TypedDict):
    """A webhook registration. ``secret`` is only in the answer to create."""

    id: str
    name: str
    url: str
    event_types: list[str]
    enabled: bool
    disabled_reason: Literal["manual", "auto", "gone"] | None
    disabled_at: str | None
    description: str
    headers: dict[str, str]
    metadata: dict[str, Any]
    include_payload: bool
    max_retries: int | None
    timeout_seconds: float | None
    rate_limit_per_second: float | None
    max_in_flight: int | None
    created_at: str
    updated_at: str
    tenant_id: str | None
    secret: NotRequired[str]


class WebhookOptions(TypedDict, total=False):
    """Optional fields of a new webhook (None for an override means the global default)."""

    enabled: bool
    description: str
    headers: Mapping[str, str]
    metadata: Mapping[str, Any]
    include_payload: bool
    max_retries: int | None
    timeout_seconds: float | None
    rate_limit_per_second: float | None
    max_in_flight: int | None
    secret: str
    tenant_id: str


class WebhookChanges(TypedDict, total=False):
    """A partial update; None for an override resets it to the global default."""

    name: str
    url: str
    event_types: Sequence[str]
    enabled: bool
    description: str
    headers: Mapping[str, str]
    metadata: Mapping[str, Any]
    include_payload: bool
    max_retries: int | None
    timeout_seconds: float | None
    rate_limit_per_second: float | None
    max_in_flight: int | None


class Attempt(TypedDict):
    """One HTTP attempt of a delivery."""

    number: int
    started_at: str
    duration_ms: float
    status_code: int | None
    response_body: str | None
    error: str | None
    url: str


class Delivery(TypedDict):
    """A delivery of one event to one webhook."""

    id: str
    event_id: str
    event_type: str
    webhook_id: str
    tenant_id: str | None
    status: DeliveryStatus
    attempt_count: int
    created_at: str
    last_attempt_at: str | None
    next_attempt_at: str | None
    last_status_code: int | None
    last_error: str | None


class DeliveryDetail(Delivery):
    """A delivery with every attempt."""

    attempts: list[Attempt]


class Event(TypedDict):
    """A stored event with a count of its deliveries by status."""

    id: str
    type: str
    data: Any
    occurred_at: str
    created_at: str
    tenant_id: str | None
    deliveries: dict[str, int]


class EventType(TypedDict):
    """An entry of the event-type catalogue."""

    name: str
    description: str
    enabled: bool
    schema: Any
    examples: list[Any]
    created_at: str
    updated_at: str


class Tenant(TypedDict):
    """A tenant: one of your customers, with its own webhooks, events and deliveries."""

    id: str
    name: str
    metadata: dict[str, Any]
    created_at: str
    updated_at: str


class TenantToken(TypedDict):
    """A tenant token as listed (without its secret)."""

    id: str
    tenant_id: str
    created_at: str
    expires_at: str | None


class TenantTokenCreated(TenantToken):
    """A new tenant token: ``token`` is the bearer token, shown only this once."""

    token: str


class PortalLink(TypedDict):
    """A single-use sign-in link to a tenant's portal."""

    url: str
    expires_at: str
