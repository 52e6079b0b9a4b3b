"""``dispatcher export`` / ``dispatcher import``: every registration as one JSON document.

The document holds all tenants, webhooks (with their current signing secret) and the
event-type catalogue::

    {"format": "dispatcher-export", "version": 1, "exported_at": "...",
     "tenants": [{"id", "name", "metadata", "created_at"}],
     "event_types": [{"name", "description", "enabled", "schema", "examples", "created_at"}],
     "webhooks": [{"id", "name", "url", "event_types", "enabled", "disabled_reason", ...,
                   "secret", "created_at"}]}

Importing is idempotent: tenants and webhooks are matched by ``id`` and event types by
``name``; a record that matches what is stored changes nothing (``updated_at`` included), a
different one updates it, a new one is inserted. Nothing is deleted. Every record is validated
with the API's own schemas before anything is written, and the whole import is one
transaction, so a bad file imports nothing. Other instances learn of the changes through
NOTIFY when it commits.

Deliveries, events and attempts are not part of the document: it is a backup of the
configuration, not of the log. Neither are tenant tokens and portal links (only their hashes
are stored; new ones are made after a restore).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

import asyncpg
import orjson
from pydantic import Field, ValidationError, model_validator

from dispatcher import __version__, db, migrate, nesting
from dispatcher.event_schemas import catalogue_errors
from dispatcher.problems import validation_problem
from dispatcher.schemas import EventTypeCreate, TenantCreate, Timestamp, WebhookCreate
from dispatcher.store import Conn, notify
from dispatcher.store import event_types as event_type_store
from dispatcher.store import tenants as tenant_store
from dispatcher.store import webhooks as webhook_store

FORMAT = "dispatcher-export"
VERSION = 1
TOP_LEVEL = frozenset(
    {"format", "version", "exported_at", "dispatcher", "tenants", "webhooks", "event_types"}
)

WebhookId = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.:~-]+$")]


class WebhookRecord(WebhookCreate):
    """One webhook of an export: the create body plus its identity and state."""

    id: WebhookId
    disabled_reason: Literal["manual", "auto", "gone"] | None = None
    disabled_at: Timestamp | None = None
    created_at: Timestamp | None = None
    # API answers carry it; accepted so they can be imported as they are, and ignored.
    updated_at: Timestamp | None = None

    @model_validator(mode="after")
    def _state(self) -> WebhookRecord:
        if self.enabled and self.disabled_reason is not None:
            raise ValueError("disabled_reason must be null when enabled is true")
        return self


class EventTypeRecord(EventTypeCreate):
    """One event type of an export."""

    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None


class TenantRecord(TenantCreate):
    """One tenant of an export."""

    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None


class TransferError(Exception):
    """The database or the document is not usable; ``problems`` lists what is wrong."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


@dataclass
class Counts:
    """What an import did to one kind of record."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, outcome: str) -> None:
        """Count one ``created``/``updated``/``unchanged`` outcome."""
        setattr(self, outcome, getattr(self, outcome) + 1)

    def __str__(self) -> str:
        return f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"


@dataclass
class ImportResult:
    """Outcome of an import."""

    webhooks: Counts = field(default_factory=Counts)
    event_types: Counts = field(default_factory=Counts)
    tenants: Counts = field(default_factory=Counts)


@dataclass
class Document:
    """A validated import document."""

    webhooks: list[WebhookRecord]
    event_types: list[EventTypeRecord]
    # Leave a stored type's enabled flag as it is (an OpenAPI document has none to give).
    keep_enabled: bool = False
    tenants: list[TenantRecord] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.tenants) + len(self.webhooks) + len(self.event_types)


# --------------------------------------------------------------------------------------------
# Export


async def _connect(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn, server_settings={"application_name": "dispatcher-cli"})
    await db.init_connection(conn)
    try:
        version = await migrate.current_version(conn)
    except BaseException:
        await conn.close()
        raise
    if version < migrate.latest_version():
        await conn.close()
        raise TransferError(
            f"the database schema is at version {version}, this Dispatcher needs "
            f"{migrate.latest_version()}: run `dispatcher migrate` first"
        )
    return conn


async def export_document(conn: Conn) -> dict[str, Any]:
    """Every registration as one JSON-ready document (a consistent snapshot)."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        tenants = await tenant_store.export_all(conn)
        hooks = await webhook_store.export_all(conn)
        types = await event_type_store.export_all(conn)
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": datetime.now(UTC),
        "dispatcher": __version__,
        "tenants": tenants,
        "event_types": types,
        "webhooks": hooks,
    }


def dumps(document: Mapping[str, Any]) -> bytes:
    """The document as indented JSON with a final newline."""
    return orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"


async def export_dsn(dsn: str) -> dict[str, Any]:
    """Connect, export, disconnect."""
    conn = await _connect(dsn)
    try:
        return await export_document(conn)
    finally:
        await conn.close()


