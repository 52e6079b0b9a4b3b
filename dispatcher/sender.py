"""Sending one attempt: the HTTP request a receiver gets, and what came back.

One shared aiohttp ``ClientSession`` serves every delivery: keep-alive connections, no global
connection cap (the engine limits concurrency), a DNS cache, and a resolver that refuses
private addresses after DNS unless ``DISPATCHER_ALLOW_PRIVATE_TARGETS``, so rebinding a name
after registration cannot reach the inside network. Redirects are never followed.

An attempt's error text names the host, never the URL's path, query or credentials (a Slack
style hook carries its secret there): it is stored, shown by the API and logged.
"""

from __future__ import annotations

import re
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


# Anything URL-shaped in an error text: kept up to the host, the rest (path, query) dropped,
# and credentials before an "@" too.
_URL_IN_TEXT = re.compile(
    r"(?i)\b([a-z][a-z0-9+.-]*://)(?:[^\s/?#@'\"<>]*@)?([^\s/?#'\"<>]*)[^\s'\"<>]*"
)
ERROR_LIMIT = 500


def host_of(url: URL) -> str:
    """``host`` or ``host:port`` of ``url``, what an error may name."""
    host = url.host or "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{url.explicit_port}" if url.explicit_port is not None else host


def scrub(text: str, url: URL) -> str:
    """``text`` without ``url``'s path, query or credentials, nor any other URL's."""
    text = _URL_IN_TEXT.sub(r"\1\2", text)
    # The parts also appear bare: "Cannot POST /hooks/T0/secret" from a receiver.
    parts = {url.raw_path_qs, url.path_qs, url.raw_query_string, url.query_string}
    if url.path != "/":
        parts |= {url.raw_path, url.path}
    parts |= {p for p in (url.raw_user, url.raw_password, url.user, url.password) if p}
    # Shorter bare fragments ("/", "a=1") are no secret, and replacing them would garble.
    for part in sorted((p for p in parts if len(p) >= 3), key=len, reverse=True):
        text = text.replace(part, "/[redacted]" if part.startswith("/") else "[redacted]")
    return text


def describe_error(exc: BaseException, url: URL) -> str:
    """A one-line error text: the exception's type and message, naming only the host."""
    # ClientResponseError's str() carries url='...'; its message alone does not.
    detail = exc.message if isinstance(exc, aiohttp.ClientResponseError) else str(exc)
    detail = " ".join(str(detail).split())
    text = f"{type(exc).__name__} from {host_of(url)}" + (f": {detail}" if detail else "")
    return scrub(text, url)[:ERROR_LIMIT]


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
                # Not the address: the attempt's error is shown to the webhook's tenant.
                raise BlockedTarget(f"{host} resolves to a private or reserved address")
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
    # None for an HTTP answer; else "timeout", "connection" or "blocked" ("error": the engine
    # broke making or classifying the attempt).
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
        kind, error = "blocked", scrub(f"blocked: {exc}", url)
    except aiohttp.ClientConnectorDNSError as exc:
        if isinstance(exc.os_error, BlockedTarget):
            kind, error = "blocked", scrub(f"blocked: {exc.os_error}", url)
        else:
            error = scrub(f"DNS lookup failed for {host_of(url)}: {exc.os_error}", url)
            kind = "connection"
    except TimeoutError:
        kind, error = "timeout", f"timed out after {timeout:g}s waiting for {host_of(url)}"
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        kind, error = "connection", describe_error(exc, url)
    duration_ms = (time.perf_counter() - t0) * 1000
    return AttemptResult(started_at, duration_ms, status, text, error, kind, retry_after)
