"""Crash safety with real processes: ``python -m dispatcher serve`` killed with SIGKILL while
hundreds of deliveries are in flight, stopped with SIGTERM, run with ``--workers 2``, and kept
running while its Postgres restarts. Nothing accepted may be lost."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import asyncpg
import psutil
import pytest
from aiohttp import web

from dispatcher import migrate
from dispatcher.embedded import EmbeddedPostgres
from tests.helpers import with_database
from tests.receiver import Receiver

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
TOKEN = "crash-test-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
START_DEADLINE = 30.0
LEASE_SECONDS = 2
DELIVERY_TIMEOUT = 3.0

pytestmark = pytest.mark.timeout(60)


# --------------------------------------------------------------------------------------------
# helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def eventually(
    check: Callable[[], Awaitable[T | None]], timeout: float, what: str, interval: float = 0.05
) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        last = await check()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        await asyncio.sleep(interval)


def header(headers: dict[str, str], name: str) -> str:
    """A request header, whatever its case."""
    for key, value in headers.items():
        if key.lower() == name:
            return value
    raise KeyError(name)


def received_ids(receiver: Receiver, path: str) -> set[str]:
    """Distinct ``webhook-id`` headers ``path`` received."""
    return {header(r.headers, "webhook-id") for r in receiver.at(path)}


class Dispatcher:
    """One ``python -m dispatcher serve`` process (and, with ``--workers``, its children)."""

    def __init__(self, dsn: str, logs: Path, name: str, *args: str, **env: str) -> None:
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.data_dir = Path(tempfile.mkdtemp(prefix="dsp-", dir="/tmp"))
        self.stdout_path = logs / f"{name}.out"
        self.stderr_path = logs / f"{name}.err"
        environ = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("DISPATCHER_") and k != "PROMETHEUS_MULTIPROC_DIR"
        }
        environ.update(
            {
                "DISPATCHER_DATABASE_URL": dsn,
                "DISPATCHER_ALLOW_PRIVATE_TARGETS": "true",
                "DISPATCHER_ADMIN_TOKEN": TOKEN,
                "DISPATCHER_PORT": str(self.port),
                "DISPATCHER_LEASE_SECONDS": str(LEASE_SECONDS),
                "DISPATCHER_DATA_DIR": str(self.data_dir),
                "DISPATCHER_LOG_FORMAT": "json",
                "PYTHONPATH": str(REPO),
            }
        )
        environ.update({f"DISPATCHER_{k.upper()}": v for k, v in env.items()})
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dispatcher", "serve", *args],
                env=environ,
                cwd=str(self.data_dir),
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        self.known_pids: set[int] = {self.proc.pid}

    def output(self) -> str:
        err = self.stderr_path.read_text(errors="replace")[-4000:]
        out = self.stdout_path.read_text(errors="replace")[-4000:]
        return f"--- {self.name} stderr (tail) ---\n{err}\n--- {self.name} stdout (tail) ---\n{out}"

    def workers(self) -> list[psutil.Process]:
        """Child processes (``--workers``)."""
        try:
            children: list[psutil.Process] = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        self.known_pids.update(c.pid for c in children)
        return children

    async def wait_ready(self, http: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.proc.returncode} before ready\n" + self.output()
                )
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(
                    self.base + "/readyz", timeout=aiohttp.ClientTimeout(total=2)
                ) as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name} not ready after {START_DEADLINE}s\n{self.output()}")

    async def wait_exit(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{self.name} still running {timeout}s after being asked to stop\n"
                    + self.output()
                )
            await asyncio.sleep(0.05)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the process (no chance to clean up)."""
        self.workers()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def cleanup(self) -> None:
        """Kill whatever is left of this process and its children; remove its data dir."""
        self.workers()
        for pid in sorted(self.known_pids - {self.proc.pid}):
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).kill()
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        shutil.rmtree(self.data_dir, ignore_errors=True)


async def create_database(server: str, name: str) -> str:
    """A new, migrated database on ``server``."""
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    dsn = with_database(server, name)
    await migrate.migrate_dsn(dsn)
    return dsn


