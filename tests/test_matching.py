"""Subscription patterns and event-type names (dispatcher.matching), without a database."""

from __future__ import annotations

import pytest

from dispatcher.matching import Matcher, name_problem, pattern_problem, reserved_problem


def test_exact_names_prefixes_and_everything() -> None:
    m = Matcher.compile(["order.created", "invoice.*"])
    assert m.matches("order.created")
    assert not m.matches("order.created.late")
    assert not m.matches("order.updated")
    assert m.matches("invoice.paid")
    assert m.matches("invoice.item.added")
    assert not m.matches("invoice")  # the prefix keeps its dot
    assert not m.matches("invoices.paid")


def test_everything_leaves_out_operational_events_unless_named() -> None:
    assert Matcher.compile(["*"]).matches("order.created")
    assert not Matcher.compile(["*"]).matches("dispatcher.webhook.disabled")
    assert Matcher.compile(["*", "dispatcher.webhook.disabled"]).matches(
        "dispatcher.webhook.disabled"
    )
    assert Matcher.compile(["dispatcher.*"]).matches("dispatcher.delivery.failed")


def test_no_patterns_match_nothing() -> None:
    assert not Matcher.compile([]).matches("order.created")


@pytest.mark.parametrize("name", ["order", "order.created", "a_b-c.D9", "x" * 255])
def test_valid_names(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize("name", ["", ".order", "order.", "order..x", "order.*", "a b", "é", "x\n"])
def test_invalid_names(name: str) -> None:
    assert name_problem(name) is not None


def test_names_are_bounded() -> None:
    assert name_problem("x" * 256) == "must be at most 255 characters"


@pytest.mark.parametrize("pattern", ["*", "order.*", "order.created", "a.b.*"])
def test_valid_patterns(pattern: str) -> None:
    assert pattern_problem(pattern) is None


@pytest.mark.parametrize("pattern", ["", "*.created", "order*", "order.**", "**", "a.*.b", "x\n"])
def test_invalid_patterns(pattern: str) -> None:
    assert pattern_problem(pattern) is not None


@pytest.mark.parametrize("name", ["dispatcher.x", "Dispatcher.webhook.disabled", "DISPATCHER.y"])
def test_the_operational_namespace_is_reserved_in_any_case(name: str) -> None:
    assert reserved_problem(name) is not None


def test_names_merely_starting_alike_are_not_reserved() -> None:
    assert reserved_problem("dispatchers.x") is None
    assert reserved_problem("order.created") is None
