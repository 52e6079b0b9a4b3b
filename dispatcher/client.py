"""A Python client for Dispatcher's HTTP API: publish events and manage webhooks.

::

    from dispatcher.client import Client, AsyncClient

    c = Client("http://127.0.0.1:8080", token="...")
    c.publish("order.created", {"order": 42})        # -> {"id", "type", "deliveries", "duplicate"}
    c.publish_batch([{"type": "order.paid", "data": {"order": 42}}])

    async with AsyncClient("http://127.0.0.1:8080", token="...") as ac:
        await ac.publish("order.created", {"order": 42})

Every published event gets an idempotency ``id`` before it is sent (unless the caller gave one),
so the automatic retries (on 503 and on connection errors, a bounded number of times with
exponential backoff and jitter) can never create a duplicate: a repeat answers
``duplicate: true`` and creates nothing.

Retries follow one rule: requests that are safe to repeat (reads, publishing, updates,
enable/disable, delete, cancel) are retried on 429, 502, 503, 504, timeouts and any connection
error; the others (creating a webhook or event type, rotating a secret, ping, replay, retrying
a delivery) only when the connection could not be established at all, since a lost answer
does not tell whether the server acted.

Errors are :class:`DispatcherError` subclasses carrying the HTTP ``status`` and the RFC 9457
``problem`` JSON. This module imports only aiohttp, orjson and the standard library, never the
server's modules, so producers can use it without the server's dependencies being loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import uuid
import weakref
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from datetime import date, datetime
from types import TracebackType
from typing import Any, Generic, Literal, NotRequired, TypedDict, TypeVar, Unpack, cast
from urllib.parse import quote

import aiohttp
import orjson

from dispatcher import __version__

__all__ = [
    "AsyncClient",
    "BadRequest",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "DispatcherError",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "ServerError",
    "ServiceUnavailable",
    "Unauthorized",
    "ValidationFailed",
    "new_event_id",
]

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8080"
# The server accepts at most this many events per batch request; longer lists are split.
BATCH_LIMIT = 1000
USER_AGENT = f"dispatcher-client/{__version__}"

DeliveryStatus = Literal["created", "retrying", "success", "failed", "cancelled"]


# --------------------------------------------------------------------------------------------
# Answers


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


# "Not given": the data of a test event may be null, which is not the same as absent.
_ABSENT: Any = object()


# --------------------------------------------------------------------------------------------
# Errors


class DispatcherError(Exception):
    """An error answer (or no answer at all): ``status`` and the problem-details JSON."""

    def __init__(self, status: int, problem: Mapping[str, Any]) -> None:
        self.status = status
        self.problem: dict[str, Any] = dict(problem)
        super().__init__(self._describe())

    @property
    def title(self) -> str:
        """The problem's short title."""
        return str(self.problem.get("title") or "")

    @property
    def detail(self) -> str:
        """The problem's human-readable explanation."""
        return str(self.problem.get("detail") or "")

    @property
    def errors(self) -> list[dict[str, str]]:
        """Field errors of a validation failure (``[{"field", "message"}]``)."""
        errors = self.problem.get("errors")
        return list(errors) if isinstance(errors, list) else []

    def _describe(self) -> str:
        text = f"{self.status} {self.title}".strip()
        if self.detail:
            text += f": {self.detail}"
        for err in self.errors:
            text += f"\n  {err.get('field')}: {err.get('message')}"
        return text


class BadRequest(DispatcherError):
    """400: the body is not JSON, or not the expected shape."""


class Unauthorized(DispatcherError):
    """401: no token, or a token the server does not know."""


class Forbidden(DispatcherError):
    """403: the token may not do this (a publish token may only publish)."""


class NotFound(DispatcherError):
    """404: no such webhook, delivery, event or event type."""


class Conflict(DispatcherError):
    """409: the resource is not in a state that allows this."""


class PayloadTooLarge(DispatcherError):
    """413: the body is larger than the server accepts."""


class ValidationFailed(DispatcherError):
    """422: a field is invalid; see :attr:`errors`."""


class RateLimited(DispatcherError):
    """429: too many requests."""


class ServerError(DispatcherError):
    """A 5xx answer."""