async def drop_database(server: str, name: str) -> None:
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def fresh_dsn(server_dsn: str, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A database of its own for this test, migrated, dropped afterwards."""
    name = f"dispatcher_crash_{os.getpid()}_{request.node.name[:30].lower()}"
    dsn = await create_database(server_dsn, name)
    try:
        yield dsn
    finally:
        await drop_database(server_dsn, name)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
        yield session


async def create_webhook(
    http: aiohttp.ClientSession, base: str, url: str, **fields: Any
) -> dict[str, Any]:
    body = {"name": "crash", "url": url, "event_types": ["*"], **fields}
    async with http.post(base + "/v1/webhooks", json=body, headers=AUTH) as resp:
        assert resp.status == 201, await resp.text()
        hook: dict[str, Any] = await resp.json()
        return hook


async def publish_all(
    http: aiohttp.ClientSession, base: str, ids: list[str], concurrency: int = 50
) -> dict[str, int]:
    """Publish one event per id (the id is the idempotency key); the answer status of each."""
    limit = asyncio.Semaphore(concurrency)
    statuses: dict[str, int] = {}

    async def one(event_id: str) -> None:
        async with limit:
            body = {"type": "order.created", "id": event_id, "data": {"id": event_id}}
            async with http.post(base + "/v1/events", json=body, headers=AUTH) as resp:
                statuses[event_id] = resp.status

    await asyncio.gather(*(one(i) for i in ids))
    return statuses


class Slow:
    """A responder that counts arrivals and answers 200 after ``seconds`` (or, with a gate,
    once the gate opens)."""

    def __init__(self, seconds: float, gate: asyncio.Event | None = None) -> None:
        self.seconds = seconds
        self.gate = gate
        self.arrived = 0

    async def __call__(self, _request: web.Request, _n: int) -> web.StreamResponse:
        self.arrived += 1
        if self.gate is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.gate.wait(), self.seconds)
        else:
            await asyncio.sleep(self.seconds)
        return web.Response(text="ok")


async def statuses_of(db: asyncpg.Connection) -> dict[str, int]:
    rows = await db.fetch("SELECT status, count(*) AS n FROM deliveries GROUP BY status")
    return {r["status"]: r["n"] for r in rows}


async def all_succeeded(db: asyncpg.Connection, expected: int) -> dict[str, int] | None:
    counts = await statuses_of(db)
    return counts if counts == {"success": expected} else None


# --------------------------------------------------------------------------------------------
# kill -9


async def test_kill_9_with_deliveries_in_flight_loses_nothing(
    receiver: Receiver, fresh_dsn: str, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    slow = Slow(1.0)
    receiver.responders["/slow"] = slow
    servers: list[Dispatcher] = []
    db = await asyncpg.connect(fresh_dsn)
    try:
        first = Dispatcher(fresh_dsn, tmp_path, "first")
        servers.append(first)
        await first.wait_ready(http)
        await create_webhook(http, first.base, receiver.url("/slow"))

        ids = [f"evt_crash_{i:04d}" for i in range(300)]
        statuses = await publish_all(http, first.base, ids)
        accepted = {i for i, s in statuses.items() if s == 202}
        assert len(accepted) == 300, sorted(set(statuses.values()))

        async def in_flight() -> bool:
            return slow.arrived >= 100

        await eventually(in_flight, 10, "100 deliveries in flight")
        first.kill()
        assert first.proc.returncode == -signal.SIGKILL
        counts = await statuses_of(db)
        unfinished = sum(n for s, n in counts.items() if s != "success")
        assert unfinished >= 100, counts  # the receiver takes 1 s: they were mid-flight
        assert await db.fetchval("SELECT count(*) FROM deliveries WHERE lease_owner IS NOT NULL")

        second = Dispatcher(fresh_dsn, tmp_path, "second")
        servers.append(second)
        await second.wait_ready(http)

        async def done() -> dict[str, int] | None:
            return await all_succeeded(db, 300)

        await eventually(done, 30, "every delivery to succeed after the takeover", 0.2)
        assert received_ids(receiver, "/slow") == accepted
        assert await db.fetchval("SELECT count(*) FROM events") == 300
        assert (
            await db.fetchval("SELECT count(*) FROM deliveries WHERE lease_owner IS NOT NULL") == 0
        )
    finally:
        await db.close()
        for server in servers:
            server.cleanup()


# --------------------------------------------------------------------------------------------
# SIGTERM


async def test_sigterm_finishes_or_releases_in_flight_work_and_exits_0(
    receiver: Receiver, fresh_dsn: str, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    slow = Slow(1.0)  # finishes within the shutdown deadline
    unstall = asyncio.Event()
    stuck = Slow(30.0, unstall)  # does not: cut off at the deadline, released
    receiver.responders["/slow"] = slow
    receiver.responders["/stuck"] = stuck
    servers: list[Dispatcher] = []
    db = await asyncpg.connect(fresh_dsn)
    try:
        first = Dispatcher(
            fresh_dsn, tmp_path, "first", delivery_timeout_seconds=str(DELIVERY_TIMEOUT)
        )
        servers.append(first)
        await first.wait_ready(http)
        slow_hook = await create_webhook(http, first.base, receiver.url("/slow"))
        stuck_hook = await create_webhook(
            http, first.base, receiver.url("/stuck"), timeout_seconds=60
        )
        ids = [f"evt_term_{i:04d}" for i in range(100)]
        statuses = await publish_all(http, first.base, ids)
        assert set(statuses.values()) == {202}

        async def in_flight() -> bool:
            return slow.arrived == 100 and stuck.arrived == 100

        await eventually(in_flight, 10, "200 deliveries in flight")
        started = time.monotonic()
        first.proc.send_signal(signal.SIGTERM)
        code = await first.wait_exit(DELIVERY_TIMEOUT + 7)
        elapsed = time.monotonic() - started
        assert code == 0, first.output()
        assert elapsed < DELIVERY_TIMEOUT + 7
        assert "engine_stopped" in first.stdout_path.read_text()

        leased = await db.fetchval("SELECT count(*) FROM deliveries WHERE lease_owner IS NOT NULL")
        assert leased == 0, "deliveries left leased after a graceful stop"
        # The 1 s ones finished; the stuck ones were given back, due again at once.
        slow_rows = await db.fetch(
            "SELECT status FROM deliveries WHERE webhook_id = $1", slow_hook["id"]
        )
        assert [r["status"] for r in slow_rows] == ["success"] * 100
        stuck_rows = await db.fetch(
            "SELECT status, due_at, lease_owner, lease_until FROM deliveries WHERE webhook_id = $1",
            stuck_hook["id"],
        )
        assert len(stuck_rows) == 100
        assert all(r["status"] in ("created", "retrying") for r in stuck_rows)
        assert all(
            r["due_at"] is not None and r["lease_owner"] is None and r["lease_until"] is None
            for r in stuck_rows
        )

        # Nothing was lost: the next instance sends the released work at once (no lease wait).
        unstall.set()
        second = Dispatcher(fresh_dsn, tmp_path, "second")
        servers.append(second)
        await second.wait_ready(http)

        async def done() -> dict[str, int] | None:
            return await all_succeeded(db, 200)

        await eventually(done, 20, "every delivery to succeed", 0.2)
        assert received_ids(receiver, "/stuck") == set(ids)
        assert received_ids(receiver, "/slow") == set(ids)
    finally:
        unstall.set()
        await db.close()
        for server in servers:
            server.cleanup()


# --------------------------------------------------------------------------------------------
# --workers 2


def listening_on(proc: psutil.Process, port: int) -> bool:
    try:
        return any(
            c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
            for c in proc.net_connections(kind="tcp")
        )
    except psutil.NoSuchProcess:
        return False


async def test_two_workers_share_one_port_and_stop_together(
    receiver: Receiver, fresh_dsn: str, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    server = Dispatcher(
        fresh_dsn,
        tmp_path,
        "workers",
        "--workers",
        "2",
        delivery_timeout_seconds=str(DELIVERY_TIMEOUT),
    )
    try:
        await server.wait_ready(http)

        async def two_listening() -> list[psutil.Process] | None:
            found = [w for w in server.workers() if listening_on(w, server.port)]
            return found if len(found) == 2 else None

        workers = await eventually(two_listening, 20, "two workers listening on the port")
        assert not listening_on(psutil.Process(server.proc.pid), server.port)
        assert all("--worker-child" in w.cmdline() for w in workers)

        await create_webhook(http, server.base, receiver.url("/hook"))
        ids = [f"evt_workers_{i:03d}" for i in range(40)]
        assert set((await publish_all(http, server.base, ids, concurrency=8)).values()) == {202}
        await receiver.wait_for(40, "/hook", timeout=15)
        assert received_ids(receiver, "/hook") == set(ids)
        async with http.get(server.base + "/metrics") as resp:
            assert resp.status == 200
            assert "dispatcher_events_ingested_total" in await resp.text()

        # A worker that dies is replaced.
        victim = workers[0]
        victim.kill()
        victim.wait(10)

        async def replaced() -> list[psutil.Process] | None:
            found = await two_listening()
            return found if found and victim.pid not in {w.pid for w in found} else None

        workers = await eventually(replaced, 20, "the killed worker to be replaced")
        await server.wait_ready(http)

        # SIGTERM to the parent stops every worker, and the parent exits 0.
        server.proc.send_signal(signal.SIGTERM)
        code = await server.wait_exit(DELIVERY_TIMEOUT + 15)
        assert code == 0, server.output()

        async def workers_gone() -> bool:
            return not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)

        await eventually(workers_gone, 5, "every worker to exit")
        with pytest.raises(aiohttp.ClientError):
            async with http.get(server.base + "/healthz", timeout=aiohttp.ClientTimeout(total=2)):
                pass
    finally:
        server.cleanup()


# --------------------------------------------------------------------------------------------
# Postgres restart under load


def pg_ctl_user() -> str | None:
    return "embedded_postgres" if os.geteuid() == 0 else None


async def test_postgres_restart_under_load_answers_202_or_503_and_loses_nothing(
    receiver: Receiver, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    pg_dir = Path(tempfile.mkdtemp(prefix="dsp-", dir="/tmp"))
    embedded = EmbeddedPostgres(pg_dir)
    server: Dispatcher | None = None
    db: asyncpg.Connection | None = None
    stop = asyncio.Event()
    results: dict[str, int | str] = {}
    publishers: list[asyncio.Task[None]] = []
    try:
        uri = await asyncio.to_thread(embedded.start)
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

        dsn = await create_database(uri, "dispatcher")
        server = Dispatcher(dsn, tmp_path, "pg-restart", delivery_timeout_seconds="5")
        await server.wait_ready(http)
        await create_webhook(http, server.base, receiver.url("/hook"))
        base = server.base

        async def publisher(worker: int) -> None:
            n = 0
            while not stop.is_set():
                event_id = f"evt_pg_{worker}_{n:05d}"
                n += 1
                body = {"type": "order.created", "id": event_id, "data": {"n": n}}
                try:
                    async with http.post(
                        base + "/v1/events",
                        json=body,
                        headers=AUTH,
                        timeout=aiohttp.ClientTimeout(total=10),
                    ) as resp:
                        await resp.read()
                        results[event_id] = resp.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    results[event_id] = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(0)

        publishers = [asyncio.create_task(publisher(w)) for w in range(24)]

        def count(status: int) -> int:
            return sum(1 for s in results.values() if s == status)

        assert embedded._server is not None
        for restart in range(4):  # each restart is another chance to catch a commit midway
            accepted_before = count(202)

            async def accepting(baseline: int = accepted_before) -> bool:
                return count(202) >= baseline + 50

            await eventually(accepting, 20, f"events to be accepted before restart {restart}")
            await asyncio.to_thread(
                pg_ctl, ["-w", "-m", "fast", "stop"], pgdata=embedded.pgdata, user=pg_ctl_user()
            )
            refused_before = count(503)

            async def refusing(baseline: int = refused_before) -> bool:
                return count(503) >= baseline + 5

            await eventually(refusing, 10, f"503s while Postgres is down ({restart})")
            await asyncio.to_thread(embedded._server.ensure_postgres_running)

        async def accepted_again(baseline: int = count(202)) -> bool:
            return count(202) >= baseline + 50

        await eventually(accepted_again, 20, "events to be accepted again after the restarts")
        stop.set()
        await asyncio.wait_for(asyncio.gather(*publishers), 15)

        # Checked last, so that a wrong answer does not hide a lost event (or vice versa).
        unexpected = {i: s for i, s in results.items() if s not in (202, 503)}
        accepted = {i for i, s in results.items() if s == 202}
        assert len(accepted) >= 100

        async def all_delivered() -> bool:
            return accepted <= received_ids(receiver, "/hook")

        try:
            await eventually(all_delivered, 30, "every accepted event to be delivered", 0.2)
        except AssertionError:
            missing = accepted - received_ids(receiver, "/hook")
            raise AssertionError(
                f"{len(missing)} accepted events never delivered, e.g. {sorted(missing)[:5]}; "
                f"answers other than 202/503: {list(unexpected.items())[:10]}\n" + server.output()
            ) from None
        db = await asyncpg.connect(dsn)

        async def recorded() -> bool:
            assert db is not None
            return not await db.fetchval(
                "SELECT count(*) FROM deliveries WHERE event_id = ANY($1::text[]) "
                "AND status <> 'success'",
                list(accepted),
            )

        # Outcomes are written in batches just after the attempt.
        try:
            await eventually(recorded, 10, "every accepted event's delivery to be recorded")
        except AssertionError:
            rows = await db.fetch(
                "SELECT id, event_id, status, attempt_count, lease_owner, lease_until, due_at, "
                "next_attempt_at, last_error, now() AS now FROM deliveries "
                "WHERE event_id = ANY($1::text[]) AND status <> 'success' LIMIT 5",
                list(accepted),
            )
            raise AssertionError(
                f"delivered but not recorded as success: {[dict(r) for r in rows]}; "
                f"answers other than 202/503: {list(unexpected.items())[:10]}\n" + server.output()
            ) from None
        assert not unexpected, (
            f"answers other than 202/503 while Postgres restarted: {list(unexpected.items())[:10]}"
        )
    finally:
        stop.set()
        for task in publishers:
            task.cancel()
        await asyncio.gather(*publishers, return_exceptions=True)
        if db is not None:
            await db.close()
        if server is not None:
            server.cleanup()
        await asyncio.to_thread(embedded.stop)
        shutil.rmtree(pg_dir, ignore_errors=True)
