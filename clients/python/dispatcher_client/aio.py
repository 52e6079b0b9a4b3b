"""The asynchronous client: every API call is a coroutine method of :class:`AsyncClient`.

Every published event gets an idempotency ``id`` before it is sent (unless the caller gave one),
so the automatic retries (on 503 and on connection errors, a bounded number of times with
exponential backoff and jitter) can never create a duplicate: a repeat answers
``duplicate: true`` and creates nothing.

Retries follow one rule: requests that are safe to repeat (reads, publishing, updates,
enable/disable, delete, cancel) are retried on 429, 502, 503, 504, timeouts and any connection
error; the others (creating a webhook or event type, rotating a secret, ping, replay, retrying
a delivery) only when the connection could not be established at all, since a lost answer
does not tell whether the server acted.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, Unpack, cast

import aiohttp

from dispatcher_client._version import __version__
from dispatcher_client._wire import (
    BATCH_LIMIT,
    batch_body,
    dumps,
    event_body,
    loads,
    problem_of,
    query,
    seg,
    timestamp,
)
from dispatcher_client.errors import ConnectionFailed, error_for
from dispatcher_client.models import (
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

__all__ = ["DEFAULT_URL", "USER_AGENT", "AsyncClient"]

DEFAULT_URL = "http://127.0.0.1:8080"
USER_AGENT = f"dispatcher-client/{__version__}"

# "Not given": the data of a test event may be null, which is not the same as absent.
ABSENT: Any = object()

# Connection errors raised before the request could have reached the server.
_NOT_SENT: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
)
# Any failure to get an answer (the server may or may not have acted).
_NO_ANSWER: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    TimeoutError,
)
_RETRY_STATUSES = frozenset({429, 502, 503, 504})


class AsyncClient:
    """Asynchronous client; use as ``async with AsyncClient(url, token=...) as client``.

    ``retries`` is how many times a failed request is repeated (0: never); the n-th retry waits
    about ``backoff * 2**n`` seconds (with jitter, at most ``max_backoff``, longer when the
    server sends ``Retry-After``). ``timeout`` bounds each attempt.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        base = url.rstrip("/")
        self.base_url = base[: -len("/v1")] if base.endswith("/v1") else base
        self.token = token
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AsyncClient:
        self._ensure_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool; the client may not be used afterwards."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
            self._session = aiohttp.ClientSession(
                headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout)
            )
        return self._session

    def _delay(self, retry: int, retry_after: str | None) -> float:
        cap = min(self.max_backoff, self.backoff * 2.0**retry)
        delay = cap / 2 + random.uniform(0, cap / 2)
        if retry_after:
            with contextlib.suppress(ValueError):
                delay = max(delay, min(float(retry_after), self.max_backoff))
        return delay

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        idempotent: bool = True,
    ) -> Any:
        """Send one API request (``path`` under ``/v1``), retrying as described above.

        Returns the parsed JSON answer (None for an empty one); raises :class:`DispatcherError`.
        """
        session = self._ensure_session()
        url = f"{self.base_url}/v1{path}"
        data = dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else None
        retry = 0
        while True:
            retry_after: str | None = None
            try:
                async with session.request(
                    method, url, params=params, data=data, headers=headers
                ) as resp:
                    raw = await resp.read()
                    if resp.status < 400:
                        return loads(raw) if raw.strip() else None
                    error = error_for(
                        resp.status,
                        problem_of(resp.status, resp.reason, resp.content_type, raw),
                    )
                    retryable = idempotent and resp.status in _RETRY_STATUSES
                    retry_after = resp.headers.get("Retry-After")
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = ConnectionFailed(
                    0,
                    {
                        "type": "about:blank",
                        "title": "No answer",
                        "status": 0,
                        "detail": f"{method} {url}: {exc.__class__.__name__}: {exc}",
                    },
                )
                error.__cause__ = exc
                retryable = isinstance(exc, _NOT_SENT) or (
                    idempotent and isinstance(exc, _NO_ANSWER)
                )
            if not retryable or retry >= self.retries:
                raise error
            await asyncio.sleep(self._delay(retry, retry_after))
            retry += 1

    # -- events ---------------------------------------------------------------------------------

    async def publish(
        self,
        type: str,
        data: Any,
        id: str | None = None,
        occurred_at: str | datetime | None = None,
        tenant_id: str | None = None,
    ) -> EventAccepted:
        """Publish one event; ``id`` (generated when None) is its idempotency key. With
        ``tenant_id`` it goes only to that tenant's webhooks."""
        body = event_body(type, data, id, occurred_at, tenant_id)
        return cast(EventAccepted, await self.request("POST", "/events", body=body))

    async def publish_batch(
        self, events: Iterable[Mapping[str, Any] | EventInput]
    ) -> list[EventAccepted]:
        """Publish many events (split into requests of 1,000); one answer per event, in order.

        Events without an ``id`` get one, so a retried batch creates nothing twice.
        """
        bodies = [batch_body(cast(Mapping[str, Any], e)) for e in events]
        answers: list[EventAccepted] = []
        for start in range(0, len(bodies), BATCH_LIMIT):
            chunk = bodies[start : start + BATCH_LIMIT]
            got = await self.request("POST", "/events/batch", body={"events": chunk})
            answers.extend(got["data"])
        return answers

    async def list_events(
        self,
        *,
        type: str | None = None,
        tenant_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Event]:
        """Stored events, newest first; optionally of one type or one tenant."""
        params = query(type=type, tenant_id=tenant_id, limit=limit, cursor=cursor)
        return cast(Page[Event], await self.request("GET", "/events", params=params))

    async def get_event(self, event_id: str) -> Event:
        """One stored event with its deliveries by status."""
        return cast(Event, await self.request("GET", f"/events/{seg(event_id)}"))

    # -- webhooks -------------------------------------------------------------------------------

    async def list_webhooks(
        self,
        *,
        enabled: bool | None = None,
        event_type: str | None = None,
        tenant_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Webhook]:
        """Webhooks, newest first; optionally only enabled/disabled ones, by event type or of
        one tenant."""
        params = query(
            enabled=enabled, event_type=event_type, tenant_id=tenant_id, limit=limit, cursor=cursor
        )
        return cast(Page[Webhook], await self.request("GET", "/webhooks", params=params))

    async def get_webhook(self, webhook_id: str) -> Webhook:
        """One webhook."""
        return cast(Webhook, await self.request("GET", f"/webhooks/{seg(webhook_id)}"))

    async def create_webhook(
        self, name: str, url: str, event_types: Sequence[str], **options: Unpack[WebhookOptions]
    ) -> Webhook:
        """Register a webhook; the answer includes its ``secret``."""
        body = {"name": name, "url": url, "event_types": list(event_types), **options}
        got = await self.request("POST", "/webhooks", body=body, idempotent=False)
        return cast(Webhook, got)

    async def update_webhook(self, webhook_id: str, **changes: Unpack[WebhookChanges]) -> Webhook:
        """Change some fields of a webhook."""
        body: dict[str, Any] = dict(changes)
        if "event_types" in changes:
            body["event_types"] = list(changes["event_types"])
        got = await self.request("PATCH", f"/webhooks/{seg(webhook_id)}", body=body)
        return cast(Webhook, got)

    async def delete_webhook(self, webhook_id: str) -> None:
        """Delete a webhook; its unfinished deliveries are cancelled."""
        await self.request("DELETE", f"/webhooks/{seg(webhook_id)}")

    async def enable_webhook(self, webhook_id: str) -> Webhook:
        """Enable a webhook; deliveries held while it was disabled resume."""
        got = await self.request("POST", f"/webhooks/{seg(webhook_id)}/enable")
        return cast(Webhook, got)

    async def disable_webhook(self, webhook_id: str) -> Webhook:
        """Disable a webhook; its pending deliveries are held."""
        got = await self.request("POST", f"/webhooks/{seg(webhook_id)}/disable")
        return cast(Webhook, got)

    async def get_secret(self, webhook_id: str) -> str:
        """The webhook's current signing secret."""
        got = await self.request("GET", f"/webhooks/{seg(webhook_id)}/secret")
        return str(got["secret"])

    async def rotate_secret(self, webhook_id: str) -> str:
        """A new signing secret; the old one keeps signing for the grace period."""
        path = f"/webhooks/{seg(webhook_id)}/secret/rotate"
        got = await self.request("POST", path, idempotent=False)
        return str(got["secret"])

    async def ping(self, webhook_id: str) -> EventAccepted:
        """Send a ``webhook.ping`` event to this webhook only."""
        got = await self.request("POST", f"/webhooks/{seg(webhook_id)}/ping", idempotent=False)
        return cast(EventAccepted, got)

    async def send_test(
        self, webhook_id: str, event_type: str, data: Any = ABSENT
    ) -> EventAccepted:
        """Send one event of ``event_type`` to this webhook only: ``data``, or else the type's
        first example."""
        body: dict[str, Any] = {"event_type": event_type}
        if data is not ABSENT:
            body["data"] = data
        path = f"/webhooks/{seg(webhook_id)}/test"
        return cast(EventAccepted, await self.request("POST", path, body=body, idempotent=False))

    async def replay(
        self,
        webhook_id: str,
        since: str | datetime,
        status: Literal["failed", "cancelled", "success", "missing"] = "failed",
    ) -> int:
        """Re-queue the webhook's deliveries with ``status`` created since ``since``; with
        ``"missing"``, create deliveries for the events since then that match the webhook now
        but were never delivered to it. Returns how many."""
        body = {"status": status, "since": timestamp(since)}
        path = f"/webhooks/{seg(webhook_id)}/replay"
        got = await self.request("POST", path, body=body, idempotent=False)
        return int(got["count"])

    # -- deliveries -----------------------------------------------------------------------------

    async def list_deliveries(
        self,
        *,
        webhook_id: str | None = None,
        event_id: str | None = None,
        status: DeliveryStatus | None = None,
        tenant_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Delivery]:
        """Deliveries, newest first, optionally filtered."""
        params = query(
            webhook_id=webhook_id,
            event_id=event_id,
            status=status,
            tenant_id=tenant_id,
            limit=limit,
            cursor=cursor,
        )
        return cast(Page[Delivery], await self.request("GET", "/deliveries", params=params))

    async def get_delivery(self, delivery_id: str) -> DeliveryDetail:
        """One delivery with every attempt."""
        got = await self.request("GET", f"/deliveries/{seg(delivery_id)}")
        return cast(DeliveryDetail, got)

    async def retry_delivery(self, delivery_id: str) -> Delivery:
        """Schedule an immediate attempt (409 for a delivery that succeeded)."""
        path = f"/deliveries/{seg(delivery_id)}/retry"
        return cast(Delivery, await self.request("POST", path, idempotent=False))

    async def cancel_delivery(self, delivery_id: str) -> Delivery:
        """Cancel a waiting delivery (409 when it has finished)."""
        return cast(Delivery, await self.request("POST", f"/deliveries/{seg(delivery_id)}/cancel"))

    # -- event types ----------------------------------------------------------------------------

    async def list_event_types(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[EventType]:
        """The event-type catalogue, alphabetically."""
        params = query(limit=limit, cursor=cursor)
        return cast(Page[EventType], await self.request("GET", "/event-types", params=params))

    async def get_event_type(self, name: str) -> EventType:
        """One event type."""
        return cast(EventType, await self.request("GET", f"/event-types/{seg(name)}"))

    async def create_event_type(
        self,
        name: str,
        description: str = "",
        enabled: bool = True,
        *,
        schema: Any = None,
        examples: Sequence[Any] = (),
    ) -> EventType:
        """Register an event type (409 if it exists), optionally with a JSON Schema for its
        data and examples (422 if the schema is invalid or an example breaks it)."""
        body: dict[str, Any] = {"name": name, "description": description, "enabled": enabled}
        if schema is not None:
            body["schema"] = schema
        if examples:
            body["examples"] = list(examples)
        got = await self.request("POST", "/event-types", body=body, idempotent=False)
        return cast(EventType, got)

    async def update_event_type(
        self,
        name: str,
        *,
        description: str | None = None,
        enabled: bool | None = None,
        schema: Any = None,
        examples: Sequence[Any] | None = None,
        remove_schema: bool = False,
    ) -> EventType:
        """Change an event type: only what is given changes (``remove_schema`` drops it)."""
        body: dict[str, Any] = {}
        if description is not None:
            body["description"] = description
        if enabled is not None:
            body["enabled"] = enabled
        if remove_schema:
            body["schema"] = None
        elif schema is not None:
            body["schema"] = schema
        if examples is not None:
            body["examples"] = list(examples)
        got = await self.request("PATCH", f"/event-types/{seg(name)}", body=body)
        return cast(EventType, got)

    async def catalogue(self) -> dict[str, Any]:
        """``GET /v1/catalogue``: the enabled event types as an OpenAPI 3.1 document."""
        return cast(dict[str, Any], await self.request("GET", "/catalogue"))

    async def delete_event_type(self, name: str) -> None:
        """Remove an event type from the catalogue."""
        await self.request("DELETE", f"/event-types/{seg(name)}")

    # -- tenants --------------------------------------------------------------------------------

    async def create_tenant(
        self, id: str, name: str, *, metadata: Mapping[str, Any] | None = None
    ) -> Tenant:
        """Register a tenant (409 if the id exists): ``id`` is your key for the customer."""
        body: dict[str, Any] = {"id": id, "name": name}
        if metadata is not None:
            body["metadata"] = dict(metadata)
        got = await self.request("POST", "/tenants", body=body, idempotent=False)
        return cast(Tenant, got)

    async def list_tenants(
        self, *, q: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Page[Tenant]:
        """Tenants by id; ``q`` keeps those whose id or name contains it."""
        params = query(q=q, limit=limit, cursor=cursor)
        return cast(Page[Tenant], await self.request("GET", "/tenants", params=params))

    async def get_tenant(self, tenant_id: str) -> Tenant:
        """One tenant."""
        return cast(Tenant, await self.request("GET", f"/tenants/{seg(tenant_id)}"))

    async def update_tenant(
        self,
        tenant_id: str,
        *,
        name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Tenant:
        """Change a tenant's name and/or metadata (what is None stays)."""
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if metadata is not None:
            body["metadata"] = dict(metadata)
        got = await self.request("PATCH", f"/tenants/{seg(tenant_id)}", body=body)
        return cast(Tenant, got)

    async def delete_tenant(self, tenant_id: str) -> None:
        """Delete a tenant: its webhooks (their unfinished deliveries cancelled), its tokens
        and its portal links go with it."""
        await self.request("DELETE", f"/tenants/{seg(tenant_id)}")

    async def create_tenant_token(
        self, tenant_id: str, *, expires_in: int | None = None
    ) -> TenantTokenCreated:
        """A bearer token acting only inside the tenant, for ``expires_in`` seconds (None:
        until revoked). Its ``token`` is shown only in this answer."""
        body: dict[str, Any] = {} if expires_in is None else {"expires_in": expires_in}
        path = f"/tenants/{seg(tenant_id)}/tokens"
        got = await self.request("POST", path, body=body, idempotent=False)
        return cast(TenantTokenCreated, got)

    async def list_tenant_tokens(
        self, tenant_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[TenantToken]:
        """A tenant's tokens, newest first, without their secrets."""
        params = query(limit=limit, cursor=cursor)
        got = await self.request("GET", f"/tenants/{seg(tenant_id)}/tokens", params=params)
        return cast(Page[TenantToken], got)

    async def revoke_tenant_token(self, tenant_id: str, token_id: str) -> None:
        """Revoke a tenant token: it stops working at once, on every instance."""
        await self.request("DELETE", f"/tenants/{seg(tenant_id)}/tokens/{seg(token_id)}")

    async def portal_link(self, tenant_id: str, expires_in: int = 3600) -> PortalLink:
        """A single-use sign-in link to the tenant's portal, good for ``expires_in`` seconds."""
        path = f"/tenants/{seg(tenant_id)}/portal"
        got = await self.request("POST", path, body={"expires_in": expires_in}, idempotent=False)
        return cast(PortalLink, got)
