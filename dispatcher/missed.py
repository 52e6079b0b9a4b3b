"""Send what was missed: deliveries for past events a webhook matches now but never got.

Events sent while a webhook was disabled, or before it subscribed to their type, have no
delivery row for it. :func:`replay_missing` walks the events since a time in keyset order, a
batch per statement, matches each batch in Python with the same :class:`Matcher` fan-out uses,
and inserts the missing rows with ``ON CONFLICT DO NOTHING`` on (event, webhook): memory stays
at one batch however long the window, and a second run (or a run after a crash half-way)
creates nothing twice.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from dispatcher import ids
from dispatcher.matching import OPERATIONAL_PREFIX, Matcher
from dispatcher.store import Executor
from dispatcher.store.deliveries import Q

BATCH = 1_000
# Pings stored before events recorded ``sent_to`` (migration 0007) are still known by type.
PING = "webhook.ping"


def wanted(
    webhook_id: str,
    matcher: Matcher,
    disabled_types: Collection[str],
    event_type: str,
    about: str | None,
    sent_to: str | None = None,
) -> bool:
    """Would fan-out send an event of ``event_type`` (about webhook ``about``) to it now?

    A ping or a test send (``sent_to`` set) was addressed to one webhook: no other webhook
    ever "missed" it.
    """
    if sent_to is not None or event_type == PING or event_type in disabled_types:
        return False
    if event_type.startswith(OPERATIONAL_PREFIX) and about == webhook_id:
        return False  # operational events never go to the webhook they are about
    return matcher.matches(event_type)


async def replay_missing(
    conn: Executor,
    webhook_id: str,
    event_types: list[str],
    disabled_types: Collection[str],
    since: datetime,
    *,
    batch: int = BATCH,
    dry_run: bool = False,
    scope: str | None = None,
) -> int:
    """Create the webhook's missing deliveries for events since ``since``; return how many.

    Only its tenant's events are considered (for an operator's webhook, the operator's and
    operational events about any webhook), found in SQL from the webhook itself, within
    ``scope``. With ``dry_run`` nothing is created: the answer is how many would be (the
    console's preview).
    """
    owner = await conn.fetch(Q["replay_webhook_tenant"], webhook_id, scope)
    if not owner:
        return 0  # gone, or not within scope
    tenant: str | None = owner[0]["tenant_id"]
    # Two statements, not one with a CASE on the tenant: that could use no index and read every
    # tenant's events in the window.
    tenant_args: tuple[str, ...] = (tenant,) if tenant is not None else ()
    query = Q["events_since_page_tenant"] if tenant is not None else Q["events_since_page_operator"]
    matcher = Matcher.compile(event_types)
    created = 0
    after: tuple[datetime, str] | None = None
    while True:
        rows = await conn.fetch(
            query,
            since,
            after[0] if after else None,
            after[1] if after else None,
            batch,
            *tenant_args,
        )
        if not rows:
            return created
        after = (rows[-1]["created_at"], rows[-1]["id"])
        chosen = [
            (r["id"], r["type"])
            for r in rows
            if wanted(webhook_id, matcher, disabled_types, r["type"], r["about"], r["sent_to"])
        ]
        if chosen and dry_run:
            created += await conn.fetchval(
                Q["count_missing"], [event_id for event_id, _ in chosen], webhook_id
            )
        elif chosen:
            result = await conn.execute(
                Q["insert_missing"],
                [ids.delivery_id() for _ in chosen],
                [event_id for event_id, _ in chosen],
                [event_type for _, event_type in chosen],
                webhook_id,
            )
            created += int(result.split()[-1])
        if len(rows) < batch:
            return created
