"""The aiohttp sender: the fallback client (``DISPATCHER_HTTP_CLIENT=aiohttp``).

One ``ClientSession`` for every delivery, with a resolver that refuses private addresses after
DNS (so a name rebound since registration cannot reach the inside network) and answers cached
for ``dns_ttl`` seconds. Redirects are never followed, cookies never kept.
"""

from __future__ import annotations

import socket
import ssl
import time
from datetime import UTC, datetime

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
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


class GuardedResolver(AbstractResolver):
    """Resolve with the default resolver, then refuse private/loopback/reserved addresses."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve ``host``; raise :class:`BlockedTarget` if any address is forbidden."""
        results = await self._inner.resolve(host, port, family)
        refuse_private(host, (r["host"] for r in results))
        return results

    async def close(self) -> None:
        """Close the wrapped resolver."""
        await self._inner.close()


class AiohttpSender:
    """Sends every attempt through one aiohttp ``ClientSession``."""

    def __init__(
        self, *, allow_private: bool, dns_ttl: float = 10, extra_ca: bytes | None = None
    ) -> None:
        self.allow_private = allow_private
        tls: ssl.SSLContext | bool = True
        if extra_ca is not None:
            # The system's roots and these (tests use their own CA).
            tls = ssl.create_default_context(cadata=extra_ca.decode())
            tls.load_default_certs()
        connector = aiohttp.TCPConnector(
            limit=0,
            limit_per_host=0,
            use_dns_cache=dns_ttl > 0,
            ttl_dns_cache=int(dns_ttl) if dns_ttl > 0 else None,
            keepalive_timeout=30,
            resolver=None if allow_private else GuardedResolver(),
            ssl=tls,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": USER_AGENT},
            auto_decompress=True,
            skip_auto_headers=("Accept-Encoding",),
            trust_env=False,
        )
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

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
        limit = self._timeouts.get(timeout)
        if limit is None:
            limit = self._timeouts[timeout] = aiohttp.ClientTimeout(total=timeout)
        try:
            if not self.allow_private:
                refuse_literal(url.host or "")
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False, timeout=limit
            ) as resp:
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
                raw = await resp.content.read(RESPONSE_BODY_LIMIT)
                text = raw.decode("utf-8", "replace").replace("\x00", "")
        except BlockedTarget as exc:
            kind, error = "blocked", scrub(f"blocked: {exc}", url)
        except aiohttp.ClientConnectorDNSError as exc:
            if isinstance(exc.os_error, BlockedTarget):
                kind, error = "blocked", scrub(f"blocked: {exc.os_error}", url)
            else:
                kind, error = "connection", dns_failed(url, exc.os_error)
        except TimeoutError:
            kind, error = "timeout", timed_out(timeout, url)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            kind, error = "connection", describe_error(exc, url)
        duration_ms = (time.perf_counter() - t0) * 1000
        return AttemptResult(started_at, duration_ms, status, text, error, kind, retry_after)

    async def close(self) -> None:
        """Close the session and its connections."""
        await self._session.close()
