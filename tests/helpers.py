"""Constants and small helpers for tests."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

ADMIN_TOKEN = "test-admin-token-0123456789"
PUBLISH_TOKEN = "test-publish-token-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PUBLISHER = {"Authorization": f"Bearer {PUBLISH_TOKEN}"}


def with_database(dsn: str, name: str) -> str:
    """The same server DSN pointing at database ``name``."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


def webhook_body(**overrides: Any) -> dict[str, Any]:
    """A valid webhook creation body."""
    body: dict[str, Any] = {
        "name": "orders",
        "url": "http://127.0.0.1:9/hook",
        "event_types": ["order.*"],
    }
    body.update(overrides)
    return body


def assert_problem(body: dict[str, Any], status: int) -> None:
    """The answer is RFC 9457 problem JSON with this status."""
    assert body["status"] == status
    for key in ("type", "title", "detail"):
        assert isinstance(body[key], str) and body[key]
