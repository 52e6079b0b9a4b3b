"""The SSRF rule: which addresses a webhook may target, including IPv4 hidden inside IPv6."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from dispatcher import targets
from tests.helpers import ADMIN, webhook_body

FORBIDDEN = [
    # plain private/loopback/link-local, as before
    "127.0.0.1",
    "10.0.0.1",
    "169.254.169.254",
    "::1",
    "fe80::1",
    "fc00::1",
    # site-local (deprecated, still routed inside some networks)
    "fec0::1",
    "feff:ffff::1",
    # 6to4 embedding private IPv4
    "2002:7f00:1::",
    "2002:a9fe:a9fe::",
    "2002:0a00:0001::",
    "2002:c0a8:0101::1",
    # NAT64 well-known prefix to private IPv4, and the local-use prefix
    "64:ff9b::7f00:1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::a00:1",
    "64:ff9b:1::808:808",
    # Teredo: public server, private client (client is stored obfuscated)
    "2001:0:4136:e378:8000:63bf:f5ff:fffe",
    # Teredo: private server
    "2001:0:a00:1::1",
    # IPv4-mapped and IPv4-compatible
    "::ffff:127.0.0.1",
    "::ffff:10.1.2.3",
    "::127.0.0.1",
    "::10.0.0.1",
    "::",
]

ALLOWED = [
    "93.184.216.34",
    "2606:4700::1",
    "2002:5db8:d822::1",  # 6to4 of 93.184.216.34
    "64:ff9b::5db8:d822",  # NAT64 of 93.184.216.34 (what DNS64 answers for a public name)
    "::ffff:93.184.216.34",
]


@pytest.mark.parametrize("text", FORBIDDEN)
def test_forbidden_addresses(text: str) -> None:
    assert targets.is_forbidden_address(ipaddress.ip_address(text))


@pytest.mark.parametrize("text", ALLOWED)
def test_public_addresses_are_allowed(text: str) -> None:
    assert not targets.is_forbidden_address(ipaddress.ip_address(text))


@pytest.mark.parametrize(
    ("text", "embedded"),
    [
        ("2002:7f00:1::", ["127.0.0.1"]),
        ("2002:a9fe:a9fe::", ["169.254.169.254"]),
        ("64:ff9b::a00:1", ["10.0.0.1"]),
        ("64:ff9b:1::c0a8:101", ["192.168.1.1"]),
        ("::ffff:10.0.0.1", ["10.0.0.1"]),
        ("::10.0.0.1", ["10.0.0.1"]),
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", ["65.54.227.120", "10.0.0.1"]),
        ("2606:4700::1", []),
    ],
)
def test_embedded_ipv4_is_decoded(text: str, embedded: list[str]) -> None:
    addr = ipaddress.IPv6Address(text)
    assert targets.embedded_ipv4(addr) == [ipaddress.IPv4Address(a) for a in embedded]


@pytest.mark.parametrize(
    "url",
    [
        "http://[fec0::1]/",
        "http://[2002:7f00:1::]/",
        "http://[2002:a9fe:a9fe::]/latest/meta-data",
        "http://[2002:0a00:0001::]:8080/",
        "http://[64:ff9b::7f00:1]/",
        "http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/",
        "http://[::10.0.0.1]/",
    ],
)
async def test_registration_refuses_ipv6_forms_of_private_targets(
    make_client: Any, url: str
) -> None:
    client = await make_client(allow_private_targets=False)
    resp = await client.post("/v1/webhooks", json=webhook_body(url=url), headers=ADMIN)
    assert resp.status == 422, await resp.text()
    body = await resp.json()
    assert [e["field"] for e in body["errors"]] == ["url"]
    listed = await (await client.get("/v1/webhooks", headers=ADMIN)).json()
    assert listed["data"] == []
