"""A real HTTP receiver on loopback for tests: records requests, answers as scripted."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    # Header names are case-insensitive, as for any receiver (aiohttp sends ours as spelled,
    # pyreqwest in lower case).
    headers: CIMultiDict[str]
    body: bytes

    def json(self) -> Any:
        """The body parsed."""
        return orjson.loads(self.body)


Responder = Callable[[web.Request, int], Awaitable[web.StreamResponse]]


async def ok(_request: web.Request, _n: int) -> web.StreamResponse:
    """Answer 200."""
    return web.Response(text="ok")


@dataclass
class Receiver:
    """Records every request per path; ``responders[path]`` decides the answer."""

    host: str = "127.0.0.1"
    port: int = 0
    requests: list[Received] = field(default_factory=list)
    responders: dict[str, Responder] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    # Requests that have arrived per path, answered or not: a responder's ``n`` counts these,
    # so two requests in flight at once never both see themselves as the first.
    _arrived: dict[str, int] = field(default_factory=dict)

    async def start(self) -> None:
        """Listen on a free loopback port."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str = "/hook") -> str:
        """The URL of ``path`` on this receiver."""
        return f"http://{self.host}:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        got = Received(request.path, CIMultiDict(request.headers), body)
        n = self._arrived.get(request.path, 0)
        self._arrived[request.path] = n + 1
        responder = self.responders.get(request.path, ok)
        try:
            return await responder(request, n)
        finally:
            self.requests.append(got)
            async with self._changed:
                self._changed.notify_all()

    def at(self, path: str = "/hook") -> list[Received]:
        """Requests received on ``path``."""
        return [r for r in self.requests if r.path == path]

    async def wait_for(
        self, count: int, path: str = "/hook", timeout: float = 10.0
    ) -> list[Received]:
        """Wait until ``path`` has received ``count`` requests; fail after ``timeout``."""

        async def enough() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.at(path)) >= count)

        try:
            await asyncio.wait_for(enough(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"{path} received {len(self.at(path))} requests, expected {count}"
            ) from None
        return self.at(path)
