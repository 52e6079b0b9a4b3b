"""Fan-out: which webhooks get a delivery for an event.

Reads only the in-memory :class:`~dispatcher.registry.Registry`: enabled webhooks whose
patterns match the type, none when the catalogue disables the type (not even a test send;
a ping always goes). An event with a tenant goes only to that tenant's webhooks, one without
only to the operator's. A ping goes to exactly one webhook; an operational event about a
webhook never goes to that webhook, and one about a tenant's webhook goes to the operator's
subscribers and that tenant's own.
"""

from __future__ import annotations

from dataclasses import dataclass

from dispatcher.registry import Registry, WebhookSpec


@dataclass(frozen=True, slots=True)
class Routing:
    """Overrides of the normal matching for one event."""

    only: str | None = None  # deliver to this webhook only (ping)
    exclude: str | None = None  # never to this webhook (operational events about it)
    # An operational event: the operator's subscribers too, besides the event's tenant's.
    operator_too: bool = False


DEFAULT = Routing()
PING = "webhook.ping"  # sent by POST /v1/webhooks/{id}/ping, whatever the catalogue says


def targets(
    registry: Registry,
    event_type: str,
    routing: Routing = DEFAULT,
    tenant_id: str | None = None,
) -> list[WebhookSpec]:
    """The webhooks an event of ``event_type`` for ``tenant_id`` is delivered to."""
    if routing.only is not None:
        # A test send of a disabled type goes nowhere, like any event of it; a ping always goes.
        if event_type != PING and event_type in registry.disabled_types:
            return []
        spec = registry.webhooks.get(routing.only)
        ok = spec is not None and spec.enabled and spec.tenant_id == tenant_id
        return [spec] if ok and spec is not None else []
    found = registry.targets(event_type, tenant_id)
    if routing.operator_too and tenant_id is not None:
        found = registry.targets(event_type, None) + found
    if routing.exclude is not None:
        found = [w for w in found if w.id != routing.exclude]
    return found
