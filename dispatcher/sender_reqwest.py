"""The pyreqwest sender (Rust reqwest/hyper): the default client, 0.6x aiohttp's CPU per request.

reqwest has no resolver hook, so the private-address rule is kept here: a name is resolved in
Python (``loop.getaddrinfo``), every address checked, and the attempt sent through a client
built with ``.resolve(name, ip, port)``, which pins that name to the checked address. One client
per (name, port, address), for its keep-alive pool; the answer is checked again after
``dns_ttl`` seconds and the client replaced when the address changes, so a name re-pointed to
the inside network is refused, never reached. At most ``max_clients`` are kept (least recently
used goes), and one idle for ``CLIENT_IDLE_SECONDS`` is closed. The pinned name is the host as
reqwest itself parses the URL (``pyreqwest.http.Url``): a spelling it would not match would fall
back to its own DNS. IP literals are judged in that same parsed form (``127.1`` is 127.0.0.1).

Redirects are not followed, proxies not used (``HTTP(S)_PROXY`` would bypass the pinned
address), cookies not kept, no ``Accept-Encoding`` sent; an answer compressed anyway is
decoded here as aiohttp does. At most 4 KiB of it is read and buffered.
"""

from __future__ import annotations

import asyncio
import socket
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dispatcher.allocator  # noqa: F401 (first: mimalloc reads its settings as pyreqwest loads)

# isort: split
from pyreqwest.client import Client, ClientBuilder
from pyreqwest.exceptions import ConnectError, PyreqwestError
from pyreqwest.http import Url
from pyreqwest.response import BaseResponse
from yarl import URL

from dispatcher.sender import (
    RESPONSE_BODY_LIMIT,
    USER_AGENT,
    AttemptResult,
    BlockedTarget,
    describe_error,
    dns_failed,
    refuse_literal,
    refuse_private,
    scrub,
    timed_out,
)

# Idle keep-alive connections are closed after this (aiohttp's keepalive_timeout=30).
POOL_IDLE = timedelta(seconds=30)
# A pinned client nobody used for this long is closed (its connections are gone by then).
CLIENT_IDLE_SECONDS = 120.0


@dataclass(slots=True, eq=False)
class _Pinned:
    """A client whose name is pinned to one checked address."""

    client: Client
    ip: str
    expires: float  # when the name is resolved and checked again
    last_used: float
    busy: int = 0


def _decoded(raw: bytes, encoding: str | None) -> bytes:
    """``raw`` decompressed when the answer says gzip or deflate (as aiohttp would)."""
    if encoding is None:
        return raw
    encoding = encoding.strip().lower()
    if encoding not in ("gzip", "x-gzip", "deflate"):
        return raw
    # 32 + MAX_WBITS reads a gzip or zlib header; "deflate" is sometimes sent raw.
    for wbits in (32 + zlib.MAX_WBITS, -zlib.MAX_WBITS):
        try:
            return zlib.decompressobj(wbits).decompress(raw, RESPONSE_BODY_LIMIT)
        except zlib.error:
            continue
    return raw


def _header(resp: BaseResponse, name: str) -> str | None:
    """Header ``name`` of ``resp``; U+FFFD if it is there but not text (pyreqwest refuses to
    read non-ASCII bytes; aiohttp passes them on, and the retry rule ignores both alike)."""
    try:
        return resp.get_header(name)
    except ValueError:
        return "\ufffd"


def _dns_cause(exc: ConnectError) -> str | None:
    """The resolver's own words if reqwest's lookup failed, else None."""
    causes = [c["message"] for c in exc.details.get("causes") or ()]
    return causes[-1] if "dns error" in causes else None


