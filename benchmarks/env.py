"""The processes under test: PostgreSQL, receiver workers, ``dispatcher serve``; and a client.

Everything runs on this machine, on loopback. PostgreSQL is embedded (started in a temporary
directory) unless ``DISPATCHER_BENCH_DATABASE_URL`` points at a server, in which case a
``dispatcher_bench`` database is (re)created there. One Dispatcher process serves the whole
run; scenarios call :meth:`Env.reset` to start from empty tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import orjson

from benchmarks.measure import ProcessCpu, Progress
from dispatcher import migrate
from dispatcher.embedded import EmbeddedPostgres

ADMIN = "bench-admin-token-0123456789"
ROOT = Path(__file__).resolve().parent
HEADERS = {"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"}

# The Dispatcher's settings for the whole run. Retries are few so failing webhooks finish
# within a scenario; auto-disable is off so the failure mix keeps failing for its whole run.
# Retention is far off: growth-history prunes its month of history itself, while it measures.
DISPATCHER_SETTINGS = {
    "DISPATCHER_RETENTION_DAYS": "3650",
    "DISPATCHER_MAX_RETRIES": "2",
    "DISPATCHER_FAILURES_BEFORE_DISABLE": "-1",
    "DISPATCHER_ALLOW_PRIVATE_TARGETS": "true",
    "DISPATCHER_LOG_FORMAT": "json",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_fd_limit() -> None:
    """10,000 connections in flight need more than the usual 1,024 descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


@dataclass
class Receiver:
    """Receiver worker processes sharing one hook port, each with its own control port."""

    session: aiohttp.ClientSession
    port: int
    control_ports: list[int]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    @classmethod
    def spawn(cls, session: aiohttp.ClientSession, workers: int) -> Receiver:
        port = free_port()
        rec = cls(session, port, [free_port() for _ in range(workers)])
        for cport in rec.control_ports:
            rec.procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.receiver",
                        "--port",
                        str(port),
                        "--control-port",
                        str(cport),
                        "--reuse-port",
                    ],
                    cwd=ROOT.parent,
                )
            )
        return rec

    async def _get(self, cport: int, path: str) -> Any:
        async with self.session.get(f"http://127.0.0.1:{cport}{path}") as resp:
            return orjson.loads(await resp.read())

    async def counts(self) -> dict[str, int]:
        """Requests received and answered, and the sum of the workers' peak concurrency."""
        parts = await asyncio.gather(*(self._get(c, "/count") for c in self.control_ports))
        return {k: sum(p[k] for p in parts) for k in ("count", "answered", "peak_in_flight")}

    async def stats(self) -> dict[str, Any]:
        """Every request recorded by every worker: arrivals, latencies (s) and hook names."""
        parts = await asyncio.gather(*(self._get(c, "/stats") for c in self.control_ports))
        merged: dict[str, Any] = {"arrivals": [], "latencies": [], "hooks": []}
        for p in parts:
            for k in merged:
                merged[k].extend(p[k])
        for k in ("count", "answered", "peak_in_flight"):
            merged[k] = sum(p[k] for p in parts)
        return merged

    async def reset(self) -> None:
        for cport in self.control_ports:
            async with self.session.post(f"http://127.0.0.1:{cport}/reset") as resp:
                await resp.read()


