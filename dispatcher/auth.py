"""Bearer-token authentication: the admin token may do everything, publish tokens only ingest,
tenant tokens act inside their tenant on the routes of :data:`TENANT_ROUTES`.

Configured tokens are compared in constant time. Tenant tokens (``dsp_tenant_...``) are looked
up by their SHA-256 in Postgres on every request, so an expiry or a revocation applies on
every instance at once. Every authenticated ``/v1`` request carries its
:class:`~dispatcher.tenancy.Principal` under :data:`~dispatcher.tenancy.PRINCIPAL`.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import asyncpg
from aiohttp import web

from dispatcher.problems import Handler, Problem
from dispatcher.store import tenants as tenant_store
from dispatcher.tenancy import PRINCIPAL, Principal

Role = Literal["admin", "publisher"]

# (method, path) pairs a publish token may call.
PUBLISH_ROUTES = frozenset({("POST", "/v1/events"), ("POST", "/v1/events/batch")})
# What a tenant token may call: (method, route) pairs, routes as the router spells them, and
# route prefixes under which every method is allowed. Everything else answers 403.
TENANT_ROUTES = frozenset(
    {
        ("GET", "/v1/webhooks"),
        ("POST", "/v1/webhooks"),
        ("GET", "/v1/deliveries"),
        ("GET", "/v1/events"),
        ("GET", "/v1/events/{id}"),
        ("GET", "/v1/event-types"),
        ("GET", "/v1/event-types/{name}"),
        ("GET", "/v1/catalogue"),
    }
)
TENANT_PREFIXES = ("/v1/webhooks/{id}", "/v1/deliveries/{id}")
TENANT_TOKEN_PREFIX = "dsp_tenant_"  # noqa: S105 (a prefix, not a secret)
# Paths that need no token at all.
PUBLIC_PREFIXES = ("/healthz", "/readyz", "/metrics", "/admin")

ROLE_KEY = web.RequestKey("role", str)


@dataclass(frozen=True, slots=True)
class Tokens:
    """The tokens this instance accepts."""

    admin: str
    publish: tuple[str, ...] = ()

    def role_of(self, presented: str) -> Role | None:
        """The role a presented token grants, or None; constant time per token."""
        given = presented.encode()
        role: Role | None = None
        if hmac.compare_digest(given, self.admin.encode()):
            role = "admin"
        for token in self.publish:
            if hmac.compare_digest(given, token.encode()) and role is None:
                role = "publisher"
        return role


def generate_tenant_token() -> str:
    """A new tenant token: the prefix and 256 random bits."""
    return TENANT_TOKEN_PREFIX + secrets.token_urlsafe(32)


def tenant_may_call(method: str, route: str) -> bool:
    """Whether a tenant token may call ``method`` on ``route`` (``/v1/webhooks/{id}``)."""
    method = "GET" if method == "HEAD" else method
    if (method, route) in TENANT_ROUTES:
        return True
    return any(route == p or route.startswith(p + "/") for p in TENANT_PREFIXES)


def admin_token_path(data_dir: Path) -> Path:
    """Where the generated admin token is kept (absolute, for messages that name it)."""
    return (data_dir / "admin_token").absolute()


def stored_admin_token(configured: str | None, data_dir: Path) -> str | None:
    """The configured admin token or the data dir's, or None; never creates one."""
    if configured:
        return configured
    try:
        return admin_token_path(data_dir).read_text().strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None


def load_admin_token(configured: str | None, data_dir: Path) -> str:
    """The configured admin token, or the one generated once and kept in the data dir."""
    existing = stored_admin_token(configured, data_dir)
    if existing:
        return existing
    path = admin_token_path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    token = "dsp_admin_" + secrets.token_urlsafe(32)
    # Written with mode 0600 so other local users cannot read it.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


def _unauthorized(detail: str, error: str | None = None) -> Problem:
    challenge = 'Bearer realm="dispatcher"' + (f', error="{error}"' if error else "")
    return Problem(401, detail, slug="unauthorized", headers={"WWW-Authenticate": challenge})


def auth_middleware(tokens: Tokens, pool: web.AppKey[asyncpg.Pool]) -> web.middleware:  # type: ignore[valid-type]
    """Build the middleware enforcing :class:`Tokens` and tenant tokens on ``/v1``.

    ``pool`` is the application key of the database pool tenant tokens are looked up in.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if not path.startswith("/v1/") or path == "/v1/openapi.json":
            return await handler(request)
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        presented = presented.strip()
        if scheme.lower() != "bearer" or not presented:
            raise _unauthorized("Send 'Authorization: Bearer <token>'.")
        role = tokens.role_of(presented)
        if role is not None:
            if role == "publisher" and (request.method, path.rstrip("/")) not in PUBLISH_ROUTES:
                raise Problem(403, "A publish token may only publish events.", slug="forbidden")
            found = Principal(role)
        elif presented.startswith(TENANT_TOKEN_PREFIX) and len(presented) <= 200:
            tenant = await tenant_store.token_principal(request.app[pool], presented)
            if tenant is None:
                raise _unauthorized(
                    "The tenant token is not valid: unknown, expired or revoked.", "invalid_token"
                )
            found = Principal("tenant", tenant_id=tenant[1], token_id=tenant[0])
            resource = request.match_info.route.resource
            # An unknown path or method is left to the router (404/405), which says nothing.
            route = resource.canonical if resource is not None else None
            if route is not None and not tenant_may_call(request.method, route):
                raise Problem(403, "A tenant token may not call this route.", slug="forbidden")
        else:
            raise _unauthorized("The bearer token is not valid.", "invalid_token")
        request[PRINCIPAL] = found
        request[ROLE_KEY] = found.role
        return await handler(request)

    return middleware
