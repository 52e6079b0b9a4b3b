"""Rendering portal pages, redirects with flash messages, and the portal's cookies."""

from __future__ import annotations

from collections.abc import Mapping
from http.cookies import SimpleCookie
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from admin.keys import JINJA, NONCE
from admin.portal.keys import PORTAL_SESSION, PORTAL_SIGNER, TENANT
from admin.portal.session import COOKIE_PATH, FLASH_COOKIE, FLASH_SECONDS
from admin.render import is_secure
from admin.session import Flash
from dispatcher.app_keys import SETTINGS

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")


def cross_site_ok(request: web.Request) -> bool:
    """Whether the portal's cookies may be ``SameSite=None; Secure`` (so it works in a
    third-party iframe): the browser came over https, or to a loopback host (which browsers
    treat as secure), or the public URL the links point at is https."""
    public = str(getattr(request.app[SETTINGS], "public_url", None) or "")
    host = (request.url.host or "").lower()
    return (
        is_secure(request)
        or public.startswith("https://")
        or host in LOOPBACK_HOSTS
        or host.endswith(".localhost")
    )


def set_cookie(
    response: web.StreamResponse, request: web.Request, name: str, value: str, *, max_age: int
) -> None:
    """One of the portal's cookies: HttpOnly, Path=/portal. Where it can be (https, loopback)
    it is ``SameSite=None; Secure; Partitioned``: the portal embedded in a customer's page
    gets a cookie of its own, kept apart per embedding site (CHIPS), which browsers allow even
    when they block third-party cookies. Over plain http it is ``SameSite=Lax``."""
    cross = cross_site_ok(request)
    if not cross:
        response.set_cookie(
            name, value, max_age=max_age, path=COOKIE_PATH, httponly=True, samesite="Lax"
        )
        return
    # Python 3.11's http.cookies does not know the Partitioned attribute (3.14 does): the
    # morsel is encoded by the standard library and the attribute appended to it.
    jar: SimpleCookie = SimpleCookie()
    jar[name] = value
    morsel = jar[name]
    morsel["path"] = COOKIE_PATH
    morsel["max-age"] = str(max_age)
    morsel["httponly"] = True
    morsel["secure"] = True
    morsel["samesite"] = "None"
    response.headers.add("Set-Cookie", morsel.OutputString() + "; Partitioned")


def delete_cookie(response: web.StreamResponse, request: web.Request, name: str) -> None:
    """Expire one of the portal's cookies (with the same attributes, so the same partition)."""
    set_cookie(response, request, name, "", max_age=0)


def redirect(
    request: web.Request, location: str, flash: tuple[str, str] | None = None
) -> web.Response:
    """303 See Other to ``location``, optionally with a flash message for the next page."""
    response = web.Response(status=303, headers={"Location": location})
    if flash is not None:
        value = request.app[PORTAL_SIGNER].pack_flash(Flash(*flash))
        set_cookie(response, request, FLASH_COOKIE, value, max_age=FLASH_SECONDS)
    return response


def render(
    request: web.Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
) -> web.Response:
    """Render ``portal/<template>`` with the portal's common context."""
    session = request.get(PORTAL_SESSION)
    pending = request.app[PORTAL_SIGNER].unpack_flash(request.cookies.get(FLASH_COOKIE))
    tenant = request.get(TENANT)
    base: dict[str, Any] = {
        "csrf_token": session.csrf if session else "",
        "signed_in": session is not None and tenant is not None,
        "tenant": tenant,
        "flashes": [pending] if pending else [],
        "path": request.path,
        "nonce": request.get(NONCE, ""),
        "nav": "",
    }
    base.update(context or {})
    response = aiohttp_jinja2.render_template(
        "portal/" + template, request, base, status=status, app_key=JINJA
    )
    if FLASH_COOKIE in request.cookies:
        delete_cookie(response, request, FLASH_COOKIE)
    return response
