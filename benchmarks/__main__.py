"""Run the benchmarks: ``python -m benchmarks [--scenario NAME ...] [--quick]``.

Everything runs on this machine, on loopback: a PostgreSQL (embedded unless
DISPATCHER_BENCH_DATABASE_URL is set), a receiver process, a Dispatcher process
(``dispatcher serve``), and this process as the producer. Every figure is printed next to
the ``raw`` figure measured in the same run (a bare aiohttp client posting the same bodies to
the same receiver), so ratios carry across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson

from dispatcher import migrate
from dispatcher.embedded import EmbeddedPostgres

ADMIN = "bench-admin-token-0123456789"
ROOT = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Env:
    """The processes under test and a client session."""

    dsn: str
    base: str
    receiver: str
    session: aiohttp.ClientSession
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    async def api(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(
            method,
            self.base + path,
            data=orjson.dumps(body) if body is not None else None,
            headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"},
        ) as resp:
            text = await resp.read()
            if resp.status >= 400:
                raise RuntimeError(f"{method} {path}: {resp.status} {text[:300]!r}")
            return orjson.loads(text) if text else None

    async def receiver_stats(self) -> dict[str, Any]:
        async with self.session.get(self.receiver + "/stats") as resp:
            return dict(orjson.loads(await resp.read()))

    async def reset(self) -> None:
        async with self.session.post(self.receiver + "/reset") as resp:
            await resp.read()
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(
                "TRUNCATE attempts, deliveries, events, webhook_secrets, webhooks, event_types"
            )
        finally:
            await conn.close()

    async def webhooks(self, n: int, event_type: str, suffix: str = "") -> list[str]:
        ids = []
        for i in range(n):
            hook = await self.api(
                "POST",
                "/v1/webhooks",
                {
                    "name": f"bench-{i}",
                    "url": f"{self.receiver}/hook/{i}{suffix}",
                    "event_types": [event_type],
                },
            )
            ids.append(hook["id"])
        # Registrations reach the engine through the same process; give NOTIFY no role here.
        return ids

    async def wait_received(self, total: int, timeout: float) -> float:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if (await self.receiver_stats())["count"] >= total:
                return time.perf_counter()
            await asyncio.sleep(0.02)
        raise RuntimeError(f"receiver got {(await self.receiver_stats())['count']} of {total}")

    async def wait_recorded(self, total: int, timeout: float) -> float:
        conn = await asyncpg.connect(self.dsn)
        try:
            deadline = time.perf_counter() + timeout
            while time.perf_counter() < deadline:
                done = await conn.fetchval(
                    "SELECT count(*) FROM deliveries WHERE status = 'success'"
                )
                if done >= total:
                    return time.perf_counter()
                await asyncio.sleep(0.02)
        finally:
            await conn.close()
        raise RuntimeError("deliveries were not all recorded in time")


@contextlib.asynccontextmanager
async def environment(workdir: Path) -> AsyncIterator[Env]:
    external = os.environ.get("DISPATCHER_BENCH_DATABASE_URL")
    embedded = None
    if external:
        server = external
    else:
        embedded = EmbeddedPostgres(workdir / "pg")
        server = await asyncio.to_thread(embedded.start)
    procs: list[subprocess.Popen[bytes]] = []
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    try:
        conn = await asyncpg.connect(server)
        await conn.execute("DROP DATABASE IF EXISTS dispatcher_bench WITH (FORCE)")
        await conn.execute("CREATE DATABASE dispatcher_bench")
        await conn.close()
        from urllib.parse import urlsplit, urlunsplit

        dsn = urlunsplit(urlsplit(server)._replace(path="/dispatcher_bench"))
        await migrate.migrate_dsn(dsn)
        rport, dport = free_port(), free_port()
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "benchmarks.receiver", "--port", str(rport)],
                cwd=ROOT.parent,
            )
        )
        env = {
            **os.environ,
            "DISPATCHER_DATABASE_URL": dsn,
            "DISPATCHER_PORT": str(dport),
            "DISPATCHER_ADMIN_TOKEN": ADMIN,
            "DISPATCHER_ALLOW_PRIVATE_TARGETS": "true",
            "DISPATCHER_DATA_DIR": str(workdir),
            "DISPATCHER_LOG_FORMAT": "json",
            "DISPATCHER_MAX_RETRIES": "2",
        }
        log = open(workdir / "dispatcher.log", "wb")  # noqa: SIM115
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "dispatcher", "serve"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT.parent,
            )
        )
        base, receiver = f"http://127.0.0.1:{dport}", f"http://127.0.0.1:{rport}"
        deadline = time.perf_counter() + 60
        while True:
            try:
                async with (
                    session.get(base + "/readyz") as r1,
                    session.get(receiver + "/stats") as r2,
                ):
                    if r1.status == 200 and r2.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            if time.perf_counter() > deadline:
                raise RuntimeError("services did not start; see " + str(workdir / "dispatcher.log"))
            await asyncio.sleep(0.1)
        yield Env(dsn, base, receiver, session, procs)
    finally:
        await session.close()
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


def body_for(event_type: str, size: int = 200) -> dict[str, Any]:
    return {"type": event_type, "data": {"sent_at": time.time(), "pad": "x" * size}}


async def run_concurrent(n: int, concurrency: int, fn: Callable[[int], Awaitable[None]]) -> float:
    """Call fn(i) for i in range(n) with at most ``concurrency`` at a time; seconds taken."""
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            await fn(i)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0


# -- scenarios ---------------------------------------------------------------------------------


async def raw(env: Env, quick: bool) -> dict[str, Any]:
    n = 5000 if quick else 20000
    payload = orjson.dumps(
        {"id": "evt_x", "type": "bench.raw", "timestamp": "t", "data": body_for("x")["data"]}
    )

    async def post(_: int) -> None:
        async with env.session.post(env.receiver + "/raw", data=payload) as resp:
            await resp.read()

    secs = await run_concurrent(n, 256, post)
    return {"requests_per_s": n / secs, "requests": n}


async def ingest(env: Env, quick: bool) -> dict[str, Any]:
    await env.reset()
    out: dict[str, Any] = {}
    n = 2000 if quick else 6000
    headers = {"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"}
    for conc in (1, 16, 64):

        async def one(_: int) -> None:
            async with env.session.post(
                env.base + "/v1/events",
                data=orjson.dumps(body_for("bench.ingest")),
                headers=headers,
            ) as resp:
                assert resp.status == 202, await resp.text()

        secs = await run_concurrent(n if conc > 1 else n // 4, conc, one)
        out[f"single_c{conc}_events_per_s"] = (n if conc > 1 else n // 4) / secs
    batches = 100 if quick else 300

    async def batch(_: int) -> None:
        events = [body_for("bench.ingest") for _ in range(100)]
        async with env.session.post(
            env.base + "/v1/events/batch", data=orjson.dumps({"events": events}), headers=headers
        ) as resp:
            assert resp.status == 202, await resp.text()

    secs = await run_concurrent(batches, 4, batch)
    out["batch100_events_per_s"] = batches * 100 / secs
    return out


async def e2e(env: Env, quick: bool) -> dict[str, Any]:
    await env.reset()
    await env.webhooks(10, "bench.e2e")
    events = 2000 if quick else 6000
    headers = {"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"}

    async def batch(_: int) -> None:
        body = {"events": [body_for("bench.e2e") for _ in range(100)]}
        async with env.session.post(
            env.base + "/v1/events/batch", data=orjson.dumps(body), headers=headers
        ) as resp:
            assert resp.status == 202, await resp.text()

    total = events * 10
    t0 = time.perf_counter()
    await run_concurrent(events // 100, 4, batch)
    t_ingested = time.perf_counter()
    t_received = await env.wait_received(total, 300)
    t_recorded = await env.wait_recorded(total, 300)
    stats = await env.receiver_stats()
    lat = stats["latencies"]
    return {
        "deliveries": total,
        "deliveries_per_s_recorded": total / (t_recorded - t0),
        "deliveries_per_s_received": total / (t_received - t0),
        "ingest_seconds": t_ingested - t0,
        "latency_p50_ms": pct(lat, 0.5) * 1000,
        "latency_p99_ms": pct(lat, 0.99) * 1000,
    }


async def latency(env: Env, quick: bool, rate: int = 200, seconds: float = 10.0) -> dict[str, Any]:
    await env.reset()
    await env.webhooks(1, "bench.latency")
    if quick:
        seconds = 5.0
    headers = {"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"}
    sent = 0
    t0 = time.perf_counter()
    pending: set[asyncio.Task[None]] = set()

    async def one() -> None:
        async with env.session.post(
            env.base + "/v1/events", data=orjson.dumps(body_for("bench.latency")), headers=headers
        ) as resp:
            assert resp.status == 202, await resp.text()

    while (now := time.perf_counter() - t0) < seconds:
        due = int(now * rate)
        while sent < due:
            task = asyncio.create_task(one())
            pending.add(task)
            task.add_done_callback(pending.discard)
            sent += 1
        await asyncio.sleep(0.001)
    await asyncio.gather(*pending)
    await env.wait_received(sent, 60)
    lat = [x * 1000 for x in (await env.receiver_stats())["latencies"]]
    return {
        "rate_per_s": rate,
        "events": sent,
        "p50_ms": pct(lat, 0.5),
        "p90_ms": pct(lat, 0.9),
        "p99_ms": pct(lat, 0.99),
        "max_ms": max(lat),
        "mean_ms": statistics.fmean(lat),
    }


SCENARIOS: dict[str, Callable[[Env, bool], Awaitable[dict[str, Any]]]] = {
    "raw": raw,
    "ingest": ingest,
    "e2e": e2e,
    "latency": latency,
}


def report(results: dict[str, dict[str, Any]]) -> str:
    raw_rps = results.get("raw", {}).get("requests_per_s")
    lines = [f"{'scenario':10} {'figure':32} {'value':>12} {'x raw':>8}"]
    for name, figures in results.items():
        for key, value in figures.items():
            ratio = ""
            if raw_rps and key.endswith("_per_s") and name != "raw" and "rate" not in key:
                ratio = f"{value / raw_rps:8.2f}"
            shown = f"{value:12.1f}" if isinstance(value, float) else f"{value:>12}"
            lines.append(f"{name:10} {key:32} {shown} {ratio:>8}")
    return "\n".join(lines)


async def amain(args: argparse.Namespace) -> int:
    names = args.scenario or list(SCENARIOS)
    if "raw" not in names:
        names.insert(0, "raw")
    workdir = Path(tempfile.mkdtemp(prefix="dspb-", dir="/tmp"))
    results: dict[str, dict[str, Any]] = {}
    try:
        async with environment(workdir) as env:
            for name in names:
                print(f"running {name} ...", file=sys.stderr, flush=True)
                results[name] = await SCENARIOS[name](env, args.quick)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(report(results))
    meta = {
        "date": datetime.now(UTC).isoformat(),
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        ),
        "quick": args.quick,
    }
    out = ROOT / "results"
    out.mkdir(exist_ok=True)
    path = out / f"bench-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_bytes(orjson.dumps({"meta": meta, "results": results}, option=orjson.OPT_INDENT_2))
    print(f"\n{meta['machine']}; results written to {path}")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--scenario", action="append", choices=list(SCENARIOS))
    parser.add_argument("--quick", action="store_true", help="smaller counts, shorter runs")
    args = parser.parse_args()
    import uvloop

    sys.exit(uvloop.run(amain(args)))


if __name__ == "__main__":
    main()
