"""The outcome function (dispatcher.outcomes.outcome_of), without a database: one attempt's
result becomes the delivery's new state, read once by the retry rule."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from dispatcher.jobs import Job, Payload
from dispatcher.matching import Matcher
from dispatcher.outcomes import outcome_of
from dispatcher.registry import WebhookSpec
from dispatcher.retry import Answer, RetryPolicy
from dispatcher.sender import AttemptResult

POLICY = RetryPolicy(max_retries=3, base_seconds=1.0, max_delay_seconds=60.0, max_age_seconds=3600)
CREATED = datetime(2026, 1, 1, tzinfo=UTC)
NOW = CREATED + timedelta(seconds=10)


def webhook(max_retries: int | None = None) -> WebhookSpec:
    return WebhookSpec(
        id="wh_1",
        url="https://example.com/hooks?token=x",
        matcher=Matcher.compile(["*"]),
        enabled=True,
        headers=(),
        include_payload=True,
        max_retries=max_retries,
        timeout_seconds=None,
        rate_limit_per_second=None,
        max_in_flight=None,
    )


def job(attempt_count: int = 0, attempts_base: int = 0) -> Job:
    payload = Payload("evt_1", "order.created", CREATED, b"{}")
    return Job("dlv_1", "wh_1", payload, attempt_count, attempts_base, CREATED)


def result(
    status: int | None,
    *,
    error: str | None = None,
    kind: str | None = None,
    retry_after: str | None = None,
) -> AttemptResult:
    return AttemptResult(NOW, 12.5, status, "body" if status else None, error, kind, retry_after)


def test_a_2xx_succeeds() -> None:
    o = outcome_of(POLICY, webhook(), job(), result(204), NOW)
    assert (o.status, o.answer, o.failed, o.next_attempt_at, o.error) == (
        "success",
        Answer.SUCCESS,
        False,
        None,
        None,
    )
    assert (o.delivery_id, o.webhook_id, o.number, o.status_code) == ("dlv_1", "wh_1", 1, 204)
    assert (o.event_id, o.event_type, o.age_from) == ("evt_1", "order.created", CREATED)
    assert (o.started_at, o.duration_ms, o.response_body) == (NOW, 12.5, "body")
    assert o.url == "https://example.com/hooks?token=x"


def test_a_5xx_is_retried_later_and_counts_as_failed() -> None:
    o = outcome_of(POLICY, webhook(), job(attempt_count=1), result(503), NOW, rng=random.Random(3))
    assert (o.status, o.answer, o.failed, o.number) == ("retrying", Answer.RETRY, True, 2)
    assert o.next_attempt_at is not None
    assert NOW + timedelta(seconds=0.2) <= o.next_attempt_at <= NOW + timedelta(seconds=2)
    assert o.error is None


def test_retry_after_sets_the_next_attempt() -> None:
    o = outcome_of(POLICY, webhook(), job(), result(429, retry_after="30"), NOW)
    assert o.next_attempt_at == NOW + timedelta(seconds=30)


def test_a_timeout_is_retried_with_its_error() -> None:
    r = result(None, error="timed out after 5s waiting for example.com", kind="timeout")
    o = outcome_of(POLICY, webhook(), job(), r, NOW)
    assert (o.status, o.answer, o.status_code) == ("retrying", Answer.RETRY, None)
    assert o.error == "timed out after 5s waiting for example.com"


@pytest.mark.parametrize(("status", "answer"), [(404, Answer.FAIL), (410, Answer.GONE)])
def test_a_4xx_fails_at_once_saying_why(status: int, answer: Answer) -> None:
    o = outcome_of(POLICY, webhook(), job(), result(status), NOW)
    assert (o.status, o.answer, o.failed, o.next_attempt_at) == ("failed", answer, True, None)
    assert o.error == f"HTTP {status} is not retried"


def test_the_budget_counts_from_the_last_manual_retry() -> None:
    spent = outcome_of(POLICY, webhook(max_retries=2), job(attempt_count=2), result(500), NOW)
    assert (spent.status, spent.error) == ("failed", "gave up after 2 retries")
    again = outcome_of(
        POLICY, webhook(max_retries=2), job(attempt_count=2, attempts_base=2), result(500), NOW
    )
    assert (again.status, again.number) == ("retrying", 3)


def test_the_maximum_age_counts_from_the_jobs_age() -> None:
    late = CREATED + timedelta(seconds=3600)
    o = outcome_of(POLICY, webhook(), job(), result(500), late)
    assert (o.status, o.error) == ("failed", "maximum age reached")


def test_an_engine_error_reads_as_no_answer_whatever_status_it_saw() -> None:
    # The engine broke after a 2xx arrived: nothing recorded says the receiver has it.
    r = result(200, error="TypeError: boom", kind="error")
    o = outcome_of(POLICY, webhook(), job(), r, NOW)
    assert (o.status, o.answer, o.failed, o.status_code) == ("retrying", Answer.RETRY, True, 200)
    assert o.error == "TypeError: boom"
