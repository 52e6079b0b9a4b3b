"""A Python client for Dispatcher's HTTP API: publish events and manage webhooks.

::

    from dispatcher_client import Client, AsyncClient   # or: from dispatcher.client import ...

    c = Client("http://127.0.0.1:8080", token="...")
    c.publish("order.created", {"order": 42})        # -> {"id", "type", "deliveries", "duplicate"}
    c.publish_batch([{"type": "order.paid", "data": {"order": 42}}])
    c.create_tenant("acme", name="Acme Inc.")          # -> the tenant
    c.portal_link("acme", expires_in=3600)              # -> {"url", "expires_at"}

    async with AsyncClient("http://127.0.0.1:8080", token="...") as ac:
        await ac.publish("order.created", {"order": 42})

:class:`AsyncClient` (``aio``) holds every call; :class:`Client` (``sync``) runs the same methods
on a private event loop. Errors are :class:`DispatcherError` subclasses (``errors``) carrying
the HTTP ``status`` and the RFC 9457 ``problem`` JSON; answers are typed dicts (``models``).
The package needs only aiohttp and the standard library: a producer installs
``dispatcher-client``, not the server.
"""

from dispatcher_client._version import __version__
from dispatcher_client._wire import BATCH_LIMIT, new_event_id
from dispatcher_client.aio import DEFAULT_URL, USER_AGENT, AsyncClient
from dispatcher_client.errors import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    DispatcherError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
    error_for,
)
from dispatcher_client.models import (
    Attempt,
    Delivery,
    DeliveryDetail,
    DeliveryStatus,
    Event,
    EventAccepted,
    EventInput,
    EventType,
    Page,
    PortalLink,
    Tenant,
    TenantToken,
    TenantTokenCreated,
    Webhook,
    WebhookChanges,
    WebhookOptions,
)
from dispatcher_client.sync import Client

__all__ = [
    "BATCH_LIMIT",
    "DEFAULT_URL",
    "USER_AGENT",
    "AsyncClient",
    "Attempt",
    "BadRequest",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "Delivery",
    "DeliveryDetail",
    "DeliveryStatus",
    "DispatcherError",
    "Event",
    "EventAccepted",
    "EventInput",
    "EventType",
    "Forbidden",
    "NotFound",
    "Page",
    "PayloadTooLarge",
    "PortalLink",
    "RateLimited",
    "ServerError",
    "ServiceUnavailable",
    "Tenant",
    "TenantToken",
    "TenantTokenCreated",
    "Unauthorized",
    "ValidationFailed",
    "Webhook",
    "WebhookChanges",
    "WebhookOptions",
    "__version__",
    "error_for",
    "new_event_id",
]
