"""The portal's per-webhook numbers (success rate, unfinished deliveries) are read inside the
signed-in tenant: another tenant's webhook id counts nothing."""

from __future__ import annotations

import pytest

from admin.queries import WINDOW_SECONDS
from dispatcher.app_keys import POOL
from dispatcher.store import portal as store
from tests.helpers import Client, eventually
from tests.test_portal import sign_in, two_tenants

pytestmark = pytest.mark.timeout(60)


async def test_another_tenants_webhook_counts_nothing(client: Client) -> None:
    found = await two_tenants(client)
    pool = client.app[POOL]
    acme, globex = found["acme"]["webhook"]["id"], found["globex"]["webhook"]["id"]
    ids = [acme, globex]

    async def both_attempted() -> bool:
        rates = {
            **await store.success_rates(pool, "acme", ids, WINDOW_SECONDS),
            **await store.success_rates(pool, "globex", ids, WINDOW_SECONDS),
        }
        return set(rates) == {acme, globex}

    await eventually(both_attempted, what="an attempt to each webhook")
    assert set(await store.success_rates(pool, "acme", ids, WINDOW_SECONDS)) == {acme}
    assert set(await store.success_rates(pool, "globex", ids, WINDOW_SECONDS)) == {globex}
    # Nothing answers on port 9: each webhook's delivery is waiting for its retry.
    assert await store.unfinished(pool, "globex", globex) == 1
    assert await store.unfinished(pool, "acme", globex) == 0
    assert await store.unfinished(pool, "acme", acme) == 1

    # The portal's pages still show the tenant's own numbers.
    portal = await sign_in(client, "acme")
    page = await portal.get(f"/portal/webhooks/{acme}/delete")
    assert page.status == 200
    assert "Its 1 unfinished delivery" in await page.text()
