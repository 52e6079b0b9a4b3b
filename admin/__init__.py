"""The admin console at ``/admin``: server-rendered pages over the same store and API logic.

``setup(app)`` adds the console to the Dispatcher application: its routes, its middleware
(sessions, CSRF, security headers, HTML error pages), the Jinja2 templates and the static
CSS. The console signs operators in with the admin token; nothing else is needed.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from admin import (
    deliveries,
    event_types,
    events,
    login,
    overview,
    portal,
    replay,
    tenants,
    webhooks,
)
from admin.keys import JINJA, SIGNER, THROTTLE
from admin.middleware import admin_middleware
from admin.render import FILTERS
from admin.session import LoginThrottle, Signer
from dispatcher.app_keys import TOKENS

HERE = Path(__file__).parent


def setup(app: web.Application) -> None:
    """Serve the console at ``/admin`` from ``app`` (call before the app starts)."""
    env = aiohttp_jinja2.setup(
        app,
        app_key=JINJA,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        filters=FILTERS,
        default_helpers=False,
    )
    env.globals.pop("app", None)  # templates get what the handlers give them, nothing more
    app[SIGNER] = Signer(app[TOKENS].admin)
    app[THROTTLE] = LoginThrottle()
    app.middlewares.append(admin_middleware)
    for module in (login, overview, webhooks, replay, deliveries, events, event_types, tenants):
        app.add_routes(module.routes)
    static = app.router.add_static(
        "/admin/static", HERE / "static", name="admin-static", append_version=True
    )
    # Versioned URL (?v=<hash>), so browsers may cache the stylesheet and still see changes.
    env.globals["css_url"] = str(static.url_for(filename="admin.css"))
    portal.setup(app)
