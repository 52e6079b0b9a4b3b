"""raw: a bare aiohttp client posting the same bodies to the same receiver.

This is the limit of this machine and HTTP stack for one Python process: every other
scenario's throughput is divided by it. The body is the envelope a receiver gets from
Dispatcher (built by the same code) with the same headers, signed once. The receiver's and
the client's CPU use are reported so it can be seen that the client, not the receiver, is
the limit (the receiver workers together should stay well below their cores' capacity).

The limit depends on how many requests are in flight: more connections cost the client more
CPU per request (on this machine 64 at a time gave about 15,000/s and 256 about 10,500/s). So
a short sweep over CONCURRENCIES picks the best, and the figure is the median of ROUNDS rounds
at that concurrency (one two-second burst varied by a third from run to run); the slowest and
fastest round are reported beside it.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime

import orjson
import psutil

from benchmarks.measure import CpuMeter, Progress, bodies, run_concurrent, timeline
from benchmarks.scenarios.base import PAYLOAD_BYTES, Context, Result
from dispatcher import ids, sender, signing
from dispatcher.jobs import Payload

CONCURRENCIES = (16, 32, 64, 128, 256)
ROUNDS = 3


def envelope(size: int = PAYLOAD_BYTES) -> tuple[bytes, dict[str, str]]:
    """A delivery body and its headers, as Dispatcher would send them."""
    data = bodies(size, "bench.raw")()["data"]
    payload = Payload(ids.event_id(), "bench.raw", datetime.now(UTC), orjson.dumps(data))
    body = payload.envelope(True)
    now = datetime.now(UTC)
    headers = sender.build_headers((), [signing.generate_secret()], payload.id, now, body)
    return body, headers


async def run(ctx: Context) -> Result:
    env = ctx.env
    await env.receiver.reset()
    n = ctx.opts.pick(5000, 15000)
    body, headers = envelope()
    url = env.receiver.url + "/hook/raw"
    session = env.session

    async def post(_: int) -> None:
        async with session.post(url, data=body, headers=headers) as resp:
            await resp.read()

    # Warm the connection pool so the figure is steady-state.
    await run_concurrent(max(CONCURRENCIES), max(CONCURRENCIES), post)
    sweep = {}
    for c in CONCURRENCIES:
        sweep[c] = n // 2 / await run_concurrent(n // 2, c, post, Progress(f"raw sweep {c}"))
    best = max(sweep, key=lambda c: sweep[c])
    await env.receiver.reset()
    receiver_cpu = CpuMeter(env.receiver.pids).start()
    client_cpu = CpuMeter([psutil.Process().pid]).start()
    start = time.time()
    rates = []
    for r in range(ROUNDS):
        secs = await run_concurrent(n, best, post, Progress(f"raw {r + 1}", n, "requests"))
        rates.append(n / secs)
    _, r_pct = receiver_cpu.stop()
    _, c_pct = client_cpu.stop()
    stats = await env.receiver.stats()
    figures = {
        "requests_per_s": statistics.median(rates),
        "slowest_round_per_s": min(rates),
        "fastest_round_per_s": max(rates),
        "requests": n * ROUNDS,
        "concurrency": best,
        **{f"sweep_c{c}_per_s": rate for c, rate in sweep.items()},
        "client_cpu_pct": c_pct,
        "receiver_cpu_pct": r_pct,
        "receiver_workers": len(env.receiver.pids),
    }
    result = Result(figures, {"throughput": timeline(stats["arrivals"], stats["latencies"], start)})
    busiest = r_pct / max(1, len(env.receiver.pids))
    if busiest > 90:
        result.notes.append(
            f"receiver workers averaged {busiest:.0f}% CPU each: raw may be receiver-bound"
        )
    return result
