"""CPU per request of the two senders, through ``dispatcher.sender``'s own interface.

``python -m benchmarks.sender_cpu [--requests N] [--rounds R] [--in-flight 64,200]``

Starts the benchmark receiver (one worker, its own process), then, in this process on uvloop,
posts the envelope Dispatcher sends (495-byte body, its 5 headers) with each sender in turn and
with a bare aiohttp session (the floor the issue's target is relative to). CPU is this process's
``getrusage`` utime+stime, all threads (pyreqwest's Tokio thread included), per request, after
a warm-up of 2 x in flight. Modes: ``lenient`` (private targets allowed, a literal 127.0.0.1:
one shared client) and ``strict`` (``localhost`` resolved, checked and pinned, the default
deployment's path; 127.0.0.1 is treated as public here only because the receiver is on it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import uvloop
from yarl import URL

from benchmarks.measure import run_concurrent
from benchmarks.scenarios.raw import envelope
from dispatcher import sender, targets
from dispatcher.sender_aiohttp import AiohttpSender
from dispatcher.sender_reqwest import ReqwestSender

# Resolved (on uvloop: libuv's getaddrinfo), checked and pinned in strict mode.
NAME = "localhost"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def _measure(post: Callable[[int], Awaitable[None]], n: int, in_flight: int) -> float:
    await run_concurrent(2 * in_flight, in_flight, post)
    cpu = _cpu()
    await run_concurrent(n, in_flight, post)
    return 1e6 * (_cpu() - cpu) / n


async def _wait_listening(port: int) -> None:
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    raise RuntimeError("the receiver did not start")


@contextlib.asynccontextmanager
async def receiver_process() -> AsyncIterator[int]:
    """The benchmark receiver (one worker) in a process of its own, listening; its port."""
    port, control = _free_port(), _free_port()
    command = [sys.executable, "-m", "benchmarks.receiver", "--port", str(port)]
    receiver = subprocess.Popen([*command, "--control-port", str(control)])
    try:
        await _wait_listening(port)
        yield port
    finally:
        receiver.terminate()
        receiver.wait()


async def main(requests: int, rounds: int, in_flights: list[int]) -> None:
    """Print CPU us per request of bare aiohttp and both senders, median of ``rounds``."""
    real = targets.is_forbidden_address
    loopback = ipaddress.ip_address("127.0.0.1")
    targets.is_forbidden_address = lambda a: a != loopback and real(a)  # see the docstring

    async with receiver_process() as port:
        body, headers = envelope()
        bare = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=0),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        senders: dict[str, sender.Sender] = {
            "aiohttp sender, lenient": AiohttpSender(allow_private=True),
            "pyreqwest sender, lenient": ReqwestSender(allow_private=True),
            "aiohttp sender, strict": AiohttpSender(allow_private=False),
            "pyreqwest sender, strict": ReqwestSender(allow_private=False),
        }

        def via(s: sender.Sender, host: str) -> Callable[[int], Awaitable[None]]:
            url = URL(f"http://{host}:{port}/hook/bench")

            async def post(_: int) -> None:
                result = await s.send(url=url, headers=headers, body=body, timeout=10)
                if result.status_code != 200:
                    raise RuntimeError(result.error)

            return post

        async def bare_post(_: int) -> None:
            async with bare.post(
                f"http://127.0.0.1:{port}/hook/bench",
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=10),
            ) as resp:
                await resp.content.read(4096)

        posts = {"bare aiohttp session (the floor)": bare_post} | {
            label: via(s, NAME if label.endswith("strict") else "127.0.0.1")
            for label, s in senders.items()
        }
        for in_flight in in_flights:
            figures: dict[str, list[float]] = {label: [] for label in posts}
            t0 = time.perf_counter()
            for _ in range(rounds):
                for label, post in posts.items():  # alternating, so drift hits all alike
                    figures[label].append(await _measure(post, requests, in_flight))
            print(f"\n{in_flight} in flight, {requests} requests x {rounds} rounds "
                  f"({time.perf_counter() - t0:.0f} s):")  # fmt: skip
            floor = statistics.median(figures["bare aiohttp session (the floor)"])
            for label, values in figures.items():
                median = statistics.median(values)
                rounds_text = ", ".join(f"{v:.1f}" for v in values)
                print(f"  {label:34} {median:6.1f} us/request  ({rounds_text})"
                      f"  {median / floor:.2f}x the floor")  # fmt: skip
        await bare.close()
        for s in senders.values():
            await s.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sender_cpu")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--in-flight", default="64,200")
    args = parser.parse_args()
    flights = [int(v) for v in args.in_flight.split(",")]
    uvloop.run(main(args.requests, args.rounds, flights))
