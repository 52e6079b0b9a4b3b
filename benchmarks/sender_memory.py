"""Memory per attempt in flight of the two senders, through ``dispatcher.sender``'s interface.

``python -m benchmarks.sender_memory [--in-flight 5000] [--delay 2]``

Starts the benchmark receiver (one worker), then, for each sender in a fresh process of its own
(resident memory never shrinks back, so a second measurement in the same process would read the
first's peak), sends ``--in-flight`` attempts at once to a URL the receiver holds ``--delay``
seconds, and prints the peak RSS growth (sampled every 50 ms) per attempt in flight. Private
targets are allowed (the receiver is on 127.0.0.1), so each sender uses one shared client.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys

import psutil
import uvloop
from yarl import URL

from benchmarks.scenarios.raw import envelope
from benchmarks.sender_cpu import receiver_process
from dispatcher import sender
from dispatcher.sender_aiohttp import AiohttpSender
from dispatcher.sender_reqwest import ReqwestSender

SENDERS = {"aiohttp": AiohttpSender, "pyreqwest": ReqwestSender}


async def one_sender(name: str, port: int, in_flight: int, delay: float) -> None:
    """In this process: ``in_flight`` attempts at once with sender ``name``; print the growth."""
    client: sender.Sender = SENDERS[name](allow_private=True)
    body, headers = envelope()
    url = URL(f"http://127.0.0.1:{port}/hook/memory?delay={delay:g}")
    me = psutil.Process()
    await client.send(url=url.with_query(None), headers=headers, body=body, timeout=10)
    base = peak = me.memory_info().rss

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, me.memory_info().rss)
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    results = await asyncio.gather(
        *(
            client.send(url=url, headers=headers, body=body, timeout=delay + 30)
            for _ in range(in_flight)
        )
    )
    sampler.cancel()
    await client.close()
    ok = sum(1 for r in results if r.status_code == 200)
    print(
        f"  {name:10} {(peak - base) / in_flight / 1024:6.1f} KiB per attempt in flight"
        f"  (peak RSS {peak / 2**20:.0f} MiB from {base / 2**20:.0f}; {ok}/{in_flight} answered)"
    )


async def main(in_flight: int, delay: float) -> None:
    """Start the receiver, then measure each sender in a process of its own."""
    async with receiver_process() as port:
        print(f"{in_flight} attempts in flight at once, each held {delay:g} s by the receiver:")
        for name in SENDERS:
            child = [sys.executable, "-m", "benchmarks.sender_memory", "--only", name]
            args = ["--port", str(port), "--in-flight", str(in_flight), "--delay", str(delay)]
            await asyncio.to_thread(subprocess.run, [*child, *args], check=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sender_memory")
    parser.add_argument("--in-flight", type=int, default=5000)
    parser.add_argument("--delay", type=float, default=2.0)
    parser.add_argument("--only", choices=sorted(SENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.only:
        uvloop.run(one_sender(opts.only, opts.port, opts.in_flight, opts.delay))
    else:
        uvloop.run(main(opts.in_flight, opts.delay))
