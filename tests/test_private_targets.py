"""The SSRF rule: which addresses a webhook may target, including IPv4 hidden inside IPv6; and
private targets refused again at delivery time, after DNS."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import asyncpg
import pytest
from aiohttp.abc import ResolveResult

from dispatcher import targets
from dispatcher.sender import BlockedTarget
from dispatcher.sender_aiohttp import GuardedResolver
from tests.helpers import (
    ADMIN,
    MakeClient,
    attempts_of,
    create_webhook,
    eventually,
    idle,
    publish,
    webhook_body,
)
from tests.receiver import Receiver

pytestmark = pytest.mark.timeout(60)

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


# --------------------------------------------------------------------------------------------
# private targets are refused again at delivery time, after DNS


@pytest.mark.parametrize("http_client", ["pyreqwest", "aiohttp"])
async def test_private_target_is_blocked_at_delivery_time_by_a_strict_instance(
    receiver: Receiver, make_client: MakeClient, db: asyncpg.Connection, http_client: str
) -> None:
    """Registered where private targets were allowed; delivered from an instance where they
    are not (as if the name had been rebound since registration): every attempt is refused."""
    lenient = await make_client(allow_private_targets=True)
    port = receiver.port
    urls = {
        "literal": f"http://127.0.0.1:{port}/literal",
        "name": f"http://localhost:{port}/name",
        "mapped": f"http://[::ffff:127.0.0.1]:{port}/mapped",
        "loopback6": f"http://[::1]:{port}/loopback6",
        # Non-canonical IPv4 spellings: aiohttp refuses the URL itself (not "blocked", but it
        # must not get through either).
        "short": f"http://127.1:{port}/short",
        "decimal": f"http://2130706433:{port}/decimal",
    }
    hooks = {k: await create_webhook(lenient, url=u) for k, u in urls.items()}
    await lenient.close()  # only the strict instance is left to send

    strict = await make_client(
        allow_private_targets=False,
        http_client=http_client,
        max_retries=1,
        retry_base_seconds=0.05,
        retry_max_delay_seconds=0.1,
        failures_before_disable=-1,
    )
    # Registering the same URLs there is refused outright.
    resp = await strict.post("/v1/webhooks", json=webhook_body(url=urls["name"]), headers=ADMIN)
    assert resp.status == 422, await resp.text()

    sent = await publish(strict)
    assert sent["deliveries"] == len(urls)

    async def all_failed() -> list[asyncpg.Record] | None:
        rows = await db.fetch("SELECT * FROM deliveries WHERE event_id = $1", sent["id"])
        return rows if rows and all(r["status"] == "failed" for r in rows) else None

    await eventually(all_failed, 10, "every delivery to fail")
    await idle(strict)
    for kind, hook in hooks.items():
        attempts = await attempts_of(db, hook["id"])
        assert len(attempts) == 2, (kind, attempts)
        for attempt in attempts:
            assert attempt["status_code"] is None, kind
            if kind not in ("short", "decimal"):
                assert "blocked" in (attempt["error"] or ""), (kind, attempt["error"])
    assert receiver.requests == []
    metrics_text = await (await strict.get("/metrics")).text()
    assert 'dispatcher_attempts_total{result="blocked"' in metrics_text


@pytest.mark.parametrize("http_client", ["pyreqwest", "aiohttp"])
async def test_name_rebound_to_a_private_address_after_registration_is_blocked(
    receiver: Receiver,
    make_client: MakeClient,
    db: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
    http_client: str,
) -> None:
    """DNS rebinding on one strict instance: public at registration, loopback at delivery."""
    name = "rebind.dispatcher-test.example"
    answer_with = {"address": "93.184.216.34"}
    real = socket.getaddrinfo

    def fake_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in (name, name.encode()):
            return real(answer_with["address"], port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    client = await make_client(
        allow_private_targets=False,
        http_client=http_client,
        max_retries=0,
        failures_before_disable=-1,
    )
    hook = await create_webhook(client, url=f"http://{name}:{receiver.port}/rebound")

    answer_with["address"] = "127.0.0.1"  # the name now points inside
    sent = await publish(client)
    assert sent["deliveries"] == 1

    async def attempted() -> list[asyncpg.Record] | None:
        return await attempts_of(db, hook["id"]) or None

    [attempt] = await eventually(attempted, 10, "the attempt to be recorded")
    assert attempt["status_code"] is None
    assert "blocked" in attempt["error"], attempt["error"]
    # The name, never the address it resolves to: a tenant must not map the inside network.
    assert name in attempt["error"] and "127.0.0.1" not in attempt["error"]
    await idle(client)
    assert receiver.requests == []


async def test_registration_refusal_does_not_say_what_a_name_resolves_to(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "db.internal.dispatcher-test.example"
    real = socket.getaddrinfo

    def fake_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in (name, name.encode()):
            return real("10.1.2.3", port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    client = await make_client(allow_private_targets=False)
    resp = await client.post(
        "/v1/webhooks", json=webhook_body(url=f"https://{name}/hook"), headers=ADMIN
    )
    assert resp.status == 422, await resp.text()
    text = await resp.text()
    assert "private" in text and name in text
    assert "10.1.2.3" not in text


class FakeResolver:
    """Answers with fixed addresses."""

    def __init__(self, hosts: list[str]) -> None:
        self.hosts = hosts

    async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=h,
                port=port,
                family=socket.AF_INET6 if ":" in h else socket.AF_INET,
                proto=0,
                flags=0,
            )
            for h in self.hosts
        ]

    async def close(self) -> None:
        return None


def guarded(hosts: list[str]) -> GuardedResolver:
    resolver = GuardedResolver()
    resolver._inner = FakeResolver(hosts)  # type: ignore[assignment]
    return resolver


BLOCKED_ADDRESSES = [
    "127.0.0.1",  # loopback
    "127.255.255.254",
    "10.1.2.3",  # RFC 1918
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",  # carrier-grade NAT
    "0.0.0.0",  # unspecified  # noqa: S104
    "169.254.169.254",  # link-local (cloud metadata)
    "224.0.0.1",  # multicast
    "239.255.255.250",
    "255.255.255.255",  # broadcast / reserved
    "::1",  # IPv6 loopback
    "::",
    "fc00::1",  # unique local
    "fd12:3456::1",
    "fe80::1",  # link-local
    "fe80::1%1",  # link-local with a scope id
    "ff02::1",  # multicast
    "ff0e::1",
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:10.0.0.1",  # IPv4-mapped private
    "::ffff:169.254.169.254",  # IPv4-mapped link-local
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
]
ALLOWED_ADDRESSES = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:93.184.216.34"]


@pytest.mark.parametrize("address", BLOCKED_ADDRESSES)
async def test_guarded_resolver_refuses_private_addresses(address: str) -> None:
    with pytest.raises(BlockedTarget, match="private or reserved"):
        await guarded([address]).resolve("example.com", 443)


@pytest.mark.parametrize("address", ALLOWED_ADDRESSES)
async def test_guarded_resolver_passes_public_addresses(address: str) -> None:
    [result] = await guarded([address]).resolve("example.com", 443)
    assert ipaddress.ip_address(result["host"]) == ipaddress.ip_address(address)
    assert result["port"] == 443


async def test_guarded_resolver_refuses_when_any_address_is_private() -> None:
    with pytest.raises(BlockedTarget):
        await guarded(["93.184.216.34", "10.0.0.1"]).resolve("example.com", 80)
    with pytest.raises(BlockedTarget):
        await guarded(["2606:4700:4700::1111", "::ffff:127.0.0.1"]).resolve("example.com", 80)


async def test_guarded_resolver_with_the_real_resolver() -> None:
    resolver = GuardedResolver()
    try:
        with pytest.raises(BlockedTarget):
            await resolver.resolve("localhost", 80)
        with pytest.raises(BlockedTarget):
            await resolver.resolve("127.0.0.1", 80)
    finally:
        await resolver.close()