# --------------------------------------------------------------------------------------------
# Import


def parse(raw: bytes | str) -> Document:
    """Parse and validate a document; :class:`TransferError` lists every problem found."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise TransferError(f"the file is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise TransferError("the file must hold a JSON object with 'webhooks' and 'event_types'")
    limit = nesting.MAX_BODY_DEPTH
    if nesting.text_deeper_than(raw, limit) and nesting.deeper_than(data, limit):
        # Each record's values are capped at MAX_JSON_DEPTH (and named) by validation below.
        raise TransferError(
            f"the file nests more than {limit} levels deep; a value such as a webhook's "
            f"metadata may nest at most {nesting.MAX_JSON_DEPTH}"
        )
    problems: list[str] = []
    unknown = sorted(set(data) - TOP_LEVEL)
    if unknown:
        problems.append(f"unknown top-level key(s): {', '.join(unknown)}")
    if data.get("format", FORMAT) != FORMAT:
        problems.append(f"format: must be {FORMAT!r}")
    if data.get("version", VERSION) != VERSION:
        problems.append(f"version: {data.get('version')!r} is not supported (expected {VERSION})")
    tenants = _records(data, "tenants", TenantRecord, "id", problems)
    webhooks = _records(data, "webhooks", WebhookRecord, "id", problems)
    event_types = _records(data, "event_types", EventTypeRecord, "name", problems)
    problems.extend(schema_problems(event_types))
    if problems:
        raise TransferError(
            f"the file has {len(problems)} problem(s); nothing was imported", problems
        )
    return Document(webhooks, event_types, tenants=tenants)


def schema_problems(event_types: list[EventTypeRecord]) -> list[str]:
    """Each type's schema must be valid and its examples match it, as the API checks."""
    found = []
    for i, et in enumerate(event_types):
        for err in catalogue_errors(et.schema_, et.examples, ("event_types", i)):
            found.append(f"{err['field']}: {err['message']}")
    return found


R = TypeVar("R", WebhookRecord, EventTypeRecord, TenantRecord)


def _records(
    data: dict[str, Any], key: str, model: type[R], ident: str, problems: list[str]
) -> list[R]:
    items = data.get(key, [])
    if not isinstance(items, list):
        problems.append(f"{key}: must be a list")
        return []
    records: list[R] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        try:
            record = model.model_validate(item)
        except ValidationError as exc:
            for err in validation_problem(exc, prefix=(key, i)).errors or []:
                problems.append(f"{err['field']}: {err['message']}")
            continue
        name = getattr(record, ident)
        if name in seen:
            problems.append(f"{key}[{i}].{ident}: {name!r} repeats {key}[{seen[name]}]")
            continue
        seen[name] = i
        records.append(record)
    return records


async def import_document(
    conn: Conn,
    document: Document,
    *,
    grace_seconds: float,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Write a validated document in one transaction; ``progress(n)`` after each record."""
    result = ImportResult()
    step = progress or (lambda _n: None)
    async with conn.transaction():
        # Tenants first: webhooks refer to them.
        for tenant in document.tenants:
            outcome = await tenant_store.import_one(
                conn, tenant.id, tenant.name, tenant.metadata, tenant.created_at
            )
            result.tenants.add(outcome)
            if outcome == "created":
                await notify(conn, "tenant", id=tenant.id)
            step(1)
        await _check_tenants(conn, document)
        for et in document.event_types:
            outcome = await event_type_store.import_one(
                conn,
                et.name,
                et.description,
                None if document.keep_enabled else et.enabled,
                et.created_at,
                et.schema_,
                et.examples,
            )
            result.event_types.add(outcome)
            step(1)
        if result.event_types.created or result.event_types.updated:
            await notify(conn, "event_type", name="*")
        for wh in document.webhooks:
            values = wh.model_dump(include=set(webhook_store.EXPORTED))
            outcome = await webhook_store.import_one(conn, values, wh.secret, grace_seconds)
            result.webhooks.add(outcome)
            step(1)
    return result


async def _check_tenants(conn: Conn, document: Document) -> None:
    """Every tenant a webhook names is in the document or the database (else nothing is
    imported: the transaction is rolled back)."""
    named = {str(wh.tenant_id) for wh in document.webhooks if getattr(wh, "tenant_id", None)}
    missing = []
    for tenant_id in sorted(named - {t.id for t in document.tenants}):
        if await tenant_store.get(conn, tenant_id) is None:
            missing.append(tenant_id)
    if missing:
        raise TransferError(
            "webhooks name tenants that neither the file nor the database has; nothing was "
            "imported",
            [f"tenant {t!r} does not exist" for t in missing],
        )


async def import_dsn(
    dsn: str,
    document: Document,
    *,
    grace_seconds: float,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Connect, import, disconnect."""
    conn = await _connect(dsn)
    try:
        return await import_document(conn, document, grace_seconds=grace_seconds, progress=progress)
    finally:
        await conn.close()
