"""Sending one attempt: the HTTP request a receiver gets, and what came back.

One shared aiohttp ``ClientSession`` serves every delivery: keep-alive connections, no global
connection cap (the engine limits concurrency), a DNS cache, and a resolver that refuses
private addresses after DNS unless ``DISPATCHER_ALLOW_PRIVATE_TARGETS``, so rebinding a name
after registration cannot reach the inside network. Redirects are never followed.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from dispatcher import __version__, signing, targets

USER_AGENT = f"Dispatcher/{__version__}"
RESPONSE_BODY_LIMIT = 4096


class BlockedTarget(OSError):
    """The target resolves to an address we may not call."""


class GuardedResolver(AbstractResolver):
    """Resolve with the default resolver, then refuse private/loopback/reserved addresses."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve ``host``; raise :class:`BlockedTarget` if any address is forbidden."""
        results = await self._inner.resolve(host, port, family)
        for r in results:
            addr = targets.literal_address(r["host"])
            if addr is not None and targets.is_forbidden_address(addr):
                raise BlockedTarget(f"{host} resolves to {addr}, a private or reserved address")
        return results

    async def close(self) -> None:
        """Close the wrapped resolver."""
        await self._inner.close()


def create_session(allow_private: bool) -> aiohttp.ClientSession:
    """The one client session the engine sends with."""
    connector = aiohttp.TCPConnector(
        limit=0,
        limit_per_host=0,
        ttl_dns_cache=10,
        keepalive_timeout=30,
        resolver=None if allow_private else GuardedResolver(),
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=True,
        skip_auto_headers=("Accept-Encoding",),
    )


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one HTTP attempt produced."""

    started_at: datetime
    duration_ms: float
    status_code: int | None
    response_body: str | None
    error: str | None
    # None for an HTTP answer; else "timeout", "connection" or "blocked".
    error_kind: str | None
    retry_after: str | None


def _timeout(seconds: float, _cache: dict[float, aiohttp.ClientTimeout] = {}) -> Any:  # noqa: B006
    found = _cache.get(seconds)
    if found is None:
        found = _cache[seconds] = aiohttp.ClientTimeout(total=seconds)
    return found


def build_headers(
    extra: tuple[tuple[str, str], ...],
    secrets: list[str],
    msg_id: str,
    when: datetime,
    body: bytes,
) -> dict[str, str]:
    """The request headers: envelope type, user agent, the webhook's own, and the signature."""
    headers = dict(extra)
    headers["content-type"] = "application/json"
    headers["user-agent"] = USER_AGENT
    headers["webhook-id"] = msg_id
    headers["webhook-timestamp"] = str(int(when.timestamp()))
    headers["webhook-signature"] = signing.sign(secrets, msg_id, when, body)
    return headers


async def send(
    session: aiohttp.ClientSession,
    *,
    url: URL,
    headers: dict[str, str],
    body: bytes,
    timeout: float,
    allow_private: bool,
) -> AttemptResult:
    """POST ``body`` to ``url`` and classify what happened; never raises for network trouble."""
    started_at = datetime.now(UTC)
    t0 = time.perf_counter()
    status: int | None = None
    text: str | None = None
    error: str | None = None
    kind: str | None = None
    retry_after: str | None = None
    try:
        target = url
        if not allow_private:
            literal = targets.literal_address(target.host or "")
            if literal is not None and targets.is_forbidden_address(literal):
                raise BlockedTarget(f"{literal} is a private or reserved address")
        async with session.post(
            target,
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=_timeout(timeout),
        ) as resp:
            status = resp.status
            retry_after = resp.headers.get("Retry-After")
            raw = await resp.content.read(RESPONSE_BODY_LIMIT)
            text = raw.decode("utf-8", "replace").replace("\x00", "")
    except BlockedTarget as exc:
        kind, error = "blocked", f"blocked: {exc}"
    except aiohttp.ClientConnectorDNSError as exc:
        if isinstance(exc.os_error, BlockedTarget):
            kind, error = "blocked", f"blocked: {exc.os_error}"
        else:
            kind, error = "connection", f"DNS lookup failed: {exc.os_error}"
    except TimeoutError:
        kind, error = "timeout", f"timed out after {timeout:g}s"
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        kind, error = "connection", f"{type(exc).__name__}: {exc}"[:500]
    duration_ms = (time.perf_counter() - t0) * 1000
    return AttemptResult(started_at, duration_ms, status, text, error, kind, retry_after)
