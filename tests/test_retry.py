"""The retry rule (dispatcher.retry), without a database: the one classification of an answer,
the decision after an attempt, backoff with jitter, and Retry-After."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from dispatcher.retry import Answer, RetryPolicy, Verdict, classify, decide, parse_retry_after

POLICY = RetryPolicy(max_retries=5, base_seconds=1.0, max_delay_seconds=60.0, max_age_seconds=3600)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "answer"),
    [
        (200, Answer.SUCCESS),
        (204, Answer.SUCCESS),
        (299, Answer.SUCCESS),
        (500, Answer.RETRY),
        (503, Answer.RETRY),
        (599, Answer.RETRY),
        (408, Answer.RETRY),
        (429, Answer.RETRY),
        (None, Answer.RETRY),  # a timeout or connection error
        (301, Answer.FAIL),
        (302, Answer.FAIL),
        (400, Answer.FAIL),
        (404, Answer.FAIL),
        (199, Answer.FAIL),
        (410, Answer.GONE),
    ],
)
def test_classify(status: int | None, answer: Answer) -> None:
    assert classify(status) is answer
    assert answer.failed == (answer is not Answer.SUCCESS)


def test_success_and_permanent_failures_are_decided_at_once() -> None:
    ok = decide(POLICY, status=200, retries_done=99, max_retries=None, age_seconds=1e9)
    assert ok.verdict is Verdict.SUCCESS
    rejected = decide(POLICY, status=404, retries_done=0, max_retries=None, age_seconds=0)
    assert (rejected.verdict, rejected.disable_gone) == (Verdict.FAIL, False)
    assert rejected.reason == "HTTP 404 is not retried"
    gone = decide(POLICY, status=410, retries_done=0, max_retries=None, age_seconds=0)
    assert (gone.verdict, gone.disable_gone) == (Verdict.FAIL, True)


@pytest.mark.parametrize("status", [500, 503, 408, 429, None])
def test_retryable_answers_retry_with_jittered_backoff(status: int | None) -> None:
    rng = random.Random(7)
    for retries_done in range(5):
        d = decide(
            POLICY,
            status=status,
            retries_done=retries_done,
            max_retries=None,
            age_seconds=0,
            rng=rng,
        )
        ceiling = min(60.0, 2.0**retries_done)
        assert d.verdict is Verdict.RETRY
        assert ceiling / 10 <= d.delay <= ceiling


def test_the_budget_is_the_webhooks_when_it_has_one() -> None:
    spent = decide(POLICY, status=500, retries_done=5, max_retries=None, age_seconds=0)
    assert (spent.verdict, spent.reason) == (Verdict.FAIL, "gave up after 5 retries")
    own = decide(POLICY, status=500, retries_done=1, max_retries=1, age_seconds=0)
    assert own.verdict is Verdict.FAIL
    none = decide(POLICY, status=500, retries_done=0, max_retries=0, age_seconds=0)
    assert none.verdict is Verdict.FAIL


def test_a_retry_past_the_maximum_age_fails() -> None:
    d = decide(POLICY, status=500, retries_done=0, max_retries=None, age_seconds=3599.95)
    assert (d.verdict, d.reason) == (Verdict.FAIL, "maximum age reached")


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured_on_429_and_503_up_to_the_cap(status: int) -> None:
    d = decide(
        POLICY, status=status, retries_done=0, max_retries=None, age_seconds=0, retry_after=30
    )
    assert (d.verdict, d.delay) == (Verdict.RETRY, 30)
    capped = decide(
        POLICY, status=status, retries_done=0, max_retries=None, age_seconds=0, retry_after=1e6
    )
    assert capped.delay == 60.0


def test_retry_after_is_ignored_on_other_answers() -> None:
    d = decide(
        POLICY,
        status=500,
        retries_done=0,
        max_retries=None,
        age_seconds=0,
        retry_after=30,
        rng=random.Random(1),
    )
    assert d.delay <= 1.0


def test_parse_retry_after() -> None:
    assert parse_retry_after("120", NOW) == 120.0
    assert parse_retry_after(" 5 ", NOW) == 5.0
    later = NOW + timedelta(seconds=90)
    assert parse_retry_after(later.strftime("%a, %d %b %Y %H:%M:%S GMT"), NOW) == 90.0
    earlier = NOW - timedelta(seconds=90)
    assert parse_retry_after(earlier.strftime("%a, %d %b %Y %H:%M:%S GMT"), NOW) == 0.0
    for junk in (None, "", "soon", "²", "-5", "1.5"):
        assert parse_retry_after(junk, NOW) is None
