"""Identifiers: a short type prefix and a ULID, so ids sort by creation time.

Sorting by id is what cursor pagination relies on. Ingestion makes one id per delivery, so
this is on the hot path: the ULID (48-bit millisecond time, 80 random bits, Crockford
base32) is encoded ten bits at a time from a lookup table, with the time part reused within
a millisecond, several times faster than building a ``ulid.ULID`` object. Within one
millisecond the random part counts up, so ids from this process also sort in the order they
were made.
"""

from __future__ import annotations

import os
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Every 10-bit value as its two base32 characters.
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]
_RANDOM_MAX = (1 << 80) - 1

_last_ms = -1
_last_random = 0
_time_part = ""


def _encode_time(ms: int) -> str:
    # 48 bits as 10 characters (the first carries only 3 bits).
    return (
        _CROCKFORD[ms >> 45]
        + "".join(_PAIRS[(ms >> s) & 1023] for s in (35, 25, 15, 5))
        + (_CROCKFORD[ms & 31])
    )


def ulid() -> str:
    """A new ULID string (26 characters)."""
    global _last_ms, _last_random, _time_part
    ms = time.time_ns() // 1_000_000
    if ms <= _last_ms and _last_random < _RANDOM_MAX:
        # Same millisecond (or the clock stepped back): count up from the last id.
        r = _last_random = _last_random + 1
    else:
        r = _last_random = int.from_bytes(os.urandom(10))
        _last_ms = ms
        _time_part = _encode_time(ms)
    p = _PAIRS
    return (
        _time_part
        + p[r >> 70]
        + p[(r >> 60) & 1023]
        + p[(r >> 50) & 1023]
        + p[(r >> 40) & 1023]
        + p[(r >> 30) & 1023]
        + p[(r >> 20) & 1023]
        + p[(r >> 10) & 1023]
        + p[r & 1023]
    )


def new_id(prefix: str) -> str:
    """A fresh id such as ``wh_01J9Z3...``."""
    return f"{prefix}_{ulid()}"


def webhook_id() -> str:
    """A new webhook id."""
    return new_id("wh")


def event_id() -> str:
    """A new event id (used when the producer sends none)."""
    return new_id("evt")


def delivery_id() -> str:
    """A new delivery id."""
    return new_id("dlv")


def time_bound(prefix: str, at_ms: int) -> str:
    """The smallest id with ``prefix`` made at or after ``at_ms`` (unix milliseconds).

    Ids sort by creation time, so ``id >= time_bound(p, t)`` selects those made since ``t``
    through the id index alone.
    """
    return f"{prefix}_{_encode_time(max(0, min(at_ms, (1 << 48) - 1)))}{'0' * 16}"
