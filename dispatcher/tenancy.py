"""Who is calling, and the one authorisation rule for tenants.

Every ``/v1`` request that passed authentication carries a :class:`Principal`. A tenant token
acts only inside its tenant: every query it runs is scoped in SQL by :func:`scope` (the
caller's tenant id, or ``None`` for the operator's tokens, which see everything). Store
functions take that value as a parameter and their SQL applies
``($n::text IS NULL OR tenant_id = $n)``; nothing is filtered afterwards in Python. Anything
of another tenant or of the operator answers 404 to a tenant, as if it did not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aiohttp import web

Role = Literal["admin", "publisher", "tenant"]


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: its role, and for a tenant token the tenant it acts in."""

    role: Role
    tenant_id: str | None = None
    # The tenant token's id (for logs and revocation), None for the configured tokens.
    token_id: str | None = None


PRINCIPAL = web.RequestKey("principal", Principal)


def principal(request: web.Request) -> Principal:
    """The authenticated caller of this request."""
    return request[PRINCIPAL]


def scope(request: web.Request) -> str | None:
    """The tenant every query of this request is confined to; None for the operator."""
    found: Principal | None = request.get(PRINCIPAL)
    if found is None or found.role != "tenant":
        return None
    return found.tenant_id
