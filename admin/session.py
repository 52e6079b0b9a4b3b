"""Console sessions: stateless signed cookies, CSRF tokens and flash messages.

Everything is signed with a key derived from the admin token (HMAC-SHA256), so sessions need
no table, work across workers and instances, and all end when the admin token changes. A
session cookie is ``<expires>.<nonce>.<signature>``; its CSRF token is the HMAC of the nonce.
Logging out deletes the cookie and revokes the nonce in the database
(``dispatcher.store.console_sessions``) until it expires, for every instance and worker.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass, field

import orjson

SESSION_COOKIE = "dispatcher_session"
LOGIN_COOKIE = "dispatcher_login"
FLASH_COOKIE = "dispatcher_flash"
COOKIE_PATH = "/admin"
SESSION_SECONDS = 12 * 3600
LOGIN_FORM_SECONDS = 3600
FLASH_SECONDS = 120


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in operator."""

    nonce: str
    expires: int
    csrf: str


@dataclass(frozen=True, slots=True)
class Flash:
    """A one-time message shown on the next page."""

    kind: str  # "success", "error" or "info"
    text: str


class Signer:
    """Signs and checks everything the console hands to the browser."""

    def __init__(self, admin_token: str, purpose: bytes = b"dispatcher admin console v1") -> None:
        # The purpose separates keys: the tenant portal derives its own from the same token,
        # so nothing it signs is ever accepted by the console (or the other way round).
        self._key = hmac.new(admin_token.encode(), purpose, hashlib.sha256).digest()

    def sign(self, purpose: str, value: str) -> str:
        """A MAC of ``value`` for one ``purpose`` (so one signature cannot stand for another)."""
        msg = purpose.encode() + b"\x00" + value.encode()
        return _b64(hmac.new(self._key, msg, hashlib.sha256).digest())

    def verify(self, purpose: str, value: str, signature: str) -> bool:
        """Constant-time check of a signature made by :meth:`sign`."""
        return hmac.compare_digest(self.sign(purpose, value).encode(), signature.encode())

    # Sessions

    def issue(self, now: float | None = None) -> tuple[str, Session]:
        """A new session and its cookie value."""
        expires = int(now if now is not None else time.time()) + SESSION_SECONDS
        nonce = secrets.token_urlsafe(18)
        body = f"{expires}.{nonce}"
        return f"{body}.{self.sign('session', body)}", self._session(nonce, expires)

    def read(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session a cookie stands for, or None if it is forged, malformed or expired."""
        if not cookie or len(cookie) > 200:
            return None
        body, _, signature = cookie.rpartition(".")
        expires_text, _, nonce = body.partition(".")
        if not nonce or not expires_text.isdigit() or not self.verify("session", body, signature):
            return None
        expires = int(expires_text)
        if expires <= (now if now is not None else time.time()):
            return None
        return self._session(nonce, expires)

    def _session(self, nonce: str, expires: int) -> Session:
        return Session(nonce=nonce, expires=expires, csrf=self.sign("csrf", nonce))

    def csrf_ok(self, session: Session, presented: str | None) -> bool:
        """Whether a form carried this session's CSRF token (constant time)."""
        return hmac.compare_digest(session.csrf.encode(), (presented or "").encode())

    # The login form has no session yet: its CSRF token is bound to a short-lived cookie.

    def login_nonce(self) -> str:
        """A fresh nonce for the login form's cookie."""
        return secrets.token_urlsafe(18)

    def login_csrf(self, nonce: str) -> str:
        """The login form's hidden token for ``nonce``."""
        return self.sign("login", nonce)

    def login_csrf_ok(self, nonce: str | None, presented: str | None) -> bool:
        """Whether the login form came from a page this console served to this browser."""
        if not nonce or not presented:
            return False
        return self.verify("login", nonce, presented)

    # Flash messages travel in a signed cookie between a POST and the page it redirects to.

    def pack_flash(self, flash: Flash) -> str:
        """A cookie value holding ``flash``."""
        body = _b64(orjson.dumps([flash.kind, flash.text[:500]]))
        return f"{body}.{self.sign('flash', body)}"

    def unpack_flash(self, cookie: str | None) -> Flash | None:
        """The flash message in a cookie, if it is one of ours."""
        if not cookie:
            return None
        body, _, signature = cookie.partition(".")
        if not self.verify("flash", body, signature):
            return None
        try:
            kind, text = orjson.loads(_unb64(body))
        except (ValueError, TypeError):
            return None
        if kind not in ("success", "error", "info") or not isinstance(text, str):
            return None
        return Flash(kind, text)


@dataclass
class LoginThrottle:
    """Wrong admin tokens, counted per client address and across all addresses.

    Only wrong guesses are throttled. The token is checked first (in constant time) and the
    right one signs in at once: no volume of wrong guesses, from the operator's address or
    any other, queues or delays it (the admin token has 256 random bits; the throttle bounds
    what a guesser learns per second, its entropy is what keeps it unguessable). From an
    address with ``limit`` wrong guesses within the window, further wrong guesses are
    answered 429 at once. Once ``global_limit`` wrong guesses from all addresses together
    fall within the window (guessing spread over many addresses), each wrong guess is
    answered one per ``pace_seconds``, in turn; at most ``queue_limit`` wait for their turn,
    and one more is answered 429 ("busy") at once, so the queue, and the memory and
    connections it holds, stays bounded however many guesses arrive. A sign-in does not
    clear the address's count: the guesses before it may not have been the operator's.
    """

    limit: int = 10
    window_seconds: float = 300.0
    global_limit: int = 100
    pace_seconds: float = 0.2
    queue_limit: int = 20
    # Wrong guesses waiting for their paced turn right now.
    waiting: int = 0
    failures: dict[str, deque[float]] = field(default_factory=dict)
    everyone: deque[float] = field(default_factory=deque)
    _gate: asyncio.Lock = field(default_factory=asyncio.Lock)

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self.failures.setdefault(client, deque())
        while times and times[0] <= now - self.window_seconds:
            times.popleft()
        return times

    def blocked(self, client: str) -> bool:
        """Whether ``client`` has guessed wrong too often recently."""
        blocked = len(self._recent(client, time.monotonic())) >= self.limit
        if not self.failures.get(client):
            self.failures.pop(client, None)
        return blocked

    def under_attack(self) -> bool:
        """Whether wrong guesses from all addresses together reached the global limit."""
        now = time.monotonic()
        while self.everyone and self.everyone[0] <= now - self.window_seconds:
            self.everyone.popleft()
        return len(self.everyone) >= self.global_limit

    async def wait_turn(self) -> bool:
        """Before a wrong guess is answered: under attack, wait for the next paced slot.

        False, at once, when ``queue_limit`` guesses are already waiting (answer 429).
        """
        if not self.under_attack():
            return True
        if self.waiting >= self.queue_limit:
            return False
        self.waiting += 1
        try:
            async with self._gate:
                await asyncio.sleep(self.pace_seconds)
        finally:
            self.waiting -= 1
        return True

    def failed(self, client: str) -> None:
        """Count a wrong guess."""
        if len(self.failures) > 10000:
            self.failures.clear()
        now = time.monotonic()
        self._recent(client, now).append(now)
        self.everyone.append(now)
        # Only whether the limit is reached matters: keep no more than that many.
        while len(self.everyone) > self.global_limit:
            self.everyone.popleft()
