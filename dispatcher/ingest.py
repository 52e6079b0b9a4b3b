"""Ingestion with group commit.

Concurrent requests each submit their events and wait; one writer takes everything waiting,
commits it in a single transaction (events with one multi-row insert, their deliveries with
another), then answers every waiter. Throughput grows with concurrency instead of being bound
by one fsync per request. A 202 is only sent after that commit. New deliveries are inserted
already leased to this instance and handed to the engine in-process.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import structlog

from dispatcher import fanout, ids, metrics
from dispatcher.db import CONFLICT, DB_UNAVAILABLE
from dispatcher.engine import Engine
from dispatcher.jobs import Job, Payload
from dispatcher.readiness import NotRunning
from dispatcher.registry import Registry
from dispatcher.store import events as event_store
from dispatcher.store.events import DeliveryRow, EventRow

log = structlog.get_logger(__name__)

MAX_GROUP = 5000  # events per transaction
T = TypeVar("T")


# A group commit that loses a deadlock (or serialization conflict) is tried again at once, this
# many times in all, before its producers hear of it (as a 503: nothing was stored).
CONFLICT_TRIES = 3


async def _conflict_retried(call: Callable[..., Awaitable[T]], *args: Any) -> T:
    for tries_left in range(CONFLICT_TRIES - 1, -1, -1):
        try:
            return await call(*args)
        except CONFLICT as exc:
            if not tries_left:
                raise
            log.warning("ingest_conflict_retried", error=str(exc))
    raise AssertionError("unreachable")


def _fail(group: list[_Waiter], exc: BaseException) -> None:
    for w in group:
        if not w.future.done():
            w.future.set_exception(exc)


@dataclass(slots=True)
class NewEvent:
    """An event to store: already validated, ``data`` already serialized."""

    id: str
    type: str
    data_json: bytes
    occurred_at: datetime
    routing: fanout.Routing = fanout.DEFAULT
    # The tenant it is for (None: the operator's own); checked to exist before it gets here.
    tenant_id: str | None = None


@dataclass(frozen=True, slots=True)
class Accepted:
    """The answer for one event."""

    id: str
    type: str
    deliveries: int
    duplicate: bool

    def as_dict(self) -> dict[str, object]:
        """The JSON answer."""
        return {
            "id": self.id,
            "type": self.type,
            "deliveries": self.deliveries,
            "duplicate": self.duplicate,
        }


@dataclass(slots=True)
class _Waiter:
    events: list[NewEvent]
    future: asyncio.Future[list[Accepted]]


class Ingestor:
    """Coalesces concurrent submissions into group commits."""

    def __init__(self, pool: asyncpg.Pool, registry: Registry, engine: Engine | None) -> None:
        self.pool = pool
        self.registry = registry
        self.engine = engine
        self._waiting: list[_Waiter] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        """Start the writer."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="ingest-writer")

    async def stop(self) -> None:
        """Commit what is waiting, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task

    @property
    def running(self) -> bool:
        """Whether submissions are being committed."""
        return self._task is not None and not self._task.done() and not self._closing

    async def submit(self, events: list[NewEvent]) -> list[Accepted]:
        """Store events (and their deliveries); returns once committed, in order.

        Raises :class:`NotRunning` when the writer is not running (start-up, shutdown).
        """
        if not self.running:
            raise NotRunning("ingestion is not running")
        future: asyncio.Future[list[Accepted]] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiter(events, future))
        self._wake.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                group: list[_Waiter] = []
                count = 0
                while self._waiting and (
                    not group or count + len(self._waiting[0].events) <= MAX_GROUP
                ):
                    waiter = self._waiting.pop(0)
                    group.append(waiter)
                    count += len(waiter.events)
                try:
                    await self._commit_group(group)
                except asyncpg.PostgresError as exc:
                    if isinstance(exc, DB_UNAVAILABLE) or len(group) == 1:
                        _fail(group, exc)
                        continue
                    # One submission the database refuses must not fail its neighbours:
                    # commit each on its own, so only the offender hears of the error.
                    for w in group:
                        try:
                            await self._commit_group([w])
                        except Exception as single:
                            _fail([w], single)
                except Exception as exc:  # every waiter must hear about it, whatever it was
                    _fail(group, exc)
            if self._closing:
                return

    async def _commit_group(self, group: list[_Waiter]) -> None:
        answers, jobs = await self._commit([e for w in group for e in w.events])
        pos = 0
        for w in group:
            n = len(w.events)
            if not w.future.done():
                w.future.set_result(answers[pos : pos + n])
            pos += n
        if jobs and self.engine is not None:
            self.engine.submit(jobs)

    async def _commit(self, events: list[NewEvent]) -> tuple[list[Accepted], list[Job]]:
        # The first occurrence of an id in the group wins; later ones are duplicates.
        first: dict[str, NewEvent] = {}
        for e in events:
            first.setdefault(e.id, e)
        unique = list(first.values())
        # Events go in in id order, so instances inserting the same ids (a producer retrying
        # through another instance) wait on each other in the same order instead of deadlocking.
        by_id = sorted(unique, key=lambda e: e.id)
        engine = self.engine
        owner = engine.owner if engine is not None else ""
        now = datetime.now(UTC)
        # Fan out before the insert, so that events and deliveries go in one statement; the
        # rows of events that turn out to be duplicates are not inserted (nor their jobs run).
        rows: list[DeliveryRow] = []
        jobs: list[Job] = []
        fanned: dict[str, int] = {}
        for e in unique:
            hooks = fanout.targets(self.registry, e.type, e.routing, e.tenant_id)
            fanned[e.id] = len(hooks)
            if not hooks:
                continue
            payload = Payload(e.id, e.type, e.occurred_at, e.data_json)
            for spec in hooks:
                did = ids.delivery_id()
                leased = engine is not None and engine.accepts(spec.id)
                # The webhook's tenant: an operational event about a tenant's webhook also
                # reaches the operator's, whose delivery is the operator's, not the tenant's.
                rows.append(DeliveryRow(did, e.id, spec.id, e.type, leased, spec.tenant_id))
                if leased:
                    jobs.append(Job(did, spec.id, payload, 0, 0, now))
        new_events = [
            EventRow(e.id, e.type, e.data_json.decode(), e.occurred_at, e.routing.only, e.tenant_id)
            for e in by_id
        ]
        async with self.pool.acquire() as conn:
            inserted = await _conflict_retried(
                functools.partial(
                    event_store.insert_events,
                    conn,
                    events=new_events,
                    deliveries=rows,
                    owner=owner,
                    lease_seconds=engine.settings.lease_seconds if engine is not None else 30.0,
                    created_at=now,  # the jobs' age (and outcome fence) starts here
                )
            )
            duplicates = [e.id for e in unique if e.id not in inserted]
            counts = {i: n for i, n in fanned.items() if i in inserted}
            # A duplicate is answered with what is stored, not with what was sent again.
            stored_types = {e.id: e.type for e in unique}
            if duplicates:
                jobs = [j for j in jobs if j.payload.id in inserted]
                for stored in await event_store.stored(conn, duplicates):
                    counts[stored.event_id] = stored.deliveries
                    stored_types[stored.event_id] = stored.type
        created = sum(counts[i] for i in inserted)
        metrics.INGEST_BATCH_SIZE.observe(len(events))
        metrics.EVENTS_INGESTED.labels("accepted").inc(len(inserted))
        if len(events) > len(inserted):
            metrics.EVENTS_INGESTED.labels("duplicate").inc(len(events) - len(inserted))
        if created:
            metrics.DELIVERIES_CREATED.labels("").inc(created)
        seen: set[str] = set()
        answers = []
        for e in events:
            duplicate = e.id not in inserted or e.id in seen
            seen.add(e.id)
            shown = stored_types[e.id] if duplicate else e.type
            answers.append(Accepted(e.id, shown, counts.get(e.id, 0), duplicate))
        return answers, jobs
