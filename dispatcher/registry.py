"""The in-memory registry of webhooks and event types that fan-out and sending read.

Loaded whole at start, refreshed per webhook when a change is NOTIFYed (or made by this
instance), and reloaded whole every ``DISPATCHER_RELOAD_INTERVAL_SECONDS`` as a fallback.
Reads are plain dict lookups on the event loop: no locks, no database round trip per event.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from yarl import URL

from dispatcher.db import load_queries
from dispatcher.event_schemas import SchemaError, TypeSchema, compile_schema
from dispatcher.matching import Matcher
from dispatcher.schemas import RESERVED_HEADERS
from dispatcher.store import Executor
from dispatcher.store import event_types as event_type_store
from dispatcher.store import tenant_ids as tenant_id_store

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class WebhookSpec:
    """What the engine needs to know about one webhook."""

    id: str
    url: str
    matcher: Matcher
    enabled: bool
    headers: tuple[tuple[str, str], ...]
    include_payload: bool
    max_retries: int | None
    timeout_seconds: float | None
    rate_limit_per_second: float | None
    max_in_flight: int | None
    # (secret, expires_at or None), newest first.
    secrets: tuple[tuple[str, datetime | None], ...] = ()
    # The URL parsed once, not on every attempt.
    target: URL = field(default_factory=lambda: URL())
    # Set while its attempts are failing (dispatcher.webhook.failing was published).
    failing_since: datetime | None = None
    # The tenant it belongs to (None: the operator's own); fan-out looks webhooks up by it.
    tenant_id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "target", URL(self.url))

    def signing_secrets(self, now: datetime) -> list[str]:
        """Secrets valid at ``now``: the current one plus any still in their grace period."""
        return [s for s, exp in self.secrets if exp is None or exp > now]


Q = load_queries(Path(__file__).with_suffix(".sql"))


@functools.lru_cache(maxsize=8192)
def _matcher(patterns: tuple[str, ...]) -> Matcher:
    # Shared by every webhook with the same patterns (a Matcher is immutable): with many
    # tenants' webhooks subscribing alike, one compiled set instead of one each.
    return Matcher.compile(patterns)


def _spec(row: asyncpg.Record, tenant_max_in_flight: int | None = None) -> WebhookSpec:
    # A tenant's own max_in_flight may not exceed the operator's per-webhook cap.
    max_in_flight = row["max_in_flight"]
    if max_in_flight is not None and row["tenant_id"] is not None and tenant_max_in_flight:
        max_in_flight = min(max_in_flight, tenant_max_in_flight)
    secrets = []
    for item in row["secret_list"]:
        secret, _, expires = item.partition(" ")
        secrets.append((secret, datetime.fromtimestamp(float(expires), UTC) if expires else None))
    return WebhookSpec(
        id=row["id"],
        url=row["url"],
        matcher=_matcher(tuple(row["event_types"])),
        enabled=row["enabled"],
        # A reserved name stored before it was reserved (svix-*) must not reach the receiver.
        headers=tuple(
            (str(k), str(v))
            for k, v in row["headers"].items()
            if str(k).lower() not in RESERVED_HEADERS
        ),
        include_payload=row["include_payload"],
        max_retries=row["max_retries"],
        timeout_seconds=row["timeout_seconds"],
        rate_limit_per_second=row["rate_limit_per_second"],
        max_in_flight=max_in_flight,
        secrets=tuple(secrets),
        failing_since=row["failing_since"],
        # Interned: a tenant's webhooks (and every index key) share one string.
        tenant_id=sys.intern(row["tenant_id"]) if row["tenant_id"] is not None else None,
    )


def _schemas(rows: list[asyncpg.Record], before: dict[str, TypeSchema]) -> dict[str, TypeSchema]:
    """Compiled validators by type; a schema that did not change keeps its compiled one."""
    found: dict[str, TypeSchema] = {}
    for row in rows:
        schema: Any = row["schema"]
        if schema is None:
            continue
        old = before.get(row["name"])
        if old is not None and old.schema == schema:
            found[row["name"]] = old
            continue
        try:
            found[row["name"]] = TypeSchema(schema, compile_schema(schema))
        except SchemaError as exc:
            # Checked when it was set; one written some other way is not applied.
            log.warning("event_type_schema_unusable", event_type=row["name"], error=str(exc))
    return found


# Per tenant, at most this many event types' fan-out answers are kept (type names are the
# producers' to choose; memory must not grow without bound).
CACHED_TYPES = 10_000
# Tenants whose answers are kept at once (beyond it the cache starts again).
CACHED_TENANTS = 200_000


@dataclass
class Registry:
    """Webhooks by id and by tenant, tenant ids, the catalogue's disabled event types and its
    compiled schemas."""

    webhooks: dict[str, WebhookSpec] = field(default_factory=dict)
    disabled_types: frozenset[str] = frozenset()
    # Types whose events' data is validated at ingestion.
    schemas: dict[str, TypeSchema] = field(default_factory=dict)
    # Every tenant's id: ingestion checks an event's tenant_id here (the database only when
    # an id is not in it, for a tenant created a moment ago on another instance).
    tenants: set[str] = field(default_factory=set)
    # Webhooks by tenant (None: the operator's), so fan-out never looks at other tenants'.
    _by_tenant: dict[str | None, dict[str, WebhookSpec]] = field(default_factory=dict)
    # Fan-out answers per tenant and event type; a tenant's are dropped when its webhooks
    # change, all of them when the catalogue does.
    _by_type: dict[str | None, dict[str, list[WebhookSpec]]] = field(default_factory=dict)
    # Webhook ids refreshed while a full load is reading (one set per load in progress).
    _touched: list[set[str]] = field(default_factory=list)
    _types_version: int = 0
    # DISPATCHER_MAX_IN_FLIGHT_PER_WEBHOOK: tenants' webhooks' max_in_flight is clamped to it
    # (None: not clamped; the operator's own webhooks keep their override).
    tenant_max_in_flight: int | None = None

    async def load(self, conn: Executor) -> None:
        """Replace everything with the database's current state.

        Single changes applied while the snapshot is read are newer than it and are kept.
        """
        touched: set[str] = set()
        self._touched.append(touched)
        types_before = self._types_version
        try:
            rows = await conn.fetch(Q["all_webhooks"])
            types = await event_type_store.registry_rows(conn)
            tenants = await tenant_id_store.all_ids(conn)
        finally:
            self._touched = [t for t in self._touched if t is not touched]
        fresh = {r["id"]: _spec(r, self.tenant_max_in_flight) for r in rows}
        for webhook_id in touched:
            if webhook_id in self.webhooks:
                fresh[webhook_id] = self.webhooks[webhook_id]
            else:
                fresh.pop(webhook_id, None)
        self.webhooks = fresh
        by_tenant: dict[str | None, dict[str, WebhookSpec]] = {}
        for spec in fresh.values():
            by_tenant.setdefault(spec.tenant_id, {})[spec.id] = spec
        self._by_tenant = by_tenant
        # Ids are interned: 100,000 tenants' ids are kept once, shared with their webhooks.
        self.tenants = {sys.intern(t) for t in tenants}
        if self._types_version == types_before:
            self._set_types(types)
        self._by_type.clear()

    async def refresh_webhook(self, conn: Executor, webhook_id: str) -> WebhookSpec | None:
        """Re-read one webhook (None and forgotten if it no longer exists)."""
        row = await conn.fetchrow(Q["one_webhook"], webhook_id)
        for touched in self._touched:
            touched.add(webhook_id)
        old = self.webhooks.pop(webhook_id, None)
        if old is not None:
            self._forget(old)
        if row is None:
            return None
        spec = _spec(row, self.tenant_max_in_flight)
        self.webhooks[webhook_id] = spec
        self._by_tenant.setdefault(spec.tenant_id, {})[webhook_id] = spec
        self._by_type.pop(spec.tenant_id, None)
        return spec

    def _forget(self, spec: WebhookSpec) -> None:
        own = self._by_tenant.get(spec.tenant_id)
        if own is not None:
            own.pop(spec.id, None)
            if not own:
                del self._by_tenant[spec.tenant_id]
        self._by_type.pop(spec.tenant_id, None)

    async def refresh_tenant(self, conn: Executor, tenant_id: str) -> None:
        """Re-read whether one tenant exists (it was created or deleted; its webhooks are
        NOTIFYed on their own)."""
        if await tenant_id_store.exists(conn, tenant_id):
            self.tenants.add(sys.intern(tenant_id))
        else:
            self.tenants.discard(tenant_id)

    async def tenant_exists(self, conn: Executor, tenant_id: str) -> bool:
        """Is there a tenant with this id? From memory; the database only for an unknown id."""
        if tenant_id in self.tenants:
            return True
        if await tenant_id_store.exists(conn, tenant_id):
            self.tenants.add(sys.intern(tenant_id))
            return True
        return False

    async def refresh_event_types(self, conn: Executor) -> None:
        """Re-read the catalogue's disabled types and schemas."""
        self._set_types(await event_type_store.registry_rows(conn))
        self._types_version += 1
        self._by_type.clear()

    def _set_types(self, rows: list[asyncpg.Record]) -> None:
        self.disabled_types = frozenset(r["name"] for r in rows if not r["enabled"])
        self.schemas = _schemas(rows, self.schemas)

    def targets(self, event_type: str, tenant_id: str | None = None) -> list[WebhookSpec]:
        """Enabled webhooks of ``tenant_id`` (None: the operator's) that receive events of
        this type (none if the type is disabled). Costs nothing per other tenant's webhook."""
        cached = self._by_type.get(tenant_id)
        if cached is None:
            if len(self._by_type) >= CACHED_TENANTS:
                self._by_type.clear()
            cached = self._by_type[tenant_id] = {}
        found = cached.get(event_type)
        if found is None:
            own = self._by_tenant.get(tenant_id)
            if event_type in self.disabled_types or not own:
                found = []
            else:
                found = [w for w in own.values() if w.enabled and w.matcher.matches(event_type)]
            if len(cached) >= CACHED_TYPES:  # unbounded type names must not grow memory
                cached.clear()
            cached[event_type] = found
        return found
