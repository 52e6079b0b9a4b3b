"""Resident memory of a served Dispatcher under one, four and eight concurrent ~15 MB batches.

    .venv/bin/python -m benchmarks.ingest_memory [SRC_DIR]

``dispatcher serve`` runs on an embedded Postgres in a temporary data dir with the default
settings; SRC_DIR (for example ``git archive`` of an older commit) goes first on PYTHONPATH to
measure another version. Prints the idle RSS, then for each step the answers' statuses, the
peak RSS (sampled every 20 ms) and the RSS a second after the last answer.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
import psutil

TOKEN = "bench-admin-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def batch_body(n: int = 1000, item_count: int = 240) -> bytes:
    events = []
    for i in range(n):
        items = [
            {"sku": f"SKU-{i}-{j:04d}", "qty": j, "price": 12.5 + j, "tags": ["a", "b"]}
            for j in range(item_count)
        ]
        events.append({"type": "order.created", "data": {"order": i, "items": items}})
    return orjson.dumps({"events": events})


async def main() -> None:
    src = sys.argv[1] if len(sys.argv) > 1 else None
    work = Path(tempfile.mkdtemp(prefix="dsprss-", dir="/tmp"))
    port = free_port()
    env = {
        **os.environ,
        "DISPATCHER_DATA_DIR": str(work),
        "DISPATCHER_PORT": str(port),
        "DISPATCHER_ADMIN_TOKEN": TOKEN,
        "DISPATCHER_LOG_FORMAT": "json",
    }
    if src:
        env["PYTHONPATH"] = src
    log = open(work / "dispatcher.log", "wb")  # noqa: SIM115 (open for the process's life)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dispatcher", "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=src or None,
    )
    base = f"http://127.0.0.1:{port}"
    body = batch_body()
    print(f"batch: {len(body) / 1e6:.1f} MB", flush=True)
    me = psutil.Process(proc.pid)
    peak = 0.0
    stop = False

    async def sampler() -> None:
        nonlocal peak
        while not stop:
            peak = max(peak, me.memory_info().rss / 1e6)
            await asyncio.sleep(0.02)

    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as s:
            deadline = time.monotonic() + 90
            while True:
                try:
                    async with s.get(base + "/readyz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("not ready")
                await asyncio.sleep(0.2)
            task = asyncio.get_running_loop().create_task(sampler())

            async def send() -> int:
                async with s.post(
                    base + "/v1/events/batch",
                    data=body,
                    headers={"Content-Type": "application/json"},
                ) as r:
                    await r.read()
                    return r.status

            await asyncio.sleep(0.5)
            print(f"idle: {me.memory_info().rss / 1e6:.0f} MB", flush=True)
            for n in (1, 4, 8):
                peak = 0.0
                statuses = await asyncio.gather(*(send() for _ in range(n)))
                await asyncio.sleep(1.0)
                after = me.memory_info().rss / 1e6
                print(
                    f"{n} concurrent: statuses {sorted(statuses)}, peak {peak:.0f} MB,"
                    f" after {after:.0f} MB",
                    flush=True,
                )
            stop = True
            await task
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
