"""Bearer-token authentication: the admin token may do everything, publish tokens only ingest.

Tokens are compared in constant time. Routes opt in to publish-token access by being listed in
:data:`PUBLISH_ROUTES`; everything else under ``/v1`` needs the admin token.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aiohttp import web

from dispatcher.problems import Handler, Problem

Role = Literal["admin", "publisher"]

# (method, path) pairs a publish token may call.
PUBLISH_ROUTES = frozenset({("POST", "/v1/events"), ("POST", "/v1/events/batch")})
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


def auth_middleware(tokens: Tokens) -> web.middleware:  # type: ignore[valid-type]
    """Build the middleware enforcing :class:`Tokens` on ``/v1``."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if not path.startswith("/v1/") or path == "/v1/openapi.json":
            return await handler(request)
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise Problem(
                401,
                "Send 'Authorization: Bearer <token>'.",
                slug="unauthorized",
                headers={"WWW-Authenticate": 'Bearer realm="dispatcher"'},
            )
        role = tokens.role_of(presented.strip())
        if role is None:
            raise Problem(
                401,
                "The bearer token is not valid.",
                slug="unauthorized",
                headers={"WWW-Authenticate": 'Bearer realm="dispatcher", error="invalid_token"'},
            )
        if role == "publisher" and (request.method, path.rstrip("/")) not in PUBLISH_ROUTES:
            raise Problem(403, "A publish token may only publish events.", slug="forbidden")
        request[ROLE_KEY] = role
        return await handler(request)

    return middleware
