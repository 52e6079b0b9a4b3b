"""The retry rule: what happens to a delivery after one attempt.

2xx succeeds. 5xx, 408, 429, timeouts and connection errors retry with exponential backoff and
full jitter (``Retry-After`` on 429/503 is honoured up to the cap), at most ``max_retries``
times and never past the maximum age; then the delivery fails. Every other status (3xx, 4xx)
fails at once; 410 also disables the webhook. :func:`classify` is the one reading of an
answer: the retry rule, the log line, the metrics and the failure window all use it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum


class Verdict(StrEnum):
    """The delivery's fate after an attempt."""

    SUCCESS = "success"
    RETRY = "retry"
    FAIL = "fail"


class Answer(StrEnum):
    """What an attempt's answer says, whatever the delivery's budget: the one classification."""

    SUCCESS = "success"  # 2xx
    RETRY = "retry"  # 5xx, 408, 429, a timeout or connection error: worth trying again
    FAIL = "fail"  # 3xx and other 4xx: trying again will not help
    GONE = "gone"  # 410: fails, and the webhook is disabled

    @property
    def failed(self) -> bool:
        """Anything but success: what the failure window and the failing watch count."""
        return self is not Answer.SUCCESS


def classify(status: int | None) -> Answer:
    """Classify an answer; ``status`` is None for a timeout or connection error."""
    if status is None:
        return Answer.RETRY
    if 200 <= status < 300:
        return Answer.SUCCESS
    if status >= 500 or status in (408, 429):
        return Answer.RETRY
    return Answer.GONE if status == 410 else Answer.FAIL


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Global retry settings; per-webhook ``max_retries`` overrides the count."""

    max_retries: int
    base_seconds: float
    max_delay_seconds: float
    max_age_seconds: float

    def backoff(self, retry_number: int, rng: random.Random | None = None) -> float:
        """Full-jitter delay before retry ``retry_number`` (1-based)."""
        ceiling = min(self.max_delay_seconds, self.base_seconds * 2 ** min(retry_number - 1, 62))
        # Full jitter, but never less than a tenth of the ceiling, so retries do not pile up
        # at zero delay against an endpoint that just failed.
        return (rng or random).uniform(ceiling / 10, ceiling)


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """What the engine does next: succeed, retry after ``delay`` seconds, or fail."""

    verdict: Verdict
    delay: float = 0.0
    disable_gone: bool = False
    reason: str = ""


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    # ASCII digits only: str.isdigit() also holds for "²" or "٣", which float() refuses.
    if value.isascii() and value.isdigit():
        try:
            return float(value)
        except (ValueError, OverflowError):
            return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def decide(
    policy: RetryPolicy,
    *,
    status: int | None,
    retries_done: int,
    max_retries: int | None,
    age_seconds: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> RetryDecision:
    """Apply the retry rule.

    ``status`` is None for a timeout or connection error. ``retries_done`` counts retries
    already made before this attempt (0 after the first attempt fails). ``age_seconds`` is how
    long ago the delivery was created (or re-queued by hand).
    """
    answer = classify(status)
    if answer is Answer.SUCCESS:
        return RetryDecision(Verdict.SUCCESS)
    if answer is not Answer.RETRY:
        return RetryDecision(
            Verdict.FAIL, disable_gone=answer is Answer.GONE, reason=f"HTTP {status} is not retried"
        )
    limit = policy.max_retries if max_retries is None else max_retries
    if retries_done >= limit:
        return RetryDecision(Verdict.FAIL, reason=f"gave up after {limit} retries")
    delay = policy.backoff(retries_done + 1, rng)
    if retry_after is not None and status in (429, 503):
        delay = min(policy.max_delay_seconds, max(retry_after, 0.0))
    if age_seconds + delay > policy.max_age_seconds:
        return RetryDecision(Verdict.FAIL, reason="maximum age reached")
    return RetryDecision(Verdict.RETRY, delay=delay)
