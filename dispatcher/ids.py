"""Identifiers: a short type prefix and a ULID, so ids sort by creation time.

Sorting by id is what cursor pagination relies on.
"""

from __future__ import annotations

from ulid import ULID


def new_id(prefix: str) -> str:
    """A fresh id such as ``wh_01J9Z3...``."""
    return f"{prefix}_{ULID()}"


def webhook_id() -> str:
    """A new webhook id."""
    return new_id("wh")


def event_id() -> str:
    """A new event id (used when the producer sends none)."""
    return new_id("evt")


def delivery_id() -> str:
    """A new delivery id."""
    return new_id("dlv")
