"""Typed keys for what the application shares between handlers."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from dispatcher.auth import Tokens
from dispatcher.config import Settings

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
TOKENS = web.AppKey("tokens", Tokens)
DSN = web.AppKey("dsn", str)
