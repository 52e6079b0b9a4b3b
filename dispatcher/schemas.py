"""Request and response bodies, declared once.

The server validates with these models and the OpenAPI document is generated from them.
Models are strict (no silent type coercion) and forbid unknown fields, so a typo gets a 422
naming the field instead of being ignored.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from yarl import URL

from dispatcher import matching, nesting, signing
from dispatcher.db import dumps_exact

# Marks a field whose value is free JSON, stored as json (which, unlike text, keeps \u0000).
ANY_JSON: dict[str, Any] = {"x-any-json": True}

# Header names a webhook may not override: they carry the envelope and the signature.
RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "connection",
        "host",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        # The svix verifier prefers these to webhook-*: set by hand, they fail its check.
        "svix-id",
        "svix-timestamp",
        "svix-signature",
        "te",
        "upgrade",
        "expect",
        "keep-alive",
    }
)
# \Z, not $: $ also matches before a final newline, and "v\n" is no header value.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}\Z")
_HEADER_VALUE = re.compile(r"^[\t\x20-\x7e\x80-\xff]{0,4096}\Z")


def _check_url(value: str) -> str:
    if len(value) > 2048:
        raise ValueError("must be at most 2048 characters")
    if any(ch <= " " or ch == "\x7f" for ch in value):
        raise ValueError("must not contain spaces or control characters")
    try:
        url = URL(value)
    except (ValueError, TypeError):
        raise ValueError("is not a valid URL") from None
    if url.scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if not url.host:
        raise ValueError("must include a host")
    if url.user is not None or url.password is not None:
        raise ValueError("must not contain credentials; use headers instead")
    if url.fragment:
        raise ValueError("must not contain a #fragment")
    try:
        _ = url.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    return value


def _check_patterns(value: list[str]) -> list[str]:
    for i, pattern in enumerate(value):
        problem = matching.pattern_problem(pattern)
        if problem:
            raise ValueError(f"[{i}] {pattern!r} {problem}")
    # Keep order, drop repeats.
    return list(dict.fromkeys(value))


def _check_headers(value: dict[str, str]) -> dict[str, str]:
    if len(value) > 50:
        raise ValueError("at most 50 headers")
    seen: set[str] = set()
    for name, val in value.items():
        if not _HEADER_NAME.match(name):
            raise ValueError(f"{name!r} is not a valid header name")
        lower = name.lower()
        if lower in RESERVED_HEADERS:
            raise ValueError(f"{name!r} is set by Dispatcher and cannot be overridden")
        if lower in seen:
            raise ValueError(f"{name!r} is given twice")
        seen.add(lower)
        if not _HEADER_VALUE.match(val):
            raise ValueError(f"the value of {name!r} contains control characters or is too long")
    return value


def _check_secret(value: str) -> str:
    problem = signing.secret_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _check_name(value: str) -> str:
    problem = matching.name_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _small_json(value: dict[str, Any]) -> dict[str, Any]:
    if len(dumps_exact(value).encode()) > 16384:
        raise ValueError("must serialize to at most 16 KiB")
    return value


def described(**keywords: Any) -> Any:
    """JSON Schema keywords for the OpenAPI document alone.

    The validators enforce each rule, with messages of their own; these say the same to clients
    (and to schemathesis). Where a rule has no exact JSON Schema form (what yarl accepts as a
    URL), they describe a subset of what is accepted, never more: a request valid by the
    document is accepted.
    """
    return Field(json_schema_extra=keywords)


_NUL_FREE = "^[^\\u0000]*$"
# What str.strip() removes, as an ECMA character class (its \\s differs from Python's).
_BLANK = (
    "\\t\\n\\v\\f\\r\\u001c-\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a"
    "\\u2028\\u2029\\u202f\\u205f\\u3000"
)
_NOT_BLANK = f"^[^\\u0000]*[^\\u0000{_BLANK}][^\\u0000]*$"
# What the URL check (yarl) accepts, as far as a pattern can say: http(s), a host of ASCII
# characters yarl takes (non-ASCII hosts pass only as valid IDNA), a port up to 65535, any
# path and query without spaces or control characters, no fragment (an empty one is ignored).
_PORT = "(0*([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
_URL = (
    "^[hH][tT][tT][pP][sS]?://[!\"$%&'()*+,.0-9;<=>A-Z^_`a-z{|}~-]+"
    f"(:{_PORT})?([/?][^\\u0000-\\u0020\\u007f#]*)?#?$"
)
_HEADER_NAME_PATTERN = "^[!#$%&'*+\\-.^_`|~0-9A-Za-z]{1,128}$"
_HEADER_VALUE_PATTERN = "^[\\t\\u0020-\\u007e\\u0080-\\u00ff]{0,4096}$"
_RESERVED_PATTERN = (
    "^("
    + "|".join(
        "".join(f"[{c}{c.upper()}]" if c.isalpha() else c for c in name)
        for name in sorted(RESERVED_HEADERS)
    )
    + ")$"
)
_B64 = "[A-Za-z0-9+/]"
# whsec_ + standard base64 of 24 to 64 bytes: 8 to 21 full groups and a padded tail.
_SECRET = (
    f"^whsec_(({_B64}{{4}}){{8,20}}({_B64}{{2}}==|{_B64}{{3}}=)?"
    f"|({_B64}{{4}}){{21}}({_B64}{{2}}==)?)$"
)

Name = Annotated[
    str,
    Field(min_length=1, max_length=255),
    AfterValidator(_non_blank),
    described(pattern=_NOT_BLANK),
]
Url = Annotated[str, AfterValidator(_check_url), described(maxLength=2048, pattern=_URL)]
Patterns = Annotated[
    list[Annotated[str, Field(max_length=255), described(pattern=matching.SUBSCRIPTION_PATTERN)]],
    Field(min_length=1, max_length=100),
    AfterValidator(_check_patterns),
]
Headers = Annotated[
    dict[str, str],
    AfterValidator(_check_headers),
    described(
        maxProperties=50,
        propertyNames={"pattern": _HEADER_NAME_PATTERN, "not": {"pattern": _RESERVED_PATTERN}},
        additionalProperties={"type": "string", "pattern": _HEADER_VALUE_PATTERN},
    ),
]
Metadata = Annotated[
    dict[str, Any],
    AfterValidator(_small_json),
    Field(
        description="A free JSON object: at most 16 KiB as JSON, nested at most "
        f"{nesting.MAX_JSON_DEPTH} levels deep, without NUL characters."
    ),
]
Secret = Annotated[
    str, Field(max_length=200), AfterValidator(_check_secret), described(pattern=_SECRET)
]
Description = Annotated[str, Field(max_length=2000), described(pattern=_NUL_FREE)]


def _whole_number(value: Any) -> Any:
    # JSON has one kind of number: 3.0 is the integer 3 (to JSON Schema as well).
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


MaxRetries = Annotated[int, Field(ge=0, le=100), BeforeValidator(_whole_number)]
Timeout = Annotated[float, Field(gt=0, le=300)]
RateLimit = Annotated[float, Field(gt=0, le=100000)]
MaxInFlight = Annotated[int, Field(ge=1, le=100000), BeforeValidator(_whole_number)]
EventTypeName = Annotated[
    str,
    AfterValidator(_check_name),
    described(pattern=matching.NAME_PATTERN, maxLength=matching.MAX_NAME),
]


def _not_reserved(value: str) -> str:
    problem = matching.reserved_problem(value)
    if problem:
        raise ValueError(problem)
    return value


# What producers publish and register: any name outside Dispatcher's own ``dispatcher.*``.
ProducerTypeName = Annotated[
    EventTypeName,
    AfterValidator(_not_reserved),
    described(pattern=matching.PRODUCER_NAME_PATTERN),
]


# Timestamps arrive as RFC 3339 strings, so this field alone is not strict.
def _timestamp_text(value: Any) -> Any:
    if not isinstance(value, (str, datetime)):
        raise ValueError("must be an RFC 3339 date-time string")
    return value


def _utc(value: datetime) -> datetime:
    # Stored and compared as UTC; 0001-01-01T00:00:00+14:00 has no UTC form a datetime holds.
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range: in UTC it must fall in the years 1 to 9999") from None


Timestamp = Annotated[
    AwareDatetime, Strict(False), BeforeValidator(_timestamp_text), AfterValidator(_utc)
]
EventId = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.:~-]+$")]
# A tenant's id: the operator's key for the customer (as the tenants table's CHECK has it).
TENANT_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
TenantId = Annotated[str, Field(min_length=1, max_length=128, pattern=TENANT_ID_PATTERN)]


def _nul_path(value: Any, path: str) -> str | None:
    """The path of the first string (or key) containing NUL, which Postgres cannot store.

    Iterative (depth-first, in document order): a value nested a thousand levels deep must
    get its 422, not exhaust the stack.
    """
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return where
        elif isinstance(item, dict):
            children: list[tuple[Any, str]] = []
            for key, child in item.items():
                sub = f"{where}.{key}" if where else str(key)
                if isinstance(key, str) and "\x00" in key:
                    return sub
                children.append((child, sub))
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend((item[i], f"{where}[{i}]") for i in reversed(range(len(item))))
    return None


def _holds_models(annotation: Any) -> bool:
    """Whether a field's type contains request models (``list[EventIn]``): those are checked
    for depth field by field, where the error can name ``events[3].data``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_holds_models(arg) for arg in get_args(annotation))


