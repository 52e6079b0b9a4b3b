"""Typed keys for what the application shares between handlers."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from dispatcher.auth import Tokens
from dispatcher.budget import ByteBudget
from dispatcher.config import Settings
from dispatcher.engine import Engine
from dispatcher.ingest import Ingestor
from dispatcher.listener import Listener
from dispatcher.operational import Publisher
from dispatcher.registry import Registry
from dispatcher.scheduler import Scheduler

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
TOKENS = web.AppKey("tokens", Tokens)
DSN = web.AppKey("dsn", str)
REGISTRY = web.AppKey("registry", Registry)
ENGINE = web.AppKey("engine", Engine)
SCHEDULER = web.AppKey("scheduler", Scheduler)
INGESTOR = web.AppKey("ingestor", Ingestor)
LISTENER = web.AppKey("listener", Listener)
# Operational events (dispatcher.*): the engine's announcements, published.
OPERATIONAL = web.AppKey("operational", Publisher)
# Request-body bytes ingestion holds at once in this process (DISPATCHER_INGEST_MEMORY_BYTES).
INGEST_BUDGET = web.AppKey("ingest_budget", ByteBudget)
