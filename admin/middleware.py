"""The console's own gatekeeper: session check, CSRF check, security headers, HTML errors.

The API's bearer-token middleware leaves ``/admin`` alone; this one handles it instead. It
runs inside the application's problem middleware, so console errors become HTML pages here
before they could become problem JSON.
"""

from __future__ import annotations

import secrets
from urllib.parse import quote

import asyncpg
import structlog
from aiohttp import web

from admin.keys import NONCE, SESSION, SIGNER
from admin.render import redirect, render
from admin.session import SESSION_COOKIE
from dispatcher.app_keys import POOL
from dispatcher.db import DB_UNAVAILABLE
from dispatcher.problems import Handler, Problem, client_gone, disconnected, unreadable_body
from dispatcher.readiness import NotRunning
from dispatcher.store import console_sessions

log = structlog.get_logger("dispatcher.admin")

PREFIX = "/admin"
STATIC = "/admin/static/"
LOGIN = "/admin/login"
CSRF_FIELD = "csrf_token"
# Starting up, schema not migrated yet, or the database out of reach: a 503 page.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    NotRunning,
    asyncpg.UndefinedTableError,
    *DB_UNAVAILABLE,
)


def is_console(path: str) -> bool:
    """Whether a path belongs to the console."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def safe_next(value: str | None) -> str:
    """Where to go after logging in: only a console path on this site."""
    if (
        value
        and is_console(value)
        and value.isprintable()
        and not any(ch in value for ch in " \\")
        and len(value) <= 2000
    ):
        return value
    return PREFIX + "/"


def _csp(nonce: str) -> str:
    return (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; "
        f"script-src 'nonce-{nonce}'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    )


def error_page(request: web.Request, status: int, title: str, detail: str) -> web.Response:
    """An HTML error page."""
    return render(
        request, "error.html", {"status": status, "title": title, "detail": detail}, status=status
    )


@web.middleware
async def admin_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Gate every ``/admin`` request; other paths pass straight through."""
    path = request.path
    if not is_console(path):
        return await handler(request)
    if path.startswith(STATIC):
        return await handler(request)

    request[NONCE] = secrets.token_urlsafe(12)
    response = await _gated(request, handler)
    response.headers.setdefault("Content-Security-Policy", _csp(request[NONCE]))
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers["Cache-Control"] = "no-store"
    return response


async def _gated(request: web.Request, handler: Handler) -> web.StreamResponse:
    signer = request.app[SIGNER]
    session = signer.read(request.cookies.get(SESSION_COOKIE))
    if session is not None:
        # Logouts live in the database, so every instance refuses a signed-out cookie at once;
        # when that cannot be checked, nothing is let in on a cookie that may be revoked.
        try:
            if await console_sessions.is_revoked(request.app[POOL], session.nonce):
                session = None
        except UNAVAILABLE as exc:
            return _unavailable(request, exc)
    if session is not None:
        request[SESSION] = session
    elif request.path != LOGIN:
        target = LOGIN
        if request.method in ("GET", "HEAD") and request.path_qs not in (PREFIX, PREFIX + "/"):
            target += "?next=" + quote(request.path_qs, safe="")
        return redirect(request, target)

    if request.method == "POST" and request.path != LOGIN:
        assert session is not None
        form = await request.post()
        presented = form.get(CSRF_FIELD)
        if not signer.csrf_ok(session, presented if isinstance(presented, str) else None):
            log.warning("admin_csrf_rejected", path=request.path)
            return error_page(
                request,
                403,
                "This form could not be accepted",
                "It was missing its security token or the token has expired. "
                "Go back, reload the page and try again.",
            )

    try:
        return await handler(request)
    except Problem as problem:
        return error_page(request, problem.status, problem.title, problem.detail)
    except web.RequestPayloadError as exc:
        # Labelled gzip but not gzip, and the like: the sender's error, not ours.
        return error_page(request, 400, "The form could not be read", unreadable_body(exc).detail)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_page(request, exc.status, exc.reason, _http_detail(exc.status))
    except UNAVAILABLE as exc:
        return _unavailable(request, exc)
    except Exception:
        log.exception("admin_unhandled_error", method=request.method, path=request.path)
        return error_page(
            request, 500, "Something went wrong", "An internal error occurred; it has been logged."
        )


def _unavailable(request: web.Request, exc: BaseException) -> web.Response:
    """The 503 page for a console that is starting or cannot reach its database."""
    if client_gone(request):  # a form upload cut short, not a database outage
        return disconnected(request)
    if isinstance(exc, NotRunning | asyncpg.UndefinedTableError):
        log.warning("admin_not_ready", error=str(exc), path=request.path)
        return error_page(request, 503, "Not ready", "Dispatcher is starting; try again shortly.")
    log.warning("admin_database_unavailable", error=str(exc), path=request.path)
    response = error_page(
        request, 503, "Database unreachable", "The database is unreachable; try again shortly."
    )
    response.headers["Retry-After"] = "5"
    return response


def _http_detail(status: int) -> str:
    if status == 404:
        return "There is nothing at this address. It may have been deleted."
    if status == 405:
        return "This page does not accept that kind of request."
    return "The request could not be completed."
