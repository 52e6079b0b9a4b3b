"""Sending one attempt: the HTTP request a receiver gets, and what came back.

A :class:`Sender` serves every delivery of one engine. ``DISPATCHER_HTTP_CLIENT`` picks the
implementation (``dispatcher.http_client``): pyreqwest (``sender_reqwest``, the default: 0.6x
aiohttp's CPU per request) or aiohttp (``sender_aiohttp``). Both keep the same guarantees:
keep-alive connections, no connection cap of their own (the engine limits concurrency), DNS
answers cached ~10 s, private addresses refused after DNS unless
``DISPATCHER_ALLOW_PRIVATE_TARGETS`` (so rebinding a name after registration cannot reach the
inside network), HTTPS verified against the hostname, no redirects, no proxies, no cookies, at
most 4 KiB of the answer read.

An attempt's error text names the host, never the URL's path, query or credentials (a Slack
style hook carries its secret there): it is stored, shown by the API and logged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import aiohttp

import dispatcher.allocator  # noqa: F401 (first: mimalloc reads its settings as pyreqwest loads)

# isort: split
from pyreqwest.exceptions import DetailedPyreqwestError
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
    if isinstance(exc, aiohttp.ClientResponseError):
        detail = exc.message  # its str() carries url='...'; its message alone does not
    elif isinstance(exc, DetailedPyreqwestError):
        detail = _pyreqwest_detail(exc)
    else:
        detail = str(exc)
    detail = " ".join(str(detail).split())
    text = f"{type(exc).__name__} from {host_of(url)}" + (f": {detail}" if detail else "")
    return scrub(text, url)[:ERROR_LIMIT]


def _pyreqwest_detail(exc: DetailedPyreqwestError) -> str:
    # The message is a bare "connection error"; the causes say what happened, outermost
    # first. The outermost names the whole URL and nothing else.
    causes = [c["message"] for c in exc.details.get("causes") or ()]
    causes = [c for c in causes if not c.startswith("error sending request for url")]
    return ": ".join([exc.message, *causes]) if causes else exc.message


def timed_out(timeout: float, url: URL) -> str:
    """The error text of an attempt that ran out of time."""
    return f"timed out after {timeout:g}s waiting for {host_of(url)}"


def dns_failed(url: URL, reason: object) -> str:
    """The error text of a name that did not resolve."""
    return scrub(f"DNS lookup failed for {host_of(url)}: {reason}", url)


class BlockedTarget(OSError):
    """The target resolves to an address we may not call."""


def refuse_literal(host: str) -> None:
    """Raise :class:`BlockedTarget` if ``host`` is an IP literal we may not call."""
    literal = targets.literal_address(host)
    if literal is not None and targets.is_forbidden_address(literal):
        raise BlockedTarget(f"{literal} is a private or reserved address")


def refuse_private(host: str, addresses: Iterable[str]) -> None:
    """Raise :class:`BlockedTarget` if any address ``host`` resolved to is forbidden."""
    for address in addresses:
        addr = targets.literal_address(address)
        if addr is not None and targets.is_forbidden_address(addr):
            # Not the address: the attempt's error is shown to the webhook's tenant.
            raise BlockedTarget(f"{host} resolves to a private or reserved address")


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


class Sender(Protocol):
    """What the engine sends with: one per engine, closed when it stops."""

    allow_private: bool

    async def send(
        self, *, url: URL, headers: dict[str, str], body: bytes, timeout: float
    ) -> AttemptResult:
        """POST ``body`` to ``url`` and classify what happened; never raises for network
        trouble."""
        ...

    async def close(self) -> None:
        """Close every connection."""
        ...
