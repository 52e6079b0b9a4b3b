"""Which webhook targets are allowed: the SSRF defence.

Unless ``DISPATCHER_ALLOW_PRIVATE_TARGETS`` is set, a URL whose host is (or resolves to) a
loopback, private, link-local, multicast, reserved or unspecified address is refused, both at
registration and again at delivery time, after DNS, so rebinding cannot reach the inside network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_forbidden_address(addr: IPAddress) -> bool:
    """True for any address that is not globally routable unicast."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return is_forbidden_address(addr.ipv4_mapped)
    return (
        addr.is_loopback
        or addr.is_private
        or addr.is_link_local
        or addr.is_multicast
        or addr.is_reserved
        or addr.is_unspecified
        or not addr.is_global
    )


def literal_address(host: str) -> IPAddress | None:
    """The address if ``host`` is an IP literal (brackets allowed), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    """All addresses ``host`` resolves to (empty when it does not resolve)."""
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    found: list[IPAddress] = []
    for info in infos:
        addr = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if addr not in found:
            found.append(addr)
    return found


async def forbidden_reason(host: str, port: int) -> str | None:
    """Why a target host may not be called, or None if it may."""
    host = host.rstrip(".")  # "127.0.0.1." and "localhost." name the same hosts
    if host.lower().rstrip(".") in ("localhost", "localhost.localdomain") or host.lower().endswith(
        ".localhost"
    ):
        return f"{host} is a loopback name"
    for addr in await resolve(host, port):
        if is_forbidden_address(addr):
            return f"{host} resolves to {addr}, a private, loopback or reserved address"
    return None
