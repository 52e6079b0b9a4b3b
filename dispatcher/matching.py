"""Event-type names and the patterns webhooks subscribe with.

A pattern is an exact name (``order.created``), a prefix wildcard (``order.*`` matches
``order.created`` and ``order.item.added``) or ``*`` (everything except Dispatcher's own
``dispatcher.*`` operational events, which a webhook receives only by naming them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# The rules as JSON Schema (ECMA 262) patterns, for the OpenAPI document; the regexes below
# are the same with \Z for $ (in Python, $ also matches before a final newline).
NAME_PATTERN = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
SUBSCRIPTION_PATTERN = r"^(\*|[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(\.\*)?)$"
NAME_RE = re.compile(NAME_PATTERN.removesuffix("$") + r"\Z")
PATTERN_RE = re.compile(SUBSCRIPTION_PATTERN.removesuffix("$") + r"\Z")
MAX_NAME = 255
# Dispatcher's own operational events; "*" does not include them, they must be named.
OPERATIONAL_PREFIX = "dispatcher."
# A name producers may use: outside ``dispatcher.`` in any case (see reserved_problem).
PRODUCER_NAME_PATTERN = (
    "^(?!"
    + "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else "\\." for c in OPERATIONAL_PREFIX)
    + ")"
    + NAME_PATTERN.removeprefix("^")
)


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid event-type name, or None."""
    if len(name) > MAX_NAME:
        return f"must be at most {MAX_NAME} characters"
    if not NAME_RE.match(name):
        return "must be dot-separated words of letters, digits, '_' or '-'"
    return None


def reserved_problem(name: str) -> str | None:
    """Why a producer may not publish or register ``name``, or None.

    ``dispatcher.*`` belongs to Dispatcher: an event of that type reaches the operators'
    subscribers signed like a real one, so only Dispatcher itself may create them. Any case:
    ``Dispatcher.webhook.disabled`` would read the same to a person.
    """
    if name[: len(OPERATIONAL_PREFIX)].lower() == OPERATIONAL_PREFIX:
        return f"the '{OPERATIONAL_PREFIX}' namespace is reserved for Dispatcher's own events"
    return None


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a valid subscription pattern, or None."""
    if len(pattern) > MAX_NAME:
        return f"must be at most {MAX_NAME} characters"
    if not PATTERN_RE.match(pattern):
        return "must be an event type name, a 'prefix.*' pattern or '*'"
    return None


@dataclass(frozen=True, slots=True)
class Matcher:
    """A compiled set of patterns: exact names in a set, prefixes in a tuple."""

    everything: bool
    exact: frozenset[str]
    prefixes: tuple[str, ...]

    @classmethod
    def compile(cls, patterns: Iterable[str]) -> Matcher:
        """Compile subscription patterns."""
        exact: set[str] = set()
        prefixes: list[str] = []
        everything = False
        for p in patterns:
            if p == "*":
                everything = True
            elif p.endswith(".*"):
                prefixes.append(p[:-1])  # keep the dot: "order." matches "order.x" only
            else:
                exact.add(p)
        return cls(everything, frozenset(exact), tuple(prefixes))

    def matches(self, event_type: str) -> bool:
        """Does an event of this type go to a webhook with these patterns?"""
        return (
            (self.everything and not event_type.startswith(OPERATIONAL_PREFIX))
            or event_type in self.exact
            or any(event_type.startswith(p) for p in self.prefixes)
        )
