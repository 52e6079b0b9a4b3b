"""Dispatcher: a self-hosted, asyncio-native webhook dispatcher on Postgres."""

__version__ = "0.1.0"
