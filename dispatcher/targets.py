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


# Prefixes whose addresses carry an IPv4 address a translator or tunnel would reach.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215, local use only
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated ::a.b.c.d


def embedded_ipv4(addr: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address embeds (mapped, compatible, 6to4, NAT64, Teredo)."""
    if addr.ipv4_mapped is not None:
        return [addr.ipv4_mapped]
    if addr.sixtofour is not None:
        return [addr.sixtofour]
    if addr.teredo is not None:
        return list(addr.teredo)  # server and (de-obfuscated) client
    if addr in _NAT64 or addr in _NAT64_LOCAL or addr in _IPV4_COMPATIBLE:
        return [ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)]
    return []


def _not_global_unicast(addr: IPAddress) -> bool:
    return (
        addr.is_loopback
        or addr.is_private
        or addr.is_link_local
        or addr.is_multicast
        or addr.is_reserved
        or addr.is_unspecified
        or not addr.is_global
    )


def is_forbidden_address(addr: IPAddress) -> bool:
    """True for any address that is not globally routable unicast.

    An IPv6 address that embeds an IPv4 one is judged by that too: 6to4 ``2002:7f00:1::`` is
    "global" to ``ipaddress`` but a relay delivers it to 127.0.0.1.
    """
    if isinstance(addr, ipaddress.IPv4Address):
        return _not_global_unicast(addr)
    embedded = embedded_ipv4(addr)
    if addr.ipv4_mapped is not None or addr in _NAT64:
        # The prefix only says "IPv4 through a translator" (DNS64 hands these out for public
        # names): the IPv4 address decides.
        return _not_global_unicast(embedded[0])
    if addr.is_site_local or addr in _NAT64_LOCAL:
        return True  # fec0::/10 (deprecated, still routed inside some networks); local NAT64
    if any(_not_global_unicast(v4) for v4 in embedded):
        return True
    return _not_global_unicast(addr)


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
            # The address itself is not named: whoever registers a webhook (a tenant, too)
            # must not learn what the operator's internal names resolve to.
            return f"{host} resolves to a private, loopback or reserved address"
    return None
