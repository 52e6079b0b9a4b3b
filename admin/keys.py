"""Typed keys for what the console keeps on the application and on each request."""

from __future__ import annotations

import jinja2
from aiohttp import web

from admin.session import LoginThrottle, Session, Signer

JINJA = web.AppKey("admin_jinja", jinja2.Environment)
SIGNER = web.AppKey("admin_signer", Signer)
THROTTLE = web.AppKey("admin_throttle", LoginThrottle)

SESSION = web.RequestKey("admin_session", Session)
# Per-request nonce that lets the page's own inline script run under the CSP.
NONCE = web.RequestKey("admin_nonce", str)
