"""Console forms: raw text in, the API's own pydantic models out.

A form is parsed into the JSON the API would receive, then validated with the same model
(``WebhookCreate``, ``WebhookPatch``, ``EventTypeCreate``...), so the console accepts exactly
what the API does. The API's field errors are then put in words people use ("Choose at least
one event type"), keyed by form field and shown next to it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from admin.render import pretty_json
from dispatcher.problems import validation_problem

M = TypeVar("M", bound=BaseModel)

WEBHOOK_TEXT_FIELDS = (
    "name",
    "url",
    "event_types",
    "description",
    "headers",
    "metadata",
    "max_retries",
    "timeout_seconds",
    "rate_limit_per_second",
    "max_in_flight",
    "secret",
)
INT_FIELDS = ("max_retries", "max_in_flight")
FLOAT_FIELDS = ("timeout_seconds", "rate_limit_per_second")
_SPLIT = re.compile(r"[,\n\r]+")
_TOP = re.compile(r"^([A-Za-z_]+)(.*)$")


@dataclass
class Form(Generic[M]):
    """A submitted form: what was typed, the model it made (if valid) and field errors."""

    values: dict[str, Any]
    model: M | None = None
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Valid and ready to apply."""
        return self.model is not None and not self.errors

    def add_errors(self, errors: list[dict[str, str]]) -> None:
        """Attach API-style ``[{field, message}]`` errors to the form's fields."""
        for err in errors:
            match = _TOP.match(err["field"])
            name, rest = (match.group(1), match.group(2)) if match else (err["field"], "")
            self.errors.setdefault(name, in_words(name, rest.lstrip("."), err["message"]))


# Validation messages as people write them, not as pydantic does: (field or None, pattern of
# the API's message, the words; {0}.. are the pattern's groups). First match wins.
_WORDS: list[tuple[str | None, re.Pattern[str], str]] = [
    (f, re.compile(p), w)
    for f, p, w in (
        ("event_types", r"at least 1 item|must not be null", "Choose at least one event type."),
        (
            "event_types",
            r"^(?:\[\d+\] )?'(.*)' must be an event type name",
            "“{0}” is not an event type: use a name like order.created, a pattern like "
            "order.* or * for everything.",
        ),
        ("url", r"http:// or https://", "Enter a URL starting with http:// or https://."),
        ("url", r"spaces", "Enter the URL without spaces, like https://example.com/hooks."),
        ("url", r"host", "Enter a full URL with a host name, like https://example.com/hooks."),
        ("url", r"at least 1 character|must not be null|required", "Enter the endpoint URL."),
        ("name", r"at least 1 character|must not be null|required", "Enter a name."),
        (
            "name",
            r"dot-separated words",
            "Use dot-separated words of letters, digits, _ or -, like order.created.",
        ),
        (
            "secret",
            r"whsec_|base64|bytes",
            "Enter a secret that starts with whsec_ (24 to 64 random bytes in base64), or leave "
            "it blank to have one made.",
        ),
        (None, r"^Field required", "This is required."),
        (None, r"must not be null", "This can't be blank."),
        (None, r"at least 1 character", "This can't be empty."),
        (None, r"at most (\d+) characters?", "Use at most {0} characters."),
        (None, r"at most (\d+) items?", "Use at most {0}."),
        (None, r"greater than or equal to (\S+)", "Enter {0} or more."),
        (None, r"greater than (\S+)", "Enter a number above {0}."),
        (None, r"less than or equal to (\S+)", "Enter {0} or less."),
        (None, r"less than (\S+)", "Enter a number below {0}."),
        (None, r"valid integer", "Enter a whole number, like 5."),
        (None, r"valid number", "Enter a number, like 2.5."),
        (None, r"valid boolean", "Choose yes or no."),
    )
]


def in_words(field: str, rest: str, message: str) -> str:
    """The API's error ``message`` for ``field`` (``rest``: where inside it) as a sentence."""
    message = message.removeprefix("Value error, ").strip()
    for only, pattern, words in _WORDS:
        if only not in (None, field):
            continue
        match = pattern.search(message)
        if match:
            return words.format(*match.groups())
    text = message[:1].upper() + message[1:]
    if rest:
        text = f"{rest}: {text}"
    return text if text.endswith((".", "!", "?")) else text + "."


def text(form: Mapping[str, Any], name: str) -> str:
    """A text field ('' when absent or not text)."""
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def validate(model: type[M], data: dict[str, Any], form: Form[M]) -> Form[M]:
    """Validate ``data`` with ``model`` unless parsing already failed; collect field errors."""
    try:
        built = model.model_validate(data)
    except ValidationError as exc:
        form.add_errors(validation_problem(exc).errors or [])
        return form
    if not form.errors:
        form.model = built
    return form