@functools.cache
def _field_holds_models(model: type[BaseModel], name: str) -> bool:
    return _holds_models(model.model_fields[name].annotation)


class Body(BaseModel):
    """Base for request bodies: strict types, unknown fields rejected, no NUL characters, no
    value nested deeper than :data:`dispatcher.nesting.MAX_JSON_DEPTH`."""

    model_config = ConfigDict(strict=True, extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if (
            field is not None
            and not _field_holds_models(cls, info.field_name or "")
            and nesting.deeper_than(value, nesting.MAX_JSON_DEPTH)
        ):
            raise ValueError(nesting.too_deep())
        if field is not None and field.json_schema_extra == ANY_JSON:
            return value
        path = _nul_path(value, "")
        if path is not None:
            where = f" (at {path})" if path else ""
            raise ValueError(f"must not contain NUL characters{where}")
        return value


class WebhookCreate(Body):
    """``POST /v1/webhooks``."""

    name: Name
    url: Url
    event_types: Patterns
    enabled: bool = True
    description: Description = ""
    headers: Headers = Field(default_factory=dict)
    metadata: Metadata = Field(default_factory=dict)
    include_payload: bool = True
    max_retries: MaxRetries | None = None
    timeout_seconds: Timeout | None = None
    rate_limit_per_second: RateLimit | None = None
    max_in_flight: MaxInFlight | None = None
    secret: Secret | None = None
    tenant_id: TenantId | None = Field(
        None, description="The tenant it belongs to (a tenant token's own when left out)."
    )


# Fields of WebhookPatch that must not be null when present.
PATCH_NOT_NULL = frozenset(
    {
        "name",
        "url",
        "event_types",
        "enabled",
        "description",
        "headers",
        "metadata",
        "include_payload",
    }
)


def _not_nullable(*names: str) -> Callable[[dict[str, Any], type], None]:
    """For the document of a PATCH body: these fields may be left out but not sent as null
    (their Python type is Optional only to tell "absent" from a value)."""

    def edit(schema: dict[str, Any], _model: type) -> None:
        for name in names:
            prop = schema["properties"].get(name, {})
            options = [o for o in prop.pop("anyOf", []) if o != {"type": "null"}]
            if len(options) == 1:
                prop.update(options[0])

    return edit


class WebhookPatch(Body):
    """``PATCH /v1/webhooks/{id}``: only the fields sent change; null resets an override."""

    model_config = ConfigDict(json_schema_extra=_not_nullable(*PATCH_NOT_NULL))

    name: Name | None = None
    url: Url | None = None
    event_types: Patterns | None = None
    enabled: bool | None = None
    description: Description | None = None
    headers: Headers | None = None
    metadata: Metadata | None = None
    include_payload: bool | None = None
    max_retries: MaxRetries | None = None
    timeout_seconds: Timeout | None = None
    rate_limit_per_second: RateLimit | None = None
    max_in_flight: MaxInFlight | None = None


class Webhook(BaseModel):
    """A webhook as the API returns it."""

    id: str
    name: str
    url: str
    event_types: list[str]
    enabled: bool
    disabled_reason: Literal["manual", "auto", "gone"] | None
    disabled_at: datetime | None
    description: str
    headers: dict[str, str]
    metadata: dict[str, Any]
    include_payload: bool
    max_retries: int | None
    timeout_seconds: float | None
    rate_limit_per_second: float | None
    max_in_flight: int | None
    created_at: datetime
    updated_at: datetime
    tenant_id: str | None = Field(description="Its tenant; null: the operator's own.")
    secret: str | None = Field(None, description="Only in the answer to create.")


class SecretOut(BaseModel):
    """``{"secret": "whsec_..."}``."""

    secret: str


def _json_size(limit: int) -> Any:
    def check(value: Any) -> Any:
        if value is not None and len(dumps_exact(value).encode()) > limit:
            raise ValueError(f"must serialize to at most {limit // 1024} KiB")
        return value

    return AfterValidator(check)


def _a_schema(value: Any) -> Any:
    if value is not None and not isinstance(value, (dict, bool)):
        raise ValueError("must be a JSON Schema: an object (or true/false), or null")
    return value


# A draft 2020-12 JSON Schema for an event type's data (null: none). Checked as a schema by
# the handlers (dispatcher.event_schemas.catalogue_errors), which say where inside it.
TypeSchema = Annotated[
    Any,
    AfterValidator(_a_schema),
    WithJsonSchema({"type": ["object", "boolean", "null"]}),
    _json_size(64 * 1024),
    Field(
        alias="schema",
        description="A JSON Schema (draft 2020-12) for the events' data; null: not validated.",
        json_schema_extra=ANY_JSON,
    ),
]
Examples = Annotated[
    list[Any],
    Field(
        max_length=20,
        description="Example data values, each valid against the schema.",
        json_schema_extra=ANY_JSON,
    ),
    _json_size(256 * 1024),
]


class EventTypeCreate(Body):
    """``POST /v1/event-types``."""

    name: ProducerTypeName
    description: Description = ""
    enabled: bool = True
    schema_: TypeSchema = None
    examples: Examples = Field(default_factory=list)


class EventTypePatch(Body):
    """``PATCH /v1/event-types/{name}``: only the fields sent change; ``schema: null`` drops it."""

    model_config = ConfigDict(json_schema_extra=_not_nullable("examples"))

    description: Description | None = None
    enabled: bool | None = None
    schema_: TypeSchema = None
    examples: Examples | None = None


class EventType(BaseModel):
    """An event type as the API returns it."""

    name: str
    description: str
    enabled: bool
    schema_: Any = Field(alias="schema", json_schema_extra=ANY_JSON)
    examples: list[Any] = Field(json_schema_extra=ANY_JSON)
    created_at: datetime
    updated_at: datetime


class SendTestIn(Body):
    """``POST /v1/webhooks/{id}/test``: one event of this type; ``data`` or the first example."""

    # Not dispatcher.*: a test send must not forge an operational event either.
    event_type: ProducerTypeName
    data: Any = Field(
        None,
        description="The event's data; absent: the type's first example.",
        json_schema_extra=ANY_JSON,
    )


class ProblemOut(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, str]] | None = None


