"""Signing secrets and signatures (dispatcher.signing), without a database: what a receiver
verifies with the Standard Webhooks reference library, also during a rotation."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from dispatcher import signing

BODY = b'{"id":"evt_1","type":"order.created","timestamp":"2026-01-01T00:00:00Z","data":{}}'


def now() -> datetime:
    """This attempt's time: the verifier refuses timestamps more than 5 minutes away, so it is
    taken in each test, not when the suite (which runs for many minutes) imports the module."""
    return datetime.now(UTC).replace(microsecond=0)


def headers(signature: str, when: datetime) -> dict[str, str]:
    return {
        "webhook-id": "evt_1",
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
    }


def test_a_receiver_with_the_secret_verifies_the_signature() -> None:
    secret, when = signing.generate_secret(), now()
    signature = signing.sign([secret], "evt_1", when, BODY)
    assert signature.startswith("v1,") and " " not in signature
    Webhook(secret).verify(BODY, headers(signature, when))


def test_a_tampered_body_or_another_secret_does_not_verify() -> None:
    secret, when = signing.generate_secret(), now()
    signature = signing.sign([secret], "evt_1", when, BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"{}", b"[]"), headers(signature, when))
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.generate_secret()).verify(BODY, headers(signature, when))


def test_during_a_rotation_either_secret_verifies() -> None:
    new, old = signing.generate_secret(), signing.generate_secret()
    when = now()
    signature = signing.sign([new, old], "evt_1", when, BODY)
    assert len(signature.split(" ")) == 2
    Webhook(new).verify(BODY, headers(signature, when))
    Webhook(old).verify(BODY, headers(signature, when))


def test_generated_secrets_are_acceptable() -> None:
    secret = signing.generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:])) == 32
    assert signing.secret_problem(secret) is None


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("abc", "must start with 'whsec_'"),
        ("whsec_not base64!", "must be 'whsec_' followed by standard base64"),
        ("whsec_" + base64.b64encode(b"x" * 23).decode(), "got 23"),
        ("whsec_" + base64.b64encode(b"x" * 65).decode(), "got 65"),
    ],
)
def test_unacceptable_secrets_say_why(secret: str, problem: str) -> None:
    found = signing.secret_problem(secret)
    assert found is not None and problem in found


def test_secret_bounds_are_inclusive() -> None:
    for n in (24, 64):
        assert signing.secret_problem("whsec_" + base64.b64encode(b"x" * n).decode()) is None