class ReqwestSender:
    """Sends every attempt with pyreqwest, pinning each name to an address it checked."""

    def __init__(
        self,
        *,
        allow_private: bool,
        dns_ttl: float = 10,
        max_clients: int = 512,
        extra_ca: bytes | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.dns_ttl = dns_ttl
        self.max_clients = max_clients
        self._extra_ca = extra_ca
        # Private targets allowed, or an IP literal: reqwest connects where the URL says.
        self._shared = self._build(None)
        self._pinned: OrderedDict[tuple[str, int], _Pinned] = OrderedDict()
        self._retired: list[_Pinned] = []
        # One lookup per name at a time; everyone sending there waits for it.
        self._lookups: dict[tuple[str, int], asyncio.Future[str]] = {}
        self._swept = 0.0
        # The clock DNS answers and idleness are timed with (a test may set its own).
        self.clock = time.monotonic

    def _build(self, pin: tuple[str, str, int] | None) -> Client:
        builder = (
            ClientBuilder()
            .follow_redirects(False)
            # Our headers go out as spelled, as aiohttp sends them (pyreqwest title-cases).
            .http1_lower_case_headers()
            .no_proxy()
            .user_agent(USER_AGENT)
            .pool_idle_timeout(POOL_IDLE)
            .gzip(False)
            .brotli(False)
            .zstd(False)
            .deflate(False)
        )
        if self._extra_ca is not None:
            builder = builder.add_root_certificate_pem(self._extra_ca)
        if pin is not None:
            builder = builder.resolve(*pin)
        return builder.build()

    async def send(
        self, *, url: URL, headers: dict[str, str], body: bytes, timeout: float
    ) -> AttemptResult:
        """POST ``body`` to ``url`` and classify what happened; never raises for network
        trouble."""
        started_at = datetime.now(UTC)
        t0 = time.perf_counter()
        status: int | None = None
        text: str | None = None
        error: str | None = None
        kind: str | None = None
        retry_after: str | None = None
        pinned: _Pinned | None = None
        try:
            target = Url(str(url))
            client = self._shared
            if not self.allow_private:
                domain = target.domain
                if domain is None:
                    refuse_literal(target.host_str or "")
                else:
                    pinned = await self._client_for(domain, target.port_or_known_default, timeout)
                    pinned.busy += 1
                    client = pinned.client
            left = timeout - (time.perf_counter() - t0)
            if left <= 0:
                raise TimeoutError
            async with (
                client.post(target)
                .headers(headers)
                .body_bytes(body)
                .timeout(timedelta(seconds=left))
                .streamed_read_buffer_limit(RESPONSE_BODY_LIMIT)
                .build_streamed() as resp
            ):
                status = resp.status
                retry_after = _header(resp, "Retry-After")
                raw = await resp.body_reader.read(RESPONSE_BODY_LIMIT)
                data = _decoded(bytes(raw or b""), _header(resp, "Content-Encoding"))
                text = data.decode("utf-8", "replace").replace("\x00", "")
        except BlockedTarget as exc:
            kind, error = "blocked", scrub(f"blocked: {exc}", url)
        except socket.gaierror as exc:
            kind, error = "connection", dns_failed(url, exc)
        except TimeoutError:
            kind, error = "timeout", timed_out(timeout, url)
        except ConnectError as exc:
            cause = _dns_cause(exc)
            kind = "connection"
            error = describe_error(exc, url) if cause is None else dns_failed(url, cause)
        except (PyreqwestError, OSError, ValueError) as exc:
            kind, error = "connection", describe_error(exc, url)
        finally:
            if pinned is not None:
                pinned.busy -= 1
            if self._retired:
                await self._close_retired()
        duration_ms = (time.perf_counter() - t0) * 1000
        return AttemptResult(started_at, duration_ms, status, text, error, kind, retry_after)

    async def _client_for(self, domain: str, port: int | None, timeout: float) -> _Pinned:
        """The client pinned to ``domain``'s checked address, resolving it when due."""
        port = port or 0
        key = (domain, port)
        now = self.clock()
        entry = self._pinned.get(key)
        if entry is not None and now < entry.expires:
            self._pinned.move_to_end(key)
            entry.last_used = now
            return entry
        lookup = self._lookups.get(key)
        if lookup is None:
            lookup = asyncio.ensure_future(self._lookup(domain, port))
            self._lookups[key] = lookup
            lookup.add_done_callback(lambda done: self._looked_up(key, done))
        async with asyncio.timeout(timeout):
            # Shielded: one attempt's timeout must not cancel the lookup the others wait on.
            ip = await asyncio.shield(lookup)
        now = self.clock()
        entry = self._pinned.get(key)  # another attempt may have replaced it meanwhile
        if entry is not None and entry.ip == ip:
            entry.expires = max(entry.expires, now + self.dns_ttl)
        else:
            if entry is not None:
                self._retired.append(entry)
            entry = _Pinned(self._build((domain, ip, port)), ip, now + self.dns_ttl, now)
            self._pinned[key] = entry
        self._pinned.move_to_end(key)
        entry.last_used = now
        while len(self._pinned) > self.max_clients:
            _, old = self._pinned.popitem(last=False)
            self._retired.append(old)
        if now - self._swept > CLIENT_IDLE_SECONDS / 4:
            self._swept = now
            for name, idle in list(self._pinned.items()):
                if idle.busy == 0 and now - idle.last_used > CLIENT_IDLE_SECONDS:
                    del self._pinned[name]
                    self._retired.append(idle)
        return entry

    def _looked_up(self, key: tuple[str, int], done: asyncio.Future[str]) -> None:
        self._lookups.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved: every waiter may have timed out already

    async def _lookup(self, domain: str, port: int) -> str:
        """``domain``'s first address, once every address it has is checked."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(domain, port, type=socket.SOCK_STREAM)
        addresses = [str(info[4][0]) for info in infos]
        refuse_private(domain, addresses)
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "no address")
        # reqwest is given one address: the first, in the order getaddrinfo prefers.
        return addresses[0]

    async def _close_retired(self) -> None:
        """Close the replaced or evicted clients no attempt is using any more."""
        done = [e for e in self._retired if e.busy == 0]
        self._retired = [e for e in self._retired if e.busy > 0]
        for entry in done:
            await entry.client.close()

    @property
    def clients(self) -> int:
        """How many pinned clients are kept (each has its own keep-alive pool)."""
        return len(self._pinned)

    async def close(self) -> None:
        """Close every client and its connections."""
        self._retired.extend(self._pinned.values())
        self._pinned.clear()
        for entry in self._retired:
            await entry.client.close()
        self._retired.clear()
        await self._shared.close()