# Webhooks


def webhook_values(form: Mapping[str, Any], *, create: bool) -> dict[str, Any]:
    """What the operator submitted, kept to fill the form again."""
    values: dict[str, Any] = {name: text(form, name) for name in WEBHOOK_TEXT_FIELDS}
    values["include_payload"] = "include_payload" in form
    values["enabled"] = "enabled" in form if create else True
    return values


def webhook_values_of(webhook: Mapping[str, Any]) -> dict[str, Any]:
    """An existing webhook as form values."""
    metadata = webhook.get("metadata") or {}
    values: dict[str, Any] = {
        "name": webhook["name"],
        "url": webhook["url"],
        "event_types": "\n".join(webhook["event_types"]),
        "description": webhook.get("description") or "",
        "headers": "\n".join(f"{k}: {v}" for k, v in (webhook.get("headers") or {}).items()),
        # pretty_json also writes what json.dumps cannot: rows stored before the depth cap.
        "metadata": pretty_json(metadata) if metadata else "",
        "include_payload": bool(webhook.get("include_payload", True)),
        "enabled": bool(webhook.get("enabled", True)),
        "secret": "",
    }
    for name in (*INT_FIELDS, *FLOAT_FIELDS):
        value = webhook.get(name)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        values[name] = "" if value is None else str(value)
    return values


def new_webhook_values() -> dict[str, Any]:
    """The empty create form."""
    values: dict[str, Any] = dict.fromkeys(WEBHOOK_TEXT_FIELDS, "")
    values["include_payload"] = True
    values["enabled"] = True
    return values


def split_event_types(raw: str) -> list[str]:
    """Comma- or newline-separated patterns, blanks dropped."""
    return [p.strip() for p in _SPLIT.split(raw) if p.strip()]


def parse_headers(raw: str) -> tuple[dict[str, str], str | None]:
    """``Name: value`` lines into a dict, or an error."""
    headers: dict[str, str] = {}
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        name = name.strip()
        if not sep or not name:
            return {}, f"Line {number}: write each header as Name: value."
        if name in headers:
            return {}, f"{name} is given twice; keep one."
        headers[name] = value.strip()
    return headers, None


def parse_metadata(raw: str) -> tuple[dict[str, Any], str | None]:
    """A JSON object (empty text is ``{}``), or an error."""
    if not raw.strip():
        return {}, None
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        return {}, f"This is not valid JSON ({exc})."
    if not isinstance(value, dict):
        return {}, 'Enter a JSON object, like {"team": "billing"}.'
    return value, None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _number(raw: str, kind: type[int] | type[float]) -> tuple[int | float | None, str | None]:
    raw = raw.strip()
    if not raw:
        return None, None
    try:
        return kind(raw), None
    except ValueError:
        return None, "Enter a whole number, like 5." if kind is int else "Enter a number, like 2.5."


def webhook_data(values: Mapping[str, Any], *, create: bool) -> tuple[dict[str, Any], Form[Any]]:
    """The API body a webhook form stands for, and a form holding any parse errors."""
    form: Form[Any] = Form(values=dict(values))
    data: dict[str, Any] = {
        "name": values["name"].strip(),
        "url": values["url"].strip(),
        "event_types": split_event_types(values["event_types"]),
        "description": values["description"],
        "include_payload": bool(values["include_payload"]),
    }
    headers, problem = parse_headers(values["headers"])
    if problem:
        form.errors["headers"] = problem
    data["headers"] = headers
    metadata, problem = parse_metadata(values["metadata"])
    if problem:
        form.errors["metadata"] = problem
    data["metadata"] = metadata
    for name in INT_FIELDS:
        data[name], problem = _number(values[name], int)
        if problem:
            form.errors[name] = problem
    for name in FLOAT_FIELDS:
        data[name], problem = _number(values[name], float)
        if problem:
            form.errors[name] = problem
    if create:
        data["enabled"] = bool(values["enabled"])
        if values["secret"].strip():
            data["secret"] = values["secret"].strip()
    # Fields that failed to parse are left out, so the model reports only the others.
    for name in form.errors:
        data.pop(name, None)
    return data, form


# Event types


def event_type_values(form: Mapping[str, Any]) -> dict[str, Any]:
    """The add-event-type form as submitted."""
    return {
        "name": text(form, "name").strip(),
        "description": text(form, "description"),
        "enabled": "enabled" in form,
    }
