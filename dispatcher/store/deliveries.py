"""Deliveries (the queue and the log) and their attempts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import asyncpg

from dispatcher.db import load_queries
from dispatcher.jobs import Job, Payload
from dispatcher.store import Conn, Executor

Q = load_queries(Path(__file__).with_suffix(".sql"))

# Columns the API shows for a delivery.
API_FIELDS = (
    "id",
    "event_id",
    "event_type",
    "webhook_id",
    "tenant_id",
    "status",
    "attempt_count",
    "created_at",
    "last_attempt_at",
    "next_attempt_at",
    "last_status_code",
    "last_error",
)
UNFINISHED = ("created", "retrying")


def to_api(row: asyncpg.Record) -> dict[str, Any]:
    """A delivery row as the API shows it."""
    out = {k: row[k] for k in API_FIELDS}
    if out["status"] not in UNFINISHED:
        out["next_attempt_at"] = None
    return out


async def get(
    conn: Executor,
    delivery_id: str,
    *,
    with_attempts: bool = False,
    scope: str | None = None,
) -> dict[str, Any] | None:
    """One delivery within ``scope`` (a tenant's id; None: any), optionally with
    ``attempts``."""
    row = await conn.fetchrow(Q["get_delivery"], delivery_id, scope)
    if row is None:
        return None
    out = to_api(row)
    if with_attempts:
        attempts = await conn.fetch(Q["delivery_attempts"], delivery_id, scope)
        out["attempts"] = [dict(a) for a in attempts]
    return out


async def list_page(
    conn: Executor,
    *,
    after: str | None,
    limit: int,
    webhook_id: str | None = None,
    event_id: str | None = None,
    status: str | None = None,
    scope: str | None = None,
    tenant_id: str | None = None,
) -> list[dict[str, Any]]:
    """Newest first, filtered, within ``scope``."""
    rows = await conn.fetch(
        Q["list_deliveries"], after, webhook_id, event_id, status, limit, scope, tenant_id
    )
    return [to_api(r) for r in rows]


async def retry(
    conn: Executor, delivery_id: str, *, scope: str | None = None
) -> asyncpg.Record | None:
    """Schedule an immediate attempt; None when missing (in scope) or already successful."""
    return await conn.fetchrow(Q["retry_delivery"], delivery_id, scope)


async def cancel(
    conn: Executor, delivery_id: str, *, scope: str | None = None
) -> asyncpg.Record | None:
    """Cancel a waiting delivery; None when missing (in scope) or finished."""
    return await conn.fetchrow(Q["cancel_delivery"], delivery_id, scope)


async def replay(
    conn: Executor, webhook_id: str, status: str, since: datetime, *, scope: str | None = None
) -> int:
    """Re-queue a webhook's deliveries with ``status`` created since ``since``."""
    result = await conn.execute(Q["replay_webhook"], webhook_id, status, since, scope)
    return int(result.split()[-1])


async def hold(conn: Conn, webhook_id: str) -> None:
    """A webhook was disabled: hold its waiting deliveries."""
    await conn.execute(Q["hold_webhook"], webhook_id)


async def resume(conn: Conn, webhook_id: str) -> None:
    """A webhook was enabled: its held deliveries come due."""
    await conn.execute(Q["resume_webhook"], webhook_id)


@dataclass(frozen=True, slots=True)
class Filter:
    """The console's delivery filters; None means any. ``from_id``/``to_id`` bound the
    creation time as ids (see :func:`dispatcher.ids.time_bound`)."""

    webhook_id: str | None = None
    event_id: str | None = None
    status: str | None = None
    event_type: str | None = None
    from_id: str | None = None
    to_id: str | None = None
    tenant_id: str | None = None
    # Only the operator's own deliveries (tenant_id NULL).
    operator_only: bool = False

    def args(self) -> tuple[str | bool | None, ...]:
        """The statement parameters $2-$9 of the console's queries."""
        return (
            self.webhook_id,
            self.event_id,
            self.status,
            self.event_type,
            self.from_id,
            self.to_id,
            self.tenant_id,
            self.operator_only,
        )


async def filtered_page(
    conn: Executor, where: Filter, *, after: str | None, limit: int
) -> list[dict[str, Any]]:
    """Newest first, filtered (the console's log)."""
    rows = await conn.fetch(Q["console_deliveries"], after, *where.args(), limit)
    return [to_api(r) for r in rows]


async def bulk_ids(
    conn: Executor, where: Filter, action: str, *, after: str | None, limit: int
) -> list[str]:
    """Ids of the filtered deliveries that ``action`` ('retry' or 'cancel') applies to."""
    rows = await conn.fetch(Q["console_bulk_page"], after, *where.args(), action, limit)
    return [r["id"] for r in rows]


async def retry_many(conn: Executor, delivery_ids: list[str]) -> int:
    """Manual retry of many deliveries; returns how many changed."""
    return int((await conn.execute(Q["retry_many"], delivery_ids)).split()[-1])


async def cancel_many(conn: Executor, delivery_ids: list[str]) -> list[str]:
    """Cancel many waiting deliveries; returns the ids that changed."""
    return [r["id"] for r in await conn.fetch(Q["cancel_many"], delivery_ids)]


async def count_replay(
    conn: Executor, webhook_id: str, status: str, since: datetime, *, scope: str | None = None
) -> int:
    """How many deliveries :func:`replay` would re-queue now."""
    return int(await conn.fetchval(Q["count_replay"], webhook_id, status, since, scope) or 0)


@dataclass(frozen=True, slots=True)
class Bucket:
    """A webhook's attempts in one time bucket (``start`` None: the whole window)."""

    start: datetime | None
    attempts: int
    succeeded: int
    p50_ms: float
    p99_ms: float


async def attempt_buckets(
    conn: Executor, webhook_id: str, *, window_seconds: float, bucket_seconds: float, cap: int
) -> list[Bucket]:
    """Attempts, successes and latency percentiles per bucket over the window (whole first)."""
    rows = await conn.fetch(
        Q["webhook_attempt_buckets"], webhook_id, window_seconds, bucket_seconds, cap
    )
    return [
        Bucket(r["bucket"], r["attempts"], r["succeeded"], r["p50"] or 0.0, r["p99"] or 0.0)
        for r in rows
    ]


class OutcomeRow(Protocol):
    """What the outcome write reads of one attempt's outcome (dispatcher.outcomes.Outcome)."""

    @property
    def delivery_id(self) -> str: ...
    @property
    def webhook_id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def number(self) -> int: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def duration_ms(self) -> float: ...
    @property
    def status_code(self) -> int | None: ...
    @property
    def response_body(self) -> str | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def url(self) -> str: ...
    @property
    def next_attempt_at(self) -> datetime | None: ...
    @property
    def age_from(self) -> datetime | None: ...
    @property
    def failed(self) -> bool: ...


async def record_outcomes(conn: Executor, *, owner: str, outcomes: Sequence[OutcomeRow]) -> None:
    """Log the attempts and apply each delivery's new state, in one statement.

    Only deliveries still leased to ``owner`` and queued at the outcome's ``age_from`` change
    (see ``record_outcomes`` in deliveries.sql); every attempt is logged either way.
    """
    await conn.execute(
        Q["record_outcomes"],
        owner,
        [o.delivery_id for o in outcomes],
        [o.status for o in outcomes],
        [o.number for o in outcomes],
        [o.started_at for o in outcomes],
        [o.next_attempt_at for o in outcomes],
        [o.status_code for o in outcomes],
        [o.error for o in outcomes],
        [o.age_from for o in outcomes],
        [o.webhook_id for o in outcomes],
        [o.duration_ms for o in outcomes],
        [o.response_body for o in outcomes],
        [o.url for o in outcomes],
        [o.failed for o in outcomes],
    )


# -- leases: the claim, the heartbeat, the reaper ------------------------------------------


async def claim_due(
    conn: Executor, *, owner: str, limit: int, skip_webhooks: list[str], lease_seconds: float
) -> list[Job]:
    """Lease up to ``limit`` due deliveries to ``owner`` (none of ``skip_webhooks``) as jobs."""
    rows = await conn.fetch(Q["claim_due"], owner, limit, skip_webhooks, lease_seconds)
    return [job_from_row(r) for r in rows]


def job_from_row(row: asyncpg.Record) -> Job:
    """A claimed delivery row (with its event) as a :class:`~dispatcher.jobs.Job`."""
    payload = Payload(row["event_id"], row["event_type"], row["occurred_at"], row["data"].encode())
    return Job(
        delivery_id=row["id"],
        webhook_id=row["webhook_id"],
        payload=payload,
        attempt_count=row["attempt_count"],
        attempts_base=row["attempts_base"],
        age_from=row["age_from"],
    )


async def seconds_to_next_due(conn: Executor) -> float | None:
    """Seconds until the earliest due time of unfinished work (None when there is none)."""
    seconds = await conn.fetchval(Q["next_due"])
    return None if seconds is None else float(seconds)


async def park_held(conn: Executor) -> None:
    """Deliveries of disabled webhooks stop being due (they wait, held)."""
    await conn.execute(Q["park_held"])


async def cancel_orphans(conn: Executor) -> None:
    """Cancel deliveries of webhooks that no longer exist."""
    await conn.execute(Q["cancel_orphans"])


async def heal_held(conn: Executor) -> None:
    """Re-arm held deliveries of webhooks that are enabled."""
    await conn.execute(Q["heal_held"])


async def reap_leases(conn: Executor) -> int:
    """Make due again the work of instances whose heartbeat stopped; how many deliveries."""
    return int(await conn.fetchval(Q["reap_leases"]))


async def heartbeat(conn: Executor, *, owner: str, lease_seconds: float) -> None:
    """``owner`` is alive: its leases hold for another ``lease_seconds``."""
    await conn.execute(Q["heartbeat"], owner, lease_seconds)


async def instance_stopped(conn: Executor, *, owner: str) -> None:
    """``owner`` stopped cleanly (after giving its leases back)."""
    await conn.execute(Q["instance_stopped"], owner)


async def release_leases(
    conn: Executor, *, delivery_ids: list[str], owner: str, expired_only: bool
) -> None:
    """Give leases of ``owner`` back: due again at once (only expired ones, if so asked)."""
    await conn.execute(Q["release_leases"], delivery_ids, owner, expired_only)


async def leased_to(conn: Executor, *, owner: str) -> list[str]:
    """Unfinished deliveries leased to ``owner`` whose own lease ran out (stray candidates)."""
    return [r["id"] for r in await conn.fetch(Q["leased_to"], owner)]
