"""Rendering pages: the shared template context, redirects with flash messages, filters."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp_jinja2
import orjson
from aiohttp import web
from markupsafe import Markup, escape

from admin.keys import JINJA, NONCE, SESSION, SIGNER
from admin.session import COOKIE_PATH, FLASH_COOKIE, FLASH_SECONDS, Flash


def is_secure(request: web.Request) -> bool:
    """Whether the browser reached us over https (directly or through a TLS proxy)."""
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def set_cookie(
    response: web.StreamResponse,
    request: web.Request,
    name: str,
    value: str,
    *,
    max_age: int,
    path: str = COOKIE_PATH,
) -> None:
    """Set one of the console's cookies: HttpOnly, SameSite=Strict, Secure on https."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        httponly=True,
        samesite="Strict",
        secure=is_secure(request),
    )


def delete_cookie(
    response: web.StreamResponse, request: web.Request, name: str, path: str = COOKIE_PATH
) -> None:
    """Expire one of the console's cookies."""
    response.del_cookie(
        name, path=path, httponly=True, samesite="Strict", secure=is_secure(request)
    )


def redirect(
    request: web.Request, location: str, flash: tuple[str, str] | None = None
) -> web.Response:
    """303 See Other to ``location``, optionally carrying a flash message to the next page."""
    response = web.Response(status=303, headers={"Location": location})
    if flash is not None:
        value = request.app[SIGNER].pack_flash(Flash(*flash))
        set_cookie(response, request, FLASH_COOKIE, value, max_age=FLASH_SECONDS)
    return response


def render(
    request: web.Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    flashes: list[Flash] | None = None,
) -> web.Response:
    """Render ``template`` with the console's common context."""
    session = request.get(SESSION)
    pending = request.app[SIGNER].unpack_flash(request.cookies.get(FLASH_COOKIE))
    shown = ([pending] if pending else []) + (flashes or [])
    base: dict[str, Any] = {
        "csrf_token": session.csrf if session else "",
        "signed_in": session is not None,
        "flashes": shown,
        "path": request.path,
        "nonce": request.get(NONCE, ""),
    }
    base.update(context or {})
    response = aiohttp_jinja2.render_template(template, request, base, status=status, app_key=JINJA)
    if FLASH_COOKIE in request.cookies:
        delete_cookie(response, request, FLASH_COOKIE)
    return response


# Template filters


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def when(value: datetime | None) -> str:
    """Absolute time in UTC, to the second."""
    if value is None:
        return "—"
    return _aware(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def relative(value: datetime | None, now: datetime | None = None) -> str:
    """``3 min ago`` / ``in 2 h`` / ``just now``."""
    if value is None:
        return "—"
    now = now or datetime.now(UTC)
    seconds = (_aware(value) - now).total_seconds()
    future = seconds > 0
    span = abs(seconds)
    if span < 5:
        return "just now" if not future else "now"
    if span < 60:
        text = f"{int(span)} s"
    elif span < 3600:
        text = f"{int(span // 60)} min"
    elif span < 86400:
        text = f"{int(span // 3600)} h"
    else:
        text = f"{int(span // 86400)} d"
    return f"in {text}" if future else f"{text} ago"


def timestamp(value: datetime | None) -> Markup:
    """A ``<time>`` element: relative text, the absolute time on hover."""
    if value is None:
        return Markup('<span class="muted">—</span>')
    iso = _aware(value).astimezone(UTC).isoformat()
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        iso, when(value), relative(value)
    )


def pretty_json(value: Any) -> str:
    """JSON indented for reading (the template escapes it)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    except TypeError:
        import json

        return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def duration(ms: float | None) -> str:
    """``87 ms`` / ``1.24 s``."""
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.2f} s"


def percent(value: float | None) -> str:
    """``99.2%``; ``—`` when there is nothing to measure."""
    if value is None:
        return "—"
    if value >= 0.9995 or value == 0:
        return f"{value * 100:.0f}%"
    return f"{value * 100:.1f}%"


def number(value: float | None) -> str:
    """Thousands separated."""
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return f"{int(value):,}"


def highlight(text: str, query: str) -> Markup:
    """``text`` escaped, with case-insensitive matches of ``query`` in ``<mark>``."""
    if not query:
        return escape(text)
    lowered, needle = text.lower(), query.lower()
    out: list[str] = []
    start = 0
    while (found := lowered.find(needle, start)) >= 0:
        out.append(escape(text[start:found]))
        out.append(Markup("<mark>{}</mark>").format(text[found : found + len(query)]))
        start = found + len(query)
    out.append(escape(text[start:]))
    return Markup("").join(out)


FILTERS: dict[str, Callable[..., str]] = {
    "when": when,
    "relative": relative,
    "timestamp": timestamp,
    "pretty_json": pretty_json,
    "duration": duration,
    "percent": percent,
    "number": number,
    "highlight": highlight,
}