@dataclass
class Env:
    """The processes under test, a client session and a database connection."""

    dsn: str
    base: str
    session: aiohttp.ClientSession
    receiver: Receiver
    dispatcher: subprocess.Popen[bytes]
    db: asyncpg.Connection
    workdir: Path
    dispatcher_env: dict[str, str]

    async def restart_dispatcher(self) -> None:
        """A fresh Dispatcher process, so memory figures do not carry earlier scenarios'."""
        _stop([self.dispatcher])
        self.dispatcher = start_dispatcher(self.dispatcher_env, self.workdir)
        await _wait_up(self.session, [self.base + "/readyz"], self.workdir / "dispatcher.log")

    @contextlib.asynccontextmanager
    async def on_database(self, name: str) -> AsyncIterator[None]:
        """For a while, a fresh database ``name`` on the same server: the Dispatcher is
        restarted on it and ``db``/``dsn`` point at it; on exit, back (restarted again), and
        ``name`` is dropped. For comparisons that must share the server's state."""
        dsn = await fresh_database(self.dsn, name)
        saved = (self.dsn, self.db, self.dispatcher_env)
        self.dsn, self.db = dsn, await asyncpg.connect(dsn)
        self.dispatcher_env = {**saved[2], "DISPATCHER_DATABASE_URL": dsn}
        try:
            await self.restart_dispatcher()
            yield
        finally:
            await self.db.close()
            self.dsn, self.db, self.dispatcher_env = saved
            await self.restart_dispatcher()
            await self.db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    @contextlib.asynccontextmanager
    async def other_receiver(self, workers: int = 1) -> AsyncIterator[Receiver]:
        """A second receiver (its own processes and port), stopped on exit."""
        other = Receiver.spawn(self.session, workers)
        try:
            await _wait_up(
                self.session,
                [f"http://127.0.0.1:{c}/count" for c in other.control_ports],
                self.workdir / "dispatcher.log",
            )
            yield other
        finally:
            _stop(other.procs)

    # -- the Dispatcher's API -----------------------------------------------------------------

    async def api(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(
            method,
            self.base + path,
            data=orjson.dumps(body) if body is not None else None,
            headers=HEADERS,
        ) as resp:
            text = await resp.read()
            if resp.status >= 400:
                raise RuntimeError(f"{method} {path}: {resp.status} {text[:300]!r}")
            return orjson.loads(text) if text else None

    async def publish(self, event: dict[str, Any]) -> None:
        """POST /v1/events; raises unless 202."""
        async with self.session.post(
            self.base + "/v1/events", data=orjson.dumps(event), headers=HEADERS
        ) as resp:
            if resp.status != 202:
                raise RuntimeError(f"POST /v1/events: {resp.status} {(await resp.read())[:300]!r}")
            await resp.read()

    async def publish_batch(self, events: list[dict[str, Any]]) -> None:
        """POST /v1/events/batch; raises unless 202."""
        async with self.session.post(
            self.base + "/v1/events/batch", data=orjson.dumps({"events": events}), headers=HEADERS
        ) as resp:
            if resp.status != 202:
                raise RuntimeError(
                    f"POST /v1/events/batch: {resp.status} {(await resp.read())[:300]!r}"
                )
            await resp.read()

    async def create_webhooks(
        self,
        names: Sequence[str],
        event_type: str,
        query: str = "",
        timeout_seconds: float | None = None,
        concurrency: int = 16,
        max_in_flight: int | None = None,
        receiver: Receiver | None = None,
    ) -> list[str]:
        """Register one webhook per name, pointing at ``/hook/{name}{query}``; their ids."""
        ids: list[str] = [""] * len(names)
        base = (receiver or self.receiver).url

        async def one(i: int) -> None:
            body: dict[str, Any] = {
                "name": f"bench-{names[i]}",
                "url": f"{base}/hook/{names[i]}{query}",
                "event_types": [event_type],
            }
            if timeout_seconds is not None:
                body["timeout_seconds"] = timeout_seconds
            if max_in_flight is not None:
                body["max_in_flight"] = max_in_flight
            ids[i] = (await self.api("POST", "/v1/webhooks", body))["id"]

        it = iter(range(len(names)))

        async def worker() -> None:
            for i in it:
                await one(i)

        await asyncio.gather(*(worker() for _ in range(min(concurrency, len(names)) or 1)))
        return ids

    async def gauge(self, name: str) -> float:
        """A gauge from the Dispatcher's /metrics (summed over label sets)."""
        async with self.session.get(self.base + "/metrics") as resp:
            text = (await resp.read()).decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and line[len(name) : len(name) + 1] in (" ", "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    async def quiesce(self, timeout: float = 30.0) -> bool:
        """Wait until the Dispatcher has nothing in flight or queued (bounded)."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            busy = await self.gauge("dispatcher_in_flight_deliveries") + await self.gauge(
                "dispatcher_queued_deliveries"
            )
            if busy == 0:
                await asyncio.sleep(0.2)  # the outcome writer's last flush
                return True
            await asyncio.sleep(0.1)
        print("  warning: dispatcher still busy after reset", file=sys.stderr)
        return False

    async def reset(self) -> None:
        """Delete every webhook through the API (so the engine lets go), then empty tables."""
        ids: list[str] = []
        cursor: str | None = None
        for _ in range(1000):
            page = await self.api(
                "GET", "/v1/webhooks?limit=500" + (f"&cursor={cursor}" if cursor else "")
            )
            ids.extend(w["id"] for w in page["data"])
            cursor = page["next_cursor"]
            if not cursor:
                break
        it = iter(ids)

        async def worker() -> None:
            for wid in it:
                await self.api("DELETE", f"/v1/webhooks/{wid}")

        await asyncio.gather(*(worker() for _ in range(16)))
        await self.quiesce()
        for tries_left in range(4, -1, -1):
            try:
                await self.db.execute(
                    "TRUNCATE attempts, deliveries, events, webhook_secrets, webhooks, event_types"
                )
                break
            except asyncpg.exceptions.DeadlockDetectedError:
                # The Dispatcher's own statements lock these tables in another order; when
                # Postgres makes the TRUNCATE the deadlock's victim, it can simply go again.
                if not tries_left:
                    raise
        await self.db.execute("VACUUM ANALYZE")
        # Flush the previous scenario's writes now, so its checkpoint does not land in the next.
        await self.db.execute("CHECKPOINT")
        await self.receiver.reset()

    # -- waiting for outcomes -----------------------------------------------------------------

    async def wait_received(self, total: int, timeout: float, label: str) -> float:
        """Wait until the receiver has seen ``total`` requests; the time (perf_counter)."""
        progress = Progress(label, total, "received")
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            count = (await self.receiver.counts())["count"]
            if count >= total:
                return time.perf_counter()
            progress.update(count)
            await asyncio.sleep(0.02)
        raise RuntimeError(f"{label}: receiver got {count} of {total} in {timeout:.0f} s")

    async def wait_recorded(
        self, total: int, timeout: float, label: str, after_id: str = ""
    ) -> float:
        """Wait until ``total`` deliveries are ``success`` in the database; the time.

        Only deliveries whose id sorts after ``after_id`` count (ids are ULIDs, so sort by
        creation): with millions of rows of history, counting all of them every 50 ms would
        be the load measured.
        """
        progress = Progress(label, total, "recorded")
        deadline = time.perf_counter() + timeout
        done = 0
        while time.perf_counter() < deadline:
            done = await self.db.fetchval(
                "SELECT count(*) FROM deliveries WHERE status = 'success' AND id > $1", after_id
            )
            if done >= total:
                return time.perf_counter()
            progress.update(done)
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{label}: {done} of {total} deliveries recorded in {timeout:.0f} s")

    async def attempts_recorded(self, after_id: str = "") -> int:
        """Attempts of the deliveries whose id sorts after ``after_id``."""
        return int(
            await self.db.fetchval("SELECT count(*) FROM attempts WHERE delivery_id > $1", after_id)
        )

    @property
    def postmaster_pid(self) -> int | None:
        """The embedded Postgres server's pid (postmaster.pid's first line), if there is one."""
        try:
            return int((self.workdir / "pg" / "pg" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None  # an external server (DISPATCHER_BENCH_DATABASE_URL): not measured

    def cpu(self, **others: Sequence[int]) -> ProcessCpu:
        """A CPU meter (started) over the Dispatcher, the Postgres server and the receiver
        (each a process tree), and any ``others``; ``dispatcher=[]`` leaves it out."""
        pg = self.postmaster_pid
        groups: dict[str, Sequence[int]] = {
            "dispatcher": [self.dispatcher.pid],
            "postgres": [pg] if pg is not None else [],
            "receiver": self.receiver.pids,
        }
        groups.update(others)
        return ProcessCpu({k: v for k, v in groups.items() if k != "dispatcher" or v}).start()


async def _wait_up(session: aiohttp.ClientSession, urls: list[str], log: Path) -> None:
    deadline = time.perf_counter() + 60
    while True:
        try:
            ok = True
            for url in urls:
                async with session.get(url) as resp:
                    ok = ok and resp.status == 200
            if ok:
                return
        except aiohttp.ClientError:
            pass
        if time.perf_counter() > deadline:
            raise RuntimeError(f"services did not start; see {log}")
        await asyncio.sleep(0.1)


def _stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def start_dispatcher(env: dict[str, str], workdir: Path) -> subprocess.Popen[bytes]:
    """``dispatcher serve`` with ``env``, logging (appending) to workdir/dispatcher.log."""
    with open(workdir / "dispatcher.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "dispatcher", "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT.parent,
        )


async def fresh_database(server: str, name: str) -> str:
    """Database ``name`` on ``server``, dropped if it was there, created and migrated; its DSN."""
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    dsn = urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    await migrate.migrate_dsn(dsn)
    return dsn


@contextlib.asynccontextmanager
async def environment(workdir: Path, receiver_workers: int = 2) -> AsyncIterator[Env]:
    """Start PostgreSQL, the receiver and the Dispatcher; stop them all on exit."""
    raise_fd_limit()
    external = os.environ.get("DISPATCHER_BENCH_DATABASE_URL")
    embedded = None
    if external:
        server = external
    else:
        print("starting embedded PostgreSQL ...", file=sys.stderr, flush=True)
        embedded = EmbeddedPostgres(workdir / "pg")
        server = await asyncio.to_thread(embedded.start)
    procs: list[subprocess.Popen[bytes]] = []
    # Idle connections are dropped before the Dispatcher's own keep-alive deadline
    # (DISPATCHER_HEADER_TIMEOUT_SECONDS, 10 s) would close them: reusing one just as the
    # server hangs up is a "connection reset" on a POST, which aiohttp does not retry.
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=5))
    db: asyncpg.Connection | None = None
    bench: Env | None = None
    try:
        dsn = await fresh_database(server, "dispatcher_bench")
        receiver = Receiver.spawn(session, receiver_workers)
        procs.extend(receiver.procs)
        dport = free_port()
        env = {
            **os.environ,
            **DISPATCHER_SETTINGS,
            "DISPATCHER_DATABASE_URL": dsn,
            "DISPATCHER_PORT": str(dport),
            "DISPATCHER_ADMIN_TOKEN": ADMIN,
            "DISPATCHER_DATA_DIR": str(workdir),
        }
        procs.append(start_dispatcher(env, workdir))
        base = f"http://127.0.0.1:{dport}"
        await _wait_up(
            session,
            [base + "/readyz"] + [f"http://127.0.0.1:{c}/count" for c in receiver.control_ports],
            workdir / "dispatcher.log",
        )
        db = await asyncpg.connect(dsn)
        bench = Env(dsn, base, session, receiver, procs[-1], db, workdir, env)
        yield bench
    finally:
        if db is not None:
            await db.close()
        await session.close()
        if bench is not None:
            procs[-1] = bench.dispatcher  # it may have been restarted
        _stop(procs)
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
