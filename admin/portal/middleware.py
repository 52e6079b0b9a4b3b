"""The portal's gatekeeper: tenant session, CSRF, security headers, HTML errors.

A request under ``/portal`` (other than the sign-in link itself) needs a portal session whose
tenant still exists; the handler then runs as that tenant (``request[PRINCIPAL]`` is a tenant
principal, so the API handlers the pages call are scoped like a tenant token's calls), and
every page looks its objects up through ``dispatcher.store.portal``, inside the tenant.
The portal may be framed only by ``DISPATCHER_PORTAL_FRAME_ANCESTORS`` (CSP frame-ancestors).
"""

from __future__ import annotations

import secrets

import structlog
from aiohttp import web

from admin.keys import NONCE
from admin.middleware import UNAVAILABLE, _http_detail
from admin.portal.keys import PORTAL_SESSION, PORTAL_SIGNER, TENANT, Tenant
from admin.portal.render import delete_cookie, render
from admin.portal.session import SESSION_COOKIE
from dispatcher.app_keys import POOL, SETTINGS
from dispatcher.problems import Handler, Problem, client_gone, disconnected, unreadable_body
from dispatcher.store import console_sessions
from dispatcher.store import portal as store
from dispatcher.tenancy import PRINCIPAL, Principal

log = structlog.get_logger("dispatcher.portal")

PREFIX = "/portal"
SIGNIN = "/portal/signin/"
SIGNED_OUT = "/portal/signed-out"
CSRF_FIELD = "csrf_token"
DEFAULT_FRAME_ANCESTORS = "'self'"


def is_portal(path: str) -> bool:
    """Whether a path belongs to the portal."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def frame_ancestors(request: web.Request) -> str:
    """The configured ``frame-ancestors`` sources (``'self'`` unless configured)."""
    value = getattr(request.app[SETTINGS], "portal_frame_ancestors", None)
    if isinstance(value, list | tuple):
        value = " ".join(value)
    return str(value or DEFAULT_FRAME_ANCESTORS).strip() or DEFAULT_FRAME_ANCESTORS


def csp(nonce: str, ancestors: str) -> str:
    """The portal's Content-Security-Policy."""
    return (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; "
        f"script-src 'nonce-{nonce}'; form-action 'self'; frame-ancestors {ancestors}; "
        "base-uri 'none'"
    )


def log_path(path: str) -> str:
    """A path fit for the logs: a sign-in link's secret is cut off."""
    return SIGNIN + "..." if path.startswith(SIGNIN) else path


def error_page(request: web.Request, status: int, title: str, detail: str) -> web.Response:
    """An HTML error page."""
    return render(
        request, "error.html", {"status": status, "title": title, "detail": detail}, status=status
    )


def signed_out_page(request: web.Request, *, status: int = 401) -> web.Response:
    """What a browser without a (working) portal session sees: how to get back in."""
    response = render(request, "signed_out.html", status=status)
    if SESSION_COOKIE in request.cookies:
        delete_cookie(response, request, SESSION_COOKIE)
    return response


@web.middleware
async def portal_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Gate every ``/portal`` request; other paths pass straight through."""
    if not is_portal(request.path):
        return await handler(request)
    request[NONCE] = secrets.token_urlsafe(12)
    response = await _gated(request, handler)
    response.headers["Content-Security-Policy"] = csp(request[NONCE], frame_ancestors(request))
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # Sign-in links carry their secret in the path: never send a portal URL as a referrer.
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


async def _gated(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        if request.path.startswith(SIGNIN) or request.path == SIGNED_OUT:
            return await handler(request)
        signer = request.app[PORTAL_SIGNER]
        session = signer.read_portal(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return signed_out_page(request)
        pool = request.app[POOL]
        # Sign-outs live in the database (every instance refuses the cookie at once), and
        # the tenant must still exist: deleting a tenant ends its sessions.
        if await console_sessions.is_revoked(pool, session.nonce):
            return signed_out_page(request)
        found = await store.tenant(pool, session.tenant_id, session.since)
        if found is None:
            return signed_out_page(request)
        request[PORTAL_SESSION] = session
        request[TENANT] = Tenant(found["id"], found["name"])
        request[PRINCIPAL] = Principal(role="tenant", tenant_id=found["id"])
        if request.method == "POST":
            form = await request.post()
            presented = form.get(CSRF_FIELD)
            if not signer.portal_csrf_ok(
                session, presented if isinstance(presented, str) else None
            ):
                log.warning("portal_csrf_rejected", path=log_path(request.path))
                return error_page(
                    request,
                    403,
                    "This form could not be accepted",
                    "It was missing its security token or the token has expired. "
                    "Go back, reload the page and try again.",
                )
        return await handler(request)
    except Problem as problem:
        return error_page(request, problem.status, problem.title, problem.detail)
    except web.RequestPayloadError as exc:
        return error_page(request, 400, "The form could not be read", unreadable_body(exc).detail)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_page(request, exc.status, exc.reason, _http_detail(exc.status))
    except UNAVAILABLE as exc:
        if client_gone(request):
            return disconnected(request)
        log.warning("portal_unavailable", error=str(exc), path=log_path(request.path))
        response = error_page(
            request,
            503,
            "Temporarily unavailable",
            "The portal cannot reach its database; try again shortly.",
        )
        response.headers["Retry-After"] = "5"
        return response
    except Exception:
        log.exception("portal_unhandled_error", method=request.method, path=log_path(request.path))
        return error_page(
            request, 500, "Something went wrong", "An internal error occurred; it has been logged."
        )