class EventIn(Body):
    """One event to publish. ``id`` is the idempotency key; one is generated if absent."""

    type: ProducerTypeName
    data: Any = Field(
        ...,
        description="Any JSON value, nested at most "
        f"{nesting.MAX_JSON_DEPTH} levels deep; sent to receivers as is.",
        json_schema_extra=ANY_JSON,
    )
    id: EventId | None = None
    occurred_at: Timestamp | None = None
    tenant_id: TenantId | None = Field(
        None, description="Deliver only to this tenant's webhooks (none: the operator's)."
    )


class EventBatchIn(Body):
    """``POST /v1/events/batch``."""

    events: Annotated[list[EventIn], Field(min_length=1, max_length=1000)]


class EventAccepted(BaseModel):
    """The answer for one published event."""

    id: str
    type: str
    deliveries: int
    duplicate: bool


class EventBatchAccepted(BaseModel):
    """One answer per event, in order."""

    data: list[EventAccepted]


class EventOut(BaseModel):
    """A stored event with a count of its deliveries by status."""

    id: str
    type: str
    data: Any
    occurred_at: datetime
    created_at: datetime
    tenant_id: str | None
    deliveries: dict[str, int]


DeliveryStatus = Literal["created", "retrying", "success", "failed", "cancelled"]


