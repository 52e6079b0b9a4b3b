"""Fan-out: which webhooks get a delivery for an event.

Reads only the in-memory :class:`~dispatcher.registry.Registry`: enabled webhooks whose
patterns match the type, none when the catalogue disables the type. A ping goes to exactly one
webhook; an operational event about a webhook never goes to that webhook.
"""

from __future__ import annotations

from dataclasses import dataclass

from dispatcher.registry import Registry, WebhookSpec


@dataclass(frozen=True, slots=True)
class Routing:
    """Overrides of the normal matching for one event."""

    only: str | None = None  # deliver to this webhook only (ping)
    exclude: str | None = None  # never to this webhook (operational events about it)


DEFAULT = Routing()


def targets(registry: Registry, event_type: str, routing: Routing = DEFAULT) -> list[WebhookSpec]:
    """The webhooks an event of ``event_type`` is delivered to."""
    if routing.only is not None:
        spec = registry.webhooks.get(routing.only)
        return [spec] if spec is not None and spec.enabled else []
    found = registry.targets(event_type)
    if routing.exclude is not None:
        found = [w for w in found if w.id != routing.exclude]
    return found
