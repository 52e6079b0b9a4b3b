"""Signing in with the admin token, and signing out."""

from __future__ import annotations

from aiohttp import web

from admin.keys import SESSION, SIGNER, THROTTLE
from admin.middleware import CSRF_FIELD, LOGIN, safe_next
from admin.render import delete_cookie, redirect, render, set_cookie
from admin.session import (
    LOGIN_COOKIE,
    LOGIN_FORM_SECONDS,
    SESSION_COOKIE,
    SESSION_SECONDS,
)
from dispatcher.app_keys import POOL, TOKENS
from dispatcher.store import console_sessions

routes = web.RouteTableDef()


def _login_page(
    request: web.Request, *, status: int = 200, error: str | None = None
) -> web.Response:
    signer = request.app[SIGNER]
    nonce = signer.login_nonce()
    response = render(
        request,
        "login.html",
        {
            "login_csrf": signer.login_csrf(nonce),
            "next": safe_next(request.query.get("next")),
            "error": error,
        },
        status=status,
    )
    set_cookie(response, request, LOGIN_COOKIE, nonce, max_age=LOGIN_FORM_SECONDS, path=LOGIN)
    return response


def _too_many(request: web.Request, error: str, retry_after: int) -> web.Response:
    response = _login_page(request, status=429, error=error)
    response.headers["Retry-After"] = str(retry_after)
    return response


@routes.get(LOGIN)
async def login_form(request: web.Request) -> web.Response:
    """The sign-in page (straight to the overview when already signed in)."""
    if SESSION in request:
        return redirect(request, safe_next(request.query.get("next")))
    return _login_page(request)


@routes.post(LOGIN)
async def login(request: web.Request) -> web.Response:
    """Check the admin token; on success start a session."""
    signer = request.app[SIGNER]
    form = await request.post()
    presented = form.get(CSRF_FIELD)
    if not signer.login_csrf_ok(
        request.cookies.get(LOGIN_COOKIE), presented if isinstance(presented, str) else None
    ):
        return _login_page(
            request,
            status=403,
            error="The sign-in form expired. Please enter the token again.",
        )
    client = request.remote or "unknown"
    throttle = request.app[THROTTLE]
    token = form.get("token")
    token = token.strip() if isinstance(token, str) else ""
    # The right token signs in at once: the throttle holds back wrong guesses only, so no
    # flood of them (from any address, the operator's included) keeps the operator out.
    if not token or request.app[TOKENS].role_of(token) != "admin":
        # An address over its limit is answered before any queue, so it cannot fill it.
        if throttle.blocked(client):
            throttle.failed(client)
            return _too_many(
                request,
                "Too many wrong tokens from your address. Wait a few minutes and retry.",
                int(throttle.window_seconds),
            )
        paced = await throttle.wait_turn()
        throttle.failed(client)
        if not paced:
            return _too_many(request, "Too many sign-in attempts right now. Please retry.", 1)
        return _login_page(request, status=401, error="That is not the admin token.")
    cookie, _session = signer.issue()
    next_path = form.get("next")
    response = redirect(request, safe_next(next_path if isinstance(next_path, str) else None))
    set_cookie(response, request, SESSION_COOKIE, cookie, max_age=SESSION_SECONDS)
    delete_cookie(response, request, LOGIN_COOKIE, path=LOGIN)
    return response


@routes.post("/admin/logout")
async def logout(request: web.Request) -> web.Response:
    """End the session (the middleware has checked the CSRF token).

    The revocation is stored before the cookie is deleted: with the database unreachable this
    is a 503 page and the operator is still signed in, rather than told they are signed out
    while the old cookie keeps working.
    """
    session = request[SESSION]
    await console_sessions.revoke(request.app[POOL], session.nonce, session.expires)
    response = redirect(request, LOGIN, flash=("info", "You have been signed out."))
    delete_cookie(response, request, SESSION_COOKIE)
    return response
