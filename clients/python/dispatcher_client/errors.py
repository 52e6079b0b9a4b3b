"""The exceptions of an error answer: one class per status a caller may want to catch.

Each carries the HTTP ``status`` and the RFC 9457 ``problem`` JSON the server sent (or one made
up from a non-JSON answer); no answer at all is :class:`ConnectionFailed` with ``status`` 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "BadRequest",
    "Conflict",
    "ConnectionFailed",
    "DispatcherError",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "ServerError",
    "ServiceUnavailable",
    "Unauthorized",
    "ValidationFailed",
    "error_for",
]


class DispatcherError(Exception):
    """An error answer (or no answer at all): ``status`` and the problem-details JSON."""

    def __init__(self, status: int, problem: Mapping[str, Any]) -> None:
        self.status = status
        self.problem: dict[str, Any] = dict(problem)
        super().__init__(self._describe())

    @property
    def title(self) -> str:
        """The problem's short title."""
        return str(self.problem.get("title") or "")

    @property
    def detail(self) -> str:
        """The problem's human-readable explanation."""
        return str(self.problem.get("detail") or "")

    @property
    def errors(self) -> list[dict[str, str]]:
        """Field errors of a validation failure (``[{"field", "message"}]``)."""
        errors = self.problem.get("errors")
        return list(errors) if isinstance(errors, list) else []

    def _describe(self) -> str:
        text = f"{self.status} {self.title}".strip()
        if self.detail:
            text += f": {self.detail}"
        for err in self.errors:
            text += f"\n  {err.get('field')}: {err.get('message')}"
        return text


class BadRequest(DispatcherError):
    """400: the body is not JSON, or not the expected shape."""


class Unauthorized(DispatcherError):
    """401: no token, or a token the server does not know."""


class Forbidden(DispatcherError):
    """403: the token may not do this (a publish token may only publish)."""


class NotFound(DispatcherError):
    """404: no such webhook, delivery, event or event type."""


class Conflict(DispatcherError):
    """409: the resource is not in a state that allows this."""


class PayloadTooLarge(DispatcherError):
    """413: the body is larger than the server accepts."""


class ValidationFailed(DispatcherError):
    """422: a field is invalid; see :attr:`errors`."""


class RateLimited(DispatcherError):
    """429: too many requests."""


class ServerError(DispatcherError):
    """A 5xx answer."""


class ServiceUnavailable(ServerError):
    """503: the server cannot take the request now (database down, ingestion off)."""


class ConnectionFailed(DispatcherError):
    """No HTTP answer: connection refused or reset, or a timeout. ``status`` is 0."""


_BY_STATUS: dict[int, type[DispatcherError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationFailed,
    429: RateLimited,
    503: ServiceUnavailable,
}


def error_for(status: int, problem: Mapping[str, Any]) -> DispatcherError:
    """The exception for an error answer."""
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else DispatcherError)
    return cls(status, problem)
