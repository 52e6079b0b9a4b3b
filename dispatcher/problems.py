"""RFC 9457 problem details, and the middleware that turns every error into one.

Handlers raise :class:`Problem` (or let aiohttp raise its HTTP errors); nothing reaches the
client as a bare 500 page. Unexpected exceptions are logged and answered with a problem JSON.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from typing import Any

import asyncpg
import orjson
import structlog
from aiohttp import web
from pydantic import ValidationError

from dispatcher.db import CONFLICT, DB_UNAVAILABLE
from dispatcher.readiness import NotRunning

log = structlog.get_logger(__name__)

CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "https://dispatcher.dev/problems/"


class Problem(Exception):
    """An error answer: status, a short title, a human detail and optional field errors."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        title: str | None = None,
        errors: Sequence[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.type = TYPE_BASE + slug if slug else "about:blank"
        self.errors = list(errors) if errors is not None else None
        self.headers = headers or {}

    def response(self) -> web.Response:
        """Render as ``application/problem+json``."""
        body: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors is not None:
            body["errors"] = self.errors
        response = web.Response(
            status=self.status,
            body=orjson.dumps(body),
            content_type=CONTENT_TYPE,
            headers=self.headers,
        )
        if self.headers.get("Connection") == "close":
            # The rest of the request (an unread body) is not worth reading: hang up.
            response.force_close()
        return response


def field_path(loc: Sequence[int | str]) -> str:
    """``("headers", "X-A")`` -> ``headers.X-A``; list positions as ``[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "body"


def validation_problem(exc: ValidationError, *, prefix: Sequence[int | str] = ()) -> Problem:
    """A 422 listing every field error pydantic found."""
    errors = []
    for err in exc.errors(include_url=False, include_input=False):
        # Drop pydantic's union/type tags such as "function-after[...]" from the location.
        loc = [p for p in err["loc"] if isinstance(p, int) or "[" not in p]
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        errors.append({"field": field_path([*prefix, *loc]), "message": msg})
    return validation_failed(errors)


def validation_failed(
    errors: Sequence[dict[str, str]], detail: str = "The request body failed validation."
) -> Problem:
    """The 422 every validation failure answers with: ``errors`` lists ``{field, message}``."""
    return Problem(422, detail, slug="validation", title="Validation failed", errors=errors)


def invalid(field: str, message: str, detail: str | None = None) -> Problem:
    """A 422 for one bad field outside a request body (query string, path)."""
    return validation_failed(
        [{"field": field, "message": message}], detail or f"{field}: {message}"
    )


def not_found(what: str, ident: str) -> Problem:
    """A 404 for a missing resource."""
    return Problem(404, f"{what} {ident!r} does not exist.", slug="not-found")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _fk_field(constraint: str | None, table: str | None) -> str:
    """The column a foreign key named by Postgres's default (``<table>_<column>_fkey``) holds."""
    if constraint and table and constraint.startswith(table + "_") and constraint.endswith("_fkey"):
        return constraint[len(table) + 1 : -len("_fkey")] or "body"
    return "body"


# The status logged for a request whose client left before it was answered (nginx's
# "client closed request"). It is never sent: there is no one to send it to.
CLIENT_CLOSED = 499


class ClientDisconnected(Exception):
    """The client went away while its request body was being read."""


def client_gone(request: web.Request) -> bool:
    """Whether the client's connection is closed already (aiohttp drops it on disconnect)."""
    transport = request.transport
    return transport is None or transport.is_closing()


def disconnected(request: web.Request) -> web.Response:
    """Log a client abort; the answer is only for the access log, it cannot reach anyone."""
    log.info("client_disconnected", method=request.method, path=request.path)
    return web.Response(status=CLIENT_CLOSED)


# Content codings a request body may carry (what aiohttp decodes); others get 415.
BODY_ENCODINGS = ("identity", "gzip", "deflate")


def unreadable_body(exc: BaseException) -> Problem:
    """The 400 for a body aiohttp could not decode (labelled gzip but not gzip, bad chunks)."""
    # aiohttp's RequestPayloadError wraps the parser's error, whose .message says what failed.
    reason = getattr(exc.__cause__, "message", None) or str(exc)
    return Problem(400, f"The body could not be read: {reason}.", slug="malformed")


def unsupported_encoding(encoding: str) -> Problem | None:
    """A 415 for a ``Content-Encoding`` the server does not decode, else None.

    aiohttp passes a coding it does not know (``x-gzip``, ``gzip, gzip``, ``foo``) through
    undecoded; read as JSON, such a body would be misread rather than refused.
    """
    coding = encoding.strip().lower()
    if not coding or coding in BODY_ENCODINGS:
        return None
    return Problem(
        415,
        f"Content-Encoding {encoding[:50]!r} is not supported; send the body as it is, "
        "or compressed with gzip or deflate.",
        slug="unsupported-encoding",
        headers={"Accept-Encoding": ", ".join(BODY_ENCODINGS)},
    )


def unavailable(detail: str, retry_after: int = 1) -> Problem:
    """A 503: nothing was changed; the client may simply try again after ``Retry-After``."""
    return Problem(503, detail, slug="unavailable", headers={"Retry-After": str(retry_after)})


def _unavailable(detail: str, retry_after: int = 1) -> web.Response:
    return unavailable(detail, retry_after).response()


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every failure with problem JSON; never a 500 page for bad input."""
    try:
        return await handler(request)
    except Problem as p:
        return p.response()
    except ValidationError as exc:
        return validation_problem(exc).response()
    except web.RequestPayloadError as exc:
        # A body that could not be read as sent, e.g. by request.post(): the client's error.
        return unreadable_body(exc).response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        detail = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else None
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return Problem(
            exc.status, detail or exc.reason or HTTPStatus(exc.status).phrase, headers=headers
        ).response()
    except asyncpg.DataError as exc:
        # Input Postgres cannot represent that validation did not catch: still the client's.
        log.warning("invalid_input", error=str(exc), path=request.path)
        return validation_failed([], f"The input cannot be stored: {exc}").response()
    except asyncpg.ForeignKeyViolationError as exc:
        # What the request names was deleted between its check and the write (a tenant
        # deleted while a webhook is created for it): nothing was stored.
        log.info("referent_gone", constraint=exc.constraint_name, path=request.path)
        field = _fk_field(exc.constraint_name, getattr(exc, "table_name", None))
        return validation_failed(
            [{"field": field, "message": "refers to something that no longer exists"}],
            f"{field}: refers to something that no longer exists.",
        ).response()
    except (NotRunning, asyncpg.UndefinedTableError) as exc:
        # Starting up, shutting down, or pointed at a database that is not migrated yet.
        log.warning("not_ready", error=str(exc), path=request.path)
        return _unavailable("Dispatcher is not ready; try again shortly.", retry_after=2)
    except CONFLICT as exc:
        # A deadlock or serialization failure with concurrent work: nothing was changed.
        log.warning("database_conflict", error=str(exc), path=request.path)
        return _unavailable(
            "The database undid this request because of a conflicting one; try again."
        )
    except ClientDisconnected:
        return disconnected(request)
    except DB_UNAVAILABLE as exc:
        # A body read cut short raises ConnectionResetError, an OSError like a lost database.
        if client_gone(request):
            return disconnected(request)
        log.warning("database_unavailable", error=str(exc), path=request.path)
        return _unavailable("The database is unreachable; try again shortly.")
    except Exception:
        log.exception("unhandled_error", method=request.method, path=request.path)
        return Problem(500, "An internal error occurred; it has been logged.").response()
