"""The peer: a webhook dispatcher the way a Python team would otherwise build it.

A PgQueuer job queue in PostgreSQL. The producer looks up the webhooks subscribed to an
event's type and enqueues one job per (event, webhook) straight into Postgres, one batched
``Queries.enqueue`` call per batch of events. The worker is a PgQueuer ``QueueManager`` whose
entrypoint POSTs the job's body to the webhook's URL with one shared aiohttp session (keep-alive,
no connection cap) and signs it with ``standardwebhooks``, exactly the headers Dispatcher sends.
A 2xx finishes the job (PgQueuer moves it to ``pgqueuer_log``); a 5xx, 408, 429, a timeout or a
connection error asks PgQueuer for a retry with exponential backoff (``RetryRequested``) until
``MAX_RETRIES``; anything else fails the job at once (kept as ``failed``, ``on_failure="hold"``).

There is no HTTP ingestion: the producer writes to the database directly, which is the
cheapest a producer can have it.

Run the worker: ``python -m benchmarks.peers.pgqueuer_dispatcher --dsn postgresql://...``;
it prints ``ready`` once it is about to take jobs, and stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import orjson
import uvloop
from pgqueuer import AsyncpgPoolDriver, Queries, QueueManager, RetryRequested
from pgqueuer.models import Job
from standardwebhooks.webhooks import Webhook

ENTRYPOINT = "deliver_webhook"
WEBHOOK_TABLE = "peer_webhooks"
USER_AGENT = "PgQueuerPeer/1"
MAX_RETRIES = 2
RETRY_BASE_S = 5.0
TIMEOUT_S = 15.0
# Worker tuning: jobs taken per dequeue round trip, and jobs in flight at once.
BATCH_SIZE = 100
MAX_CONCURRENT_TASKS = 2000


@dataclass(frozen=True, slots=True)
class Hook:
    """A subscribed endpoint."""

    id: str
    url: str
    event_types: tuple[str, ...]
    signer: Webhook


class DeliveryFailed(Exception):
    """The endpoint refused the delivery for good (or retries ran out)."""


async def install(conn: asyncpg.Connection) -> None:
    """PgQueuer's schema (``pgq install``) and a table of webhooks, both idempotent."""
    queries = Queries.from_asyncpg_connection(conn)
    if not await queries.has_table("pgqueuer"):
        await queries.install()
    await conn.execute(
        f"CREATE TABLE IF NOT EXISTS {WEBHOOK_TABLE} ("
        " id text PRIMARY KEY, url text NOT NULL, secret text NOT NULL,"
        " event_types text[] NOT NULL)"
    )


async def uninstall(conn: asyncpg.Connection) -> None:
    """Remove the peer's tables."""
    await Queries.from_asyncpg_connection(conn).uninstall()
    await conn.execute(f"DROP TABLE IF EXISTS {WEBHOOK_TABLE}")


async def register(
    conn: asyncpg.Connection, hooks: Sequence[tuple[str, str, str, list[str]]]
) -> None:
    """Add webhooks: (id, url, secret, event types)."""
    await conn.executemany(
        f"INSERT INTO {WEBHOOK_TABLE} (id, url, secret, event_types) VALUES ($1, $2, $3, $4)",
        hooks,
    )


async def load_hooks(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, Hook]:
    rows = await conn.fetch(f"SELECT id, url, secret, event_types FROM {WEBHOOK_TABLE}")
    return {
        r["id"]: Hook(r["id"], r["url"], tuple(r["event_types"]), Webhook(r["secret"]))
        for r in rows
    }


class Producer:
    """Enqueues one job per (event, subscribed webhook)."""

    def __init__(self, pool: asyncpg.Pool, hooks: dict[str, Hook]) -> None:
        self.queries = Queries.from_asyncpg_pool(pool)
        self.hooks = hooks

    async def publish(self, events: Sequence[dict[str, Any]]) -> int:
        """Enqueue the jobs for ``events`` ({"id", "type", "data"}) in one round trip."""
        payloads: list[bytes | None] = []
        now = datetime.now(UTC)
        for event in events:
            body = orjson.dumps(
                {"id": event["id"], "type": event["type"], "timestamp": now, "data": event["data"]}
            )
            head = event["id"].encode()
            for hook in self.hooks.values():
                if event["type"] in hook.event_types:
                    payloads.append(hook.id.encode() + b"\n" + head + b"\n" + body)
        if payloads:
            await self.queries.enqueue([ENTRYPOINT] * len(payloads), payloads, [0] * len(payloads))
        return len(payloads)


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff with full jitter."""
    return timedelta(seconds=random.uniform(0.5, 1.0) * RETRY_BASE_S * 2**attempts)


def make_worker(
    pool: asyncpg.Pool, hooks: dict[str, Hook], session: aiohttp.ClientSession
) -> QueueManager:
    qm = QueueManager(Queries(AsyncpgPoolDriver(pool)))
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)

    @qm.entrypoint(ENTRYPOINT, on_failure="hold")
    async def deliver(job: Job) -> None:
        assert job.payload is not None
        hook_id, msg_id, body = job.payload.split(b"\n", 2)
        hook = hooks[hook_id.decode()]
        event_id = msg_id.decode()
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": event_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": hook.signer.sign(event_id, now, body.decode()),
        }
        try:
            async with session.post(
                hook.url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as resp:
                status = resp.status
                await resp.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            status, error = None, f"{type(exc).__name__}: {exc}"
        else:
            if 200 <= status < 300:
                return
            error = f"HTTP {status}"
        retryable = status is None or status >= 500 or status in (408, 429)
        if retryable and job.attempts < MAX_RETRIES:
            raise RetryRequested(delay=retry_delay(job.attempts), reason=error)
        raise DeliveryFailed(f"{hook.url}: {error}")

    return qm


async def work(dsn: str, batch_size: int, max_tasks: int) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=8)
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=30)
    session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
    try:
        qm = make_worker(pool, await load_hooks(pool), session)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, qm.shutdown.set)
        print("ready", flush=True)
        await qm.run(
            batch_size=batch_size,
            max_concurrent_tasks=max_tasks,
            dequeue_timeout=timedelta(seconds=5),
        )
    finally:
        await session.close()
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers.pgqueuer_dispatcher")
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--max-tasks", type=int, default=MAX_CONCURRENT_TASKS)
    args = parser.parse_args()
    uvloop.run(work(args.dsn, args.batch_size, args.max_tasks))
    sys.exit(0)


if __name__ == "__main__":
    main()