class ServiceUnavailable(ServerError):
    """503: the server cannot take the request now (database down, ingestion off)."""


class ConnectionFailed(DispatcherError):
    """No HTTP answer: connection refused or reset, or a timeout. ``status`` is 0."""


_BY_STATUS: dict[int, type[DispatcherError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationFailed,
    429: RateLimited,
    503: ServiceUnavailable,
}


def error_for(status: int, problem: Mapping[str, Any]) -> DispatcherError:
    """The exception for an error answer."""
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else DispatcherError)
    return cls(status, problem)


# --------------------------------------------------------------------------------------------
# Helpers


def new_event_id() -> str:
    """A fresh idempotency key for an event (``evt_`` + 32 hex digits of a UUID4)."""
    return "evt_" + uuid.uuid4().hex


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _dumps(body: Any) -> bytes:
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        # Integers beyond 64 bits (and anything else orjson refuses) go through the stdlib.
        return json.dumps(
            body, separators=(",", ":"), ensure_ascii=False, default=_json_default
        ).encode()


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def _timestamp(value: str | datetime | None) -> str | None:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("occurred_at must be timezone-aware")
        return value.isoformat()
    return value


def _event_body(
    type: str, data: Any, id: str | None, occurred_at: str | datetime | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"type": type, "data": data, "id": id or new_event_id()}
    stamp = _timestamp(occurred_at)
    if stamp is not None:
        body["occurred_at"] = stamp
    return body


def _batch_body(event: Mapping[str, Any]) -> dict[str, Any]:
    extra = set(event) - {"type", "data", "id", "occurred_at"}
    if extra:
        # Caught here rather than as a 422 for the whole batch.
        raise ValueError(f"unknown event field(s): {', '.join(sorted(extra))}")
    if "type" not in event or "data" not in event:
        raise ValueError("each event needs 'type' and 'data'")
    return _event_body(event["type"], event["data"], event.get("id"), event.get("occurred_at"))


def _seg(value: str) -> str:
    """A path segment, percent-encoded."""
    return quote(value, safe="")


def _query(**params: object) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


def _problem_of(status: int, reason: str | None, content_type: str, raw: bytes) -> dict[str, Any]:
    if "json" in content_type:
        try:
            body = _loads(raw)
        except ValueError:
            body = None
        if isinstance(body, dict):
            return body
    return {
        "type": "about:blank",
        "title": reason or "Error",
        "status": status,
        "detail": raw[:500].decode("utf-8", "replace"),
    }


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


