"""LISTEN/NOTIFY: applies other instances' changes within a second.

The listener holds its own connection. Every registration change is NOTIFYed in the
transaction that makes it; wake-ups (manual retry, replay, enable) and cancels travel the same
channel. When the connection drops it reconnects with backoff and reloads everything, since
notifications sent meanwhile are lost; a periodic full reload is the last fallback.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import orjson
import structlog

from dispatcher import metrics
from dispatcher.db import DB_UNAVAILABLE
from dispatcher.engine import Engine
from dispatcher.registry import Registry
from dispatcher.scheduler import Scheduler
from dispatcher.store import CHANNEL

log = structlog.get_logger(__name__)
CONNECTION_TROUBLE: tuple[type[BaseException], ...] = (
    *DB_UNAVAILABLE,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


class Listener:
    """Keeps the registry current and wakes the scheduler."""

    def __init__(
        self,
        dsn: str,
        pool: asyncpg.Pool,
        registry: Registry,
        engine: Engine,
        scheduler: Scheduler,
        reload_interval: float,
    ) -> None:
        self.dsn = dsn
        self.pool = pool
        self.registry = registry
        self.engine = engine
        self.scheduler = scheduler
        self.reload_interval = reload_interval
        self.reconnects = 0
        self.connected = asyncio.Event()
        self._conn: asyncpg.Connection | None = None
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start listening, applying and the periodic reload."""
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._listen(), name="listener"),
            loop.create_task(self._apply(), name="listener-apply"),
            loop.create_task(self._periodic_reload(), name="reload"),
        ]

    async def stop(self) -> None:
        """Stop and close the connection."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        try:
            self._queue.put_nowait(orjson.loads(str(payload)))
        except orjson.JSONDecodeError:
            log.warning("bad_notification", payload=str(payload)[:200])

    def _on_lost(self, _conn: Any) -> None:
        self.connected.clear()

    async def _listen(self) -> None:
        backoff = 0.2
        first = True
        while True:
            try:
                conn = await asyncpg.connect(
                    self.dsn, server_settings={"application_name": "dispatcher-listener"}
                )
                self._conn = conn
                conn.add_termination_listener(self._on_lost)
                await conn.add_listener(CHANNEL, self._on_notify)
                if not first:
                    self.reconnects += 1
                    metrics.LISTEN_RECONNECTS.inc()
                    log.info("listener_reconnected", reconnects=self.reconnects)
                # Anything NOTIFYed before LISTEN took effect (while away, or between the
                # start-up load and this first LISTEN) was not heard: reload it all.
                await self._reload_all()
                first = False
                backoff = 0.2
                self.connected.set()
                while not conn.is_closed():
                    await asyncio.sleep(0.5)
                    if not self.connected.is_set():
                        break
            except CONNECTION_TROUBLE as exc:
                log.warning("listener_connection_failed", error=str(exc), retry_in=backoff)
            self.connected.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _apply(self) -> None:
        while True:
            change = await self._queue.get()
            try:
                await self.apply(change)
            except DB_UNAVAILABLE as exc:
                log.warning("notification_apply_failed", error=str(exc))

    async def apply(self, change: dict[str, Any]) -> None:
        """Apply one notification."""
        kind = change.get("kind")
        if kind == "webhook":
            webhook_id = str(change.get("id"))
            await self.registry.refresh_webhook(self.pool, webhook_id)
            self.engine.webhook_changed(webhook_id)
            self.scheduler.wake.set()
        elif kind == "event_type":
            await self.registry.refresh_event_types(self.pool)
        elif kind == "tenant":
            await self.registry.refresh_tenant(self.pool, str(change.get("id")))
        elif kind == "wake":
            self.scheduler.wake.set()
        elif kind == "cancel":
            self.engine.forget(str(change.get("id")))

    async def _reload_all(self) -> None:
        # Runs beside the apply loop; Registry.load keeps changes applied meanwhile.
        await self.registry.load(self.pool)
        for webhook_id in list(self.engine.lanes):
            self.engine.webhook_changed(webhook_id)
        self.scheduler.wake.set()

    async def _periodic_reload(self) -> None:
        while True:
            await asyncio.sleep(self.reload_interval)
            try:
                await self._reload_all()
            except DB_UNAVAILABLE as exc:
                log.warning("reload_failed", error=str(exc))
