"""The request an attempt sent, rebuilt: the body from the event and the webhook's
``include_payload``, the headers from its extra headers and the standard ones.

Nothing per attempt is stored for this (the hot path writes no more than before), so what is
shown follows the webhook's current settings. The signature is recomputed only when the
secrets that signed at the attempt's time are known for certain; otherwise it is masked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dispatcher import sender, signing
from dispatcher.jobs import Payload

MASK = "v1,••••••••"
HIDDEN = "••••••••"
# A webhook's first secret is made with it; one created later came from a rotation.
FIRST_SECRET_SLACK = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class Secret:
    """A stored signing secret and when it signed."""

    secret: str
    created_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class SentRequest:
    """One attempt's request as rebuilt."""

    headers: list[tuple[str, str]]
    body: str
    signature_known: bool


def signers_at(
    secrets: Sequence[Secret], webhook_created: datetime, at: datetime, grace_seconds: float
) -> list[str] | None:
    """The secrets that signed a request at ``at``, or None when that cannot be known.

    Known when the current secret is the webhook's first (never rotated), or when it was made
    long enough before ``at`` that the one it replaced had stopped signing (grace period).
    """
    current = [s for s in secrets if s.expires_at is None]
    if len(current) != 1 or current[0].created_at > at:
        return None
    newest = current[0]
    never_rotated = newest.created_at - webhook_created <= FIRST_SECRET_SLACK
    if never_rotated or newest.created_at + timedelta(seconds=grace_seconds) <= at:
        return [newest.secret]
    return None


def rebuild(
    event: Mapping[str, Any],
    webhook: Mapping[str, Any],
    started_at: datetime,
    signers: list[str] | None,
) -> SentRequest:
    """The request of an attempt that started at ``started_at``."""
    payload = Payload(
        id=event["id"],
        type=event["type"],
        occurred_at=event["occurred_at"],
        data_json=event["data_text"].encode(),
    )
    body = payload.envelope(bool(webhook["include_payload"]))
    when = started_at.astimezone(UTC)
    # Any valid secret gives the header its shape; the value is replaced unless it is known.
    extra = {str(k): str(v) for k, v in (webhook.get("headers") or {}).items()}
    headers = sender.build_headers(
        tuple(extra.items()),
        signers or [signing.generate_secret()],
        payload.id,
        when,
        body,
    )
    if not signers:
        headers["webhook-signature"] = MASK
    # The webhook's own header values stay hidden, as on its page (they often hold tokens).
    shown = [(k, HIDDEN if k in extra else v) for k, v in headers.items()]
    return SentRequest(shown, body.decode(), signers is not None)


def requests_as_sent(
    event: Mapping[str, Any] | None,
    webhook: Mapping[str, Any] | None,
    attempts: Sequence[Mapping[str, Any]],
    secrets: Sequence[Secret],
    grace_seconds: float,
) -> list[SentRequest | None]:
    """Per attempt, its request (None when the event or the webhook is gone)."""
    if event is None or webhook is None:
        return [None for _ in attempts]
    return [
        rebuild(
            event,
            webhook,
            a["started_at"],
            signers_at(secrets, webhook["created_at"], a["started_at"], grace_seconds),
        )
        for a in attempts
    ]
