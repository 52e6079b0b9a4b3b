"""Signing secrets and request signatures (Standard Webhooks, via ``standardwebhooks``).

A secret is ``whsec_`` + base64 of 24-64 random bytes. During a rotation's grace period a
request carries one ``v1,<sig>`` per valid secret, space-separated, so a receiver holding
either the old or the new secret accepts it.
"""

from __future__ import annotations

import base64
import binascii
import secrets as _random
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache

from standardwebhooks.webhooks import Webhook

PREFIX = "whsec_"
MIN_BYTES = 24
MAX_BYTES = 64


def generate_secret(nbytes: int = 32) -> str:
    """A fresh random secret."""
    return PREFIX + base64.b64encode(_random.token_bytes(nbytes)).decode()


def secret_problem(secret: str) -> str | None:
    """Why ``secret`` is not acceptable, or None when it is."""
    if not secret.startswith(PREFIX):
        return f"must start with {PREFIX!r}"
    try:
        raw = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        return f"must be {PREFIX!r} followed by standard base64"
    if not MIN_BYTES <= len(raw) <= MAX_BYTES:
        return f"must encode between {MIN_BYTES} and {MAX_BYTES} bytes (got {len(raw)})"
    return None


@lru_cache(maxsize=4096)
def _signer(secret: str) -> Webhook:
    # Decoding the secret is done once per secret, not once per request.
    return Webhook(secret)


def sign(secrets: Sequence[str], msg_id: str, timestamp: datetime, body: bytes) -> str:
    """The ``webhook-signature`` header value: one ``v1,`` signature per secret."""
    payload = body.decode()
    return " ".join(_signer(s).sign(msg_id, timestamp, payload) for s in secrets)
