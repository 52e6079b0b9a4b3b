"""Portal sessions: signed cookies naming the tenant, with CSRF tokens and flash messages.

The portal signs with its own key, derived from the admin token with another purpose than
the console's, so a console cookie never opens the portal nor a portal cookie the console.
A session cookie is ``<expires>.<nonce>.<tenant id, base64>.<tenant since>.<signature>``:
``since`` is the tenant's creation time, checked against the database on every request, so a
deleted tenant's sessions stop at once (and do not come back if the id is used again).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from admin.session import Signer, _b64, _unb64

SESSION_COOKIE = "dispatcher_portal"
FLASH_COOKIE = "dispatcher_portal_flash"
COOKIE_PATH = "/portal"
SESSION_SECONDS = 12 * 3600
FLASH_SECONDS = 120
PURPOSE = b"dispatcher tenant portal v1"


@dataclass(frozen=True, slots=True)
class PortalSession:
    """A browser signed in to one tenant's portal."""

    tenant_id: str
    since: int
    nonce: str
    expires: int
    csrf: str


class PortalSigner(Signer):
    """Signs and checks what the portal hands to the browser."""

    def __init__(self, admin_token: str) -> None:
        super().__init__(admin_token, PURPOSE)

    def issue_for(
        self, tenant_id: str, since: int, now: float | None = None
    ) -> tuple[str, PortalSession]:
        """A new session in ``tenant_id`` and its cookie value."""
        expires = int(now if now is not None else time.time()) + SESSION_SECONDS
        nonce = secrets.token_urlsafe(18)
        body = f"{expires}.{nonce}.{_b64(tenant_id.encode())}.{since}"
        return f"{body}.{self.sign('session', body)}", self._portal(
            tenant_id, since, nonce, expires
        )

    def read_portal(self, cookie: str | None, now: float | None = None) -> PortalSession | None:
        """The session a cookie stands for; None if forged, malformed or expired."""
        if not cookie or len(cookie) > 400:
            return None
        body, _, signature = cookie.rpartition(".")
        parts = body.split(".")
        if len(parts) != 4 or not self.verify("session", body, signature):
            return None
        expires_text, nonce, tenant_b64, since_text = parts
        if not expires_text.isdigit() or not since_text.isdigit() or not nonce:
            return None
        expires = int(expires_text)
        if expires <= (now if now is not None else time.time()):
            return None
        try:
            tenant_id = _unb64(tenant_b64).decode()
        except ValueError:
            return None
        return self._portal(tenant_id, int(since_text), nonce, expires)

    def _portal(self, tenant_id: str, since: int, nonce: str, expires: int) -> PortalSession:
        return PortalSession(
            tenant_id=tenant_id,
            since=since,
            nonce=nonce,
            expires=expires,
            csrf=self.sign("csrf", nonce),
        )

    def portal_csrf_ok(self, session: PortalSession, presented: str | None) -> bool:
        """Whether a form carried this session's CSRF token (constant time)."""
        return secrets.compare_digest(session.csrf.encode(), (presented or "").encode())