class AttemptOut(BaseModel):
    """One HTTP attempt."""

    number: int
    started_at: datetime
    duration_ms: float
    status_code: int | None
    response_body: str | None
    error: str | None
    url: str


class DeliveryOut(BaseModel):
    """A delivery of one event to one webhook."""

    id: str
    event_id: str
    event_type: str
    webhook_id: str
    tenant_id: str | None
    status: DeliveryStatus
    attempt_count: int
    created_at: datetime
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None


class DeliveryDetail(DeliveryOut):
    """A delivery with every attempt."""

    attempts: list[AttemptOut]


class ReplayIn(Body):
    """``POST /v1/webhooks/{id}/replay``: re-queue deliveries with this status since a time;
    ``missing`` creates deliveries for matching events never delivered to the webhook."""

    status: Literal["failed", "cancelled", "success", "missing"] = "failed"
    since: Timestamp


class CountOut(BaseModel):
    """``{"count": n}``."""

    count: int


class WebhookPage(BaseModel):
    """A page of webhooks."""

    data: list[Webhook]
    next_cursor: str | None


class EventTypePage(BaseModel):
    """A page of event types."""

    data: list[EventType]
    next_cursor: str | None


class EventPage(BaseModel):
    """A page of events."""

    data: list[EventOut]
    next_cursor: str | None


