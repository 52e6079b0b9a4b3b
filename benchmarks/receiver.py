"""The benchmark webhook receiver: one lean aiohttp-on-uvloop worker process (loopback only).

Several workers may share the hook port (``--reuse-port``, SO_REUSEPORT); each also listens on
its own control port, where the benchmark reads and clears that worker's figures.

Hook port, ``POST /hook/{name}``:

- answers 200 at once;
- ``?delay=S`` sleeps S seconds first (slow receiver; beyond the webhook's timeout it is a
  receiver that times out);
- ``?status=N`` answers with status N (failing receiver).

Every request is recorded: arrival time (unix seconds), the hook name, and the
producer-to-receiver latency computed from ``"sent_at": <unix seconds>`` in the body (the
producer stamps it just before publishing). The body is searched for that key, not parsed, so
a 512 KiB payload costs little.

Control port: ``GET /count`` (cheap, for polling), ``GET /stats`` (every record, columnar),
``POST /reset``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import time

import orjson
import uvloop
from aiohttp import web

SENT_AT = b'"sent_at":'
NUMBER = re.compile(rb"\s*(-?[0-9.]+(?:[eE][-+]?[0-9]+)?)")


class State:
    """One worker's records."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.answered = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.arrivals: list[float] = []
        self.latencies: list[float] = []  # seconds; -1.0 when the body had no sent_at
        self.hooks: list[str] = []


STATE = State()


def sent_at(body: bytes) -> float | None:
    """``data.sent_at`` from a webhook body, found without parsing the whole JSON."""
    i = body.find(SENT_AT)
    if i < 0:
        return None
    m = NUMBER.match(body, i + len(SENT_AT))
    return float(m.group(1)) if m else None


async def hook(request: web.Request) -> web.Response:
    body = await request.read()
    now = time.time()
    st = STATE
    sent = sent_at(body)
    st.count += 1
    st.arrivals.append(now)
    st.latencies.append(now - sent if sent is not None else -1.0)
    st.hooks.append(request.match_info["name"])
    if not request.query_string:
        st.answered += 1
        return web.Response(text="ok")
    st.in_flight += 1
    st.peak_in_flight = max(st.peak_in_flight, st.in_flight)
    try:
        delay = float(request.query.get("delay", "0"))
        if delay > 0:
            await asyncio.sleep(min(delay, 60.0))
        st.answered += 1
        return web.Response(status=int(request.query.get("status", "200")), text="ok")
    finally:
        st.in_flight -= 1


async def count(_request: web.Request) -> web.Response:
    st = STATE
    return web.Response(
        body=orjson.dumps(
            {"count": st.count, "answered": st.answered, "peak_in_flight": st.peak_in_flight}
        ),
        content_type="application/json",
    )


async def stats(_request: web.Request) -> web.Response:
    st = STATE
    return web.Response(
        body=orjson.dumps(
            {
                "count": st.count,
                "answered": st.answered,
                "peak_in_flight": st.peak_in_flight,
                "arrivals": st.arrivals,
                "latencies": st.latencies,
                "hooks": st.hooks,
            }
        ),
        content_type="application/json",
    )


async def reset(_request: web.Request) -> web.Response:
    STATE.reset()
    return web.Response(text="ok")


async def serve(port: int, control_port: int, reuse_port: bool) -> None:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/hook/{name}", hook)
    app.router.add_get("/count", count)
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096, reuse_port=reuse_port).start()
    await web.TCPSite(runner, "127.0.0.1", control_port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.receiver")
    parser.add_argument("--port", type=int, required=True, help="hook port")
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--reuse-port", action="store_true", help="share the hook port")
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.control_port, args.reuse_port))


if __name__ == "__main__":
    main()
