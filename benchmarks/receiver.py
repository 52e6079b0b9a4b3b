"""A fast webhook receiver for benchmarks (aiohttp on uvloop, loopback).

Counts requests and measures producer-to-receiver latency from ``data.sent_at`` (unix
seconds, stamped by the producer just before publishing). ``GET /stats`` reports, ``POST
/reset`` clears. ``?delay=`` on the hook path sleeps before answering; ``?status=`` answers
with that status.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import orjson
import uvloop
from aiohttp import web

STATE: dict[str, list[float] | int] = {"count": 0, "latencies": []}


async def hook(request: web.Request) -> web.Response:
    body = await request.read()
    now = time.time()
    try:
        sent = orjson.loads(body).get("data", {}).get("sent_at")
    except (orjson.JSONDecodeError, AttributeError):
        sent = None
    if isinstance(sent, (int, float)):
        STATE["latencies"].append(now - sent)  # type: ignore[union-attr]
    delay = float(request.query.get("delay", "0"))
    if delay:
        await asyncio.sleep(delay)
    STATE["count"] += 1  # type: ignore[operator]
    return web.Response(status=int(request.query.get("status", "200")), text="ok")


async def raw(request: web.Request) -> web.Response:
    await request.read()
    STATE["count"] += 1  # type: ignore[operator]
    return web.Response(text="ok")


async def stats(_request: web.Request) -> web.Response:
    return web.Response(body=orjson.dumps(STATE), content_type="application/json")


async def reset(_request: web.Request) -> web.Response:
    STATE["count"] = 0
    STATE["latencies"] = []
    return web.Response(text="ok")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_post("/hook/{name}", hook)
    app.router.add_post("/raw", raw)
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    web.run_app(
        app,
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
        backlog=4096,
    )


if __name__ == "__main__":
    main()