class DeliveryPage(BaseModel):
    """A page of deliveries."""

    data: list[DeliveryOut]
    next_cursor: str | None


class HealthOut(BaseModel):
    """Liveness or readiness."""

    status: str
    checks: dict[str, Any] | None = None


# --- tenants ----------------------------------------------------------------------------------

# How long a tenant token may last (no expires_in: until revoked), and a portal link.
TOKEN_EXPIRES_IN = (60, 10 * 365 * 86400)
PORTAL_EXPIRES_IN = (60, 7 * 86400)
PORTAL_DEFAULT_EXPIRES_IN = 3600


class TenantCreate(Body):
    """``POST /v1/tenants``."""

    id: TenantId = Field(description="Your key for the customer: 1 to 128 letters, digits and ._:-")
    name: Name
    metadata: Metadata = Field(default_factory=dict)


class TenantPatch(Body):
    """``PATCH /v1/tenants/{id}``: only the fields sent change."""

    model_config = ConfigDict(json_schema_extra=_not_nullable("name", "metadata"))

    name: Name | None = None
    metadata: Metadata | None = None


class Tenant(BaseModel):
    """A tenant (one of your customers)."""

    id: str
    name: str
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class TenantPage(BaseModel):
    """A page of tenants."""

    data: list[Tenant]
    next_cursor: str | None


class TenantTokenIn(Body):
    """``POST /v1/tenants/{id}/tokens``: the token lasts ``expires_in`` seconds, or until
    revoked when left out."""

    expires_in: (
        Annotated[
            int,
            Field(ge=TOKEN_EXPIRES_IN[0], le=TOKEN_EXPIRES_IN[1]),
            BeforeValidator(_whole_number),
        ]
        | None
    ) = None


class TenantToken(BaseModel):
    """A tenant token as listed (its secret is shown only once, when created)."""

    id: str
    tenant_id: str
    created_at: datetime
    expires_at: datetime | None


class TenantTokenCreated(TenantToken):
    """A new tenant token: ``token`` is the bearer token, shown this once."""

    token: str


class TenantTokenPage(BaseModel):
    """A page of a tenant's tokens."""

    data: list[TenantToken]
    next_cursor: str | None


class PortalLinkIn(Body):
    """``POST /v1/tenants/{id}/portal``: how long the sign-in link stays good (seconds)."""

    expires_in: Annotated[
        int,
        Field(ge=PORTAL_EXPIRES_IN[0], le=PORTAL_EXPIRES_IN[1]),
        BeforeValidator(_whole_number),
    ] = PORTAL_DEFAULT_EXPIRES_IN


class PortalLinkOut(BaseModel):
    """A single-use sign-in link to a tenant's portal."""

    url: str
    expires_at: datetime
