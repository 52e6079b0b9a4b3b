"""Signing secrets and request signatures (Standard Webhooks; ``standardwebhooks`` verifies).

A secret is ``whsec_`` + base64 of 24-64 random bytes. During a rotation's grace period a
request carries one ``v1,<sig>`` per valid secret, space-separated, so a receiver holding
either the old or the new secret accepts it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math
import secrets as _random
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache

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
def _key(secret: str) -> bytes:
    # Decoded once per secret, not once per request, as standardwebhooks decodes it (the
    # prefix dropped, padding tolerated): its ``Webhook(secret).verify`` is what receivers run.
    return base64.b64decode(secret.removeprefix(PREFIX) + "==")


def sign(secrets: Sequence[str], msg_id: str, timestamp: datetime, body: bytes) -> str:
    """The ``webhook-signature`` header value: one ``v1,`` signature per secret.

    Each is base64 of HMAC-SHA256 over ``{msg_id}.{unix seconds}.{body}`` (Standard Webhooks),
    made with the stdlib's one-shot ``hmac.digest`` over the body's own bytes: the library's
    ``sign`` decodes the body to text and encodes it back, and builds an HMAC object per call.
    """
    signed = b"%s.%d.%s" % (msg_id.encode(), math.floor(timestamp.timestamp()), body)
    return " ".join(
        "v1," + base64.b64encode(hmac.digest(_key(s), signed, "sha256")).decode() for s in secrets
    )