# --------------------------------------------------------------------------------------------
# The asynchronous client


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
        data = _dumps(body) if body is not None else None
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
                        return _loads(raw) if raw.strip() else None
                    error = error_for(
                        resp.status,
                        _problem_of(resp.status, resp.reason, resp.content_type, raw),
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
    ) -> EventAccepted:
        """Publish one event; ``id`` (generated when None) is its idempotency key."""
        body = _event_body(type, data, id, occurred_at)
        return cast(EventAccepted, await self.request("POST", "/events", body=body))

    async def publish_batch(
        self, events: Iterable[Mapping[str, Any] | EventInput]
    ) -> list[EventAccepted]:
        """Publish many events (split into requests of 1,000); one answer per event, in order.

        Events without an ``id`` get one, so a retried batch creates nothing twice.
        """
        bodies = [_batch_body(cast(Mapping[str, Any], e)) for e in events]
        answers: list[EventAccepted] = []
        for start in range(0, len(bodies), BATCH_LIMIT):
            chunk = bodies[start : start + BATCH_LIMIT]
            got = await self.request("POST", "/events/batch", body={"events": chunk})
            answers.extend(got["data"])
        return answers

    async def list_events(
        self, *, type: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Page[Event]:
        """Stored events, newest first."""
        params = _query(type=type, limit=limit, cursor=cursor)
        return cast(Page[Event], await self.request("GET", "/events", params=params))

    async def get_event(self, event_id: str) -> Event:
        """One stored event with its deliveries by status."""
        return cast(Event, await self.request("GET", f"/events/{_seg(event_id)}"))

    # -- webhooks -------------------------------------------------------------------------------

    async def list_webhooks(
        self,
        *,
        enabled: bool | None = None,
        event_type: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Webhook]:
        """Webhooks, newest first; optionally only enabled/disabled ones or by event type."""
        params = _query(enabled=enabled, event_type=event_type, limit=limit, cursor=cursor)
        return cast(Page[Webhook], await self.request("GET", "/webhooks", params=params))

    async def get_webhook(self, webhook_id: str) -> Webhook:
        """One webhook."""
        return cast(Webhook, await self.request("GET", f"/webhooks/{_seg(webhook_id)}"))

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
        got = await self.request("PATCH", f"/webhooks/{_seg(webhook_id)}", body=body)
        return cast(Webhook, got)

    async def delete_webhook(self, webhook_id: str) -> None:
        """Delete a webhook; its unfinished deliveries are cancelled."""
        await self.request("DELETE", f"/webhooks/{_seg(webhook_id)}")

    async def enable_webhook(self, webhook_id: str) -> Webhook:
        """Enable a webhook; deliveries held while it was disabled resume."""
        got = await self.request("POST", f"/webhooks/{_seg(webhook_id)}/enable")
        return cast(Webhook, got)

    async def disable_webhook(self, webhook_id: str) -> Webhook:
        """Disable a webhook; its pending deliveries are held."""
        got = await self.request("POST", f"/webhooks/{_seg(webhook_id)}/disable")
        return cast(Webhook, got)

    async def get_secret(self, webhook_id: str) -> str:
        """The webhook's current signing secret."""
        got = await self.request("GET", f"/webhooks/{_seg(webhook_id)}/secret")
        return str(got["secret"])

    async def rotate_secret(self, webhook_id: str) -> str:
        """A new signing secret; the old one keeps signing for the grace period."""
        path = f"/webhooks/{_seg(webhook_id)}/secret/rotate"
        got = await self.request("POST", path, idempotent=False)
        return str(got["secret"])

    async def ping(self, webhook_id: str) -> EventAccepted:
        """Send a ``webhook.ping`` event to this webhook only."""
        got = await self.request("POST", f"/webhooks/{_seg(webhook_id)}/ping", idempotent=False)
        return cast(EventAccepted, got)

    async def send_test(
        self, webhook_id: str, event_type: str, data: Any = _ABSENT
    ) -> EventAccepted:
        """Send one event of ``event_type`` to this webhook only: ``data``, or else the type's
        first example."""
        body: dict[str, Any] = {"event_type": event_type}
        if data is not _ABSENT:
            body["data"] = data
        path = f"/webhooks/{_seg(webhook_id)}/test"
        return cast(EventAccepted, await self.request("POST", path, body=body, idempotent=False))

    async def replay(
        self,
        webhook_id: str,
        since: str | datetime,
        status: Literal["failed", "cancelled", "success"] = "failed",
    ) -> int:
        """Re-queue the webhook's deliveries with ``status`` created since ``since``."""
        body = {"status": status, "since": _timestamp(since)}
        path = f"/webhooks/{_seg(webhook_id)}/replay"
        got = await self.request("POST", path, body=body, idempotent=False)
        return int(got["count"])

    # -- deliveries -----------------------------------------------------------------------------

    async def list_deliveries(
        self,
        *,
        webhook_id: str | None = None,
        event_id: str | None = None,
        status: DeliveryStatus | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Delivery]:
        """Deliveries, newest first, optionally filtered."""
        params = _query(
            webhook_id=webhook_id, event_id=event_id, status=status, limit=limit, cursor=cursor
        )
        return cast(Page[Delivery], await self.request("GET", "/deliveries", params=params))

    async def get_delivery(self, delivery_id: str) -> DeliveryDetail:
        """One delivery with every attempt."""
        got = await self.request("GET", f"/deliveries/{_seg(delivery_id)}")
        return cast(DeliveryDetail, got)

    async def retry_delivery(self, delivery_id: str) -> Delivery:
        """Schedule an immediate attempt (409 for a delivery that succeeded)."""
        path = f"/deliveries/{_seg(delivery_id)}/retry"
        return cast(Delivery, await self.request("POST", path, idempotent=False))

    async def cancel_delivery(self, delivery_id: str) -> Delivery:
        """Cancel a waiting delivery (409 when it has finished)."""
        return cast(Delivery, await self.request("POST", f"/deliveries/{_seg(delivery_id)}/cancel"))

    # -- event types ----------------------------------------------------------------------------

    async def list_event_types(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[EventType]:
        """The event-type catalogue, alphabetically."""
        params = _query(limit=limit, cursor=cursor)
        return cast(Page[EventType], await self.request("GET", "/event-types", params=params))

    async def get_event_type(self, name: str) -> EventType:
        """One event type."""
        return cast(EventType, await self.request("GET", f"/event-types/{_seg(name)}"))

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
        got = await self.request("PATCH", f"/event-types/{_seg(name)}", body=body)
        return cast(EventType, got)

    async def catalogue(self) -> dict[str, Any]:
        """``GET /v1/catalogue``: the enabled event types as an OpenAPI 3.1 document."""
        return cast(dict[str, Any], await self.request("GET", "/catalogue"))

    async def delete_event_type(self, name: str) -> None:
        """Remove an event type from the catalogue."""
        await self.request("DELETE", f"/event-types/{_seg(name)}")


# --------------------------------------------------------------------------------------------
# The synchronous client


class _LoopThread:
    """A private event loop running in a daemon thread; coroutines are submitted to it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="dispatcher-client", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self.loop.is_closed() or not self.thread.is_alive():
            coro.close()
            raise RuntimeError("the client is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def stop(self) -> None:
        """Stop the loop and its thread, then close the loop (idempotent)."""
        if self.loop.is_closed():
            return
        if threading.current_thread() is self.thread:
            self.loop.stop()
            return
        if self.thread.is_alive():
            with contextlib.suppress(Exception):
                done = asyncio.run_coroutine_threadsafe(
                    self.loop.shutdown_default_executor(), self.loop
                )
                done.result(5)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()


class Client:
    """Synchronous client with the same methods as :class:`AsyncClient`.

    It runs an :class:`AsyncClient` on a private event loop in a background thread, so it works
    from any thread, including one whose own event loop is running. It is thread-safe. Close it
    with :meth:`close` or use it as a context manager.
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
        self._async = AsyncClient(
            url, token, timeout=timeout, retries=retries, backoff=backoff, max_backoff=max_backoff
        )
        self._runner = _LoopThread()
        # A client dropped without close() still stops its thread.
        self._finalizer = weakref.finalize(self, self._runner.stop)

    @property
    def base_url(self) -> str:
        """The server's base URL."""
        return self._async.base_url

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close connections and stop the background loop. Calling it twice is harmless."""
        if not self._finalizer.alive:
            return
        with contextlib.suppress(RuntimeError):
            self._runner.run(self._async.close())
        self._finalizer()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coro)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        idempotent: bool = True,
    ) -> Any:
        """See :meth:`AsyncClient.request`."""
        return self._run(
            self._async.request(method, path, params=params, body=body, idempotent=idempotent)
        )

    # -- events ---------------------------------------------------------------------------------

    def publish(
        self,
        type: str,
        data: Any,
        id: str | None = None,
        occurred_at: str | datetime | None = None,
    ) -> EventAccepted:
        """Publish one event; ``id`` (generated when None) is its idempotency key."""
        return self._run(self._async.publish(type, data, id, occurred_at))

    def publish_batch(
        self, events: Iterable[Mapping[str, Any] | EventInput]
    ) -> list[EventAccepted]:
        """Publish many events; one answer per event, in order."""
        return self._run(self._async.publish_batch(list(events)))

    def list_events(
        self, *, type: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Page[Event]:
        """Stored events, newest first."""
        return self._run(self._async.list_events(type=type, limit=limit, cursor=cursor))

    def get_event(self, event_id: str) -> Event:
        """One stored event with its deliveries by status."""
        return self._run(self._async.get_event(event_id))

    # -- webhooks -------------------------------------------------------------------------------

    def list_webhooks(
        self,
        *,
        enabled: bool | None = None,
        event_type: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Webhook]:
        """Webhooks, newest first; optionally only enabled/disabled ones or by event type."""
        return self._run(
            self._async.list_webhooks(
                enabled=enabled, event_type=event_type, limit=limit, cursor=cursor
            )
        )

    def get_webhook(self, webhook_id: str) -> Webhook:
        """One webhook."""
        return self._run(self._async.get_webhook(webhook_id))

    def create_webhook(
        self, name: str, url: str, event_types: Sequence[str], **options: Unpack[WebhookOptions]
    ) -> Webhook:
        """Register a webhook; the answer includes its ``secret``."""
        return self._run(self._async.create_webhook(name, url, event_types, **options))

    def update_webhook(self, webhook_id: str, **changes: Unpack[WebhookChanges]) -> Webhook:
        """Change some fields of a webhook."""
        return self._run(self._async.update_webhook(webhook_id, **changes))

    def delete_webhook(self, webhook_id: str) -> None:
        """Delete a webhook; its unfinished deliveries are cancelled."""
        self._run(self._async.delete_webhook(webhook_id))

    def enable_webhook(self, webhook_id: str) -> Webhook:
        """Enable a webhook; deliveries held while it was disabled resume."""
        return self._run(self._async.enable_webhook(webhook_id))

    def disable_webhook(self, webhook_id: str) -> Webhook:
        """Disable a webhook; its pending deliveries are held."""
        return self._run(self._async.disable_webhook(webhook_id))

    def get_secret(self, webhook_id: str) -> str:
        """The webhook's current signing secret."""
        return self._run(self._async.get_secret(webhook_id))

    def rotate_secret(self, webhook_id: str) -> str:
        """A new signing secret; the old one keeps signing for the grace period."""
        return self._run(self._async.rotate_secret(webhook_id))

    def ping(self, webhook_id: str) -> EventAccepted:
        """Send a ``webhook.ping`` event to this webhook only."""
        return self._run(self._async.ping(webhook_id))

    def send_test(self, webhook_id: str, event_type: str, data: Any = _ABSENT) -> EventAccepted:
        """Send one event of ``event_type`` to this webhook only: ``data``, or else the type's
        first example."""
        return self._run(self._async.send_test(webhook_id, event_type, data))

    def replay(
        self,
        webhook_id: str,
        since: str | datetime,
        status: Literal["failed", "cancelled", "success"] = "failed",
    ) -> int:
        """Re-queue the webhook's deliveries with ``status`` created since ``since``."""
        return self._run(self._async.replay(webhook_id, since, status))

    # -- deliveries -----------------------------------------------------------------------------

    def list_deliveries(
        self,
        *,
        webhook_id: str | None = None,
        event_id: str | None = None,
        status: DeliveryStatus | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Delivery]:
        """Deliveries, newest first, optionally filtered."""
        return self._run(
            self._async.list_deliveries(
                webhook_id=webhook_id, event_id=event_id, status=status, limit=limit, cursor=cursor
            )
        )

    def get_delivery(self, delivery_id: str) -> DeliveryDetail:
        """One delivery with every attempt."""
        return self._run(self._async.get_delivery(delivery_id))

    def retry_delivery(self, delivery_id: str) -> Delivery:
        """Schedule an immediate attempt (409 for a delivery that succeeded)."""
        return self._run(self._async.retry_delivery(delivery_id))

    def cancel_delivery(self, delivery_id: str) -> Delivery:
        """Cancel a waiting delivery (409 when it has finished)."""
        return self._run(self._async.cancel_delivery(delivery_id))

    # -- event types ----------------------------------------------------------------------------

    def list_event_types(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[EventType]:
        """The event-type catalogue, alphabetically."""
        return self._run(self._async.list_event_types(limit=limit, cursor=cursor))

    def get_event_type(self, name: str) -> EventType:
        """One event type."""
        return self._run(self._async.get_event_type(name))

    def create_event_type(
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
        return self._run(
            self._async.create_event_type(
                name, description, enabled, schema=schema, examples=examples
            )
        )

    def update_event_type(
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
        return self._run(
            self._async.update_event_type(
                name,
                description=description,
                enabled=enabled,
                schema=schema,
                examples=examples,
                remove_schema=remove_schema,
            )
        )

    def catalogue(self) -> dict[str, Any]:
        """``GET /v1/catalogue``: the enabled event types as an OpenAPI 3.1 document."""
        return self._run(self._async.catalogue())

    def delete_event_type(self, name: str) -> None:
        """Remove an event type from the catalogue."""
        self._run(self._async.delete_event_type(name))
