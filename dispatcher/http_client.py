"""Which sender the engine sends with: ``DISPATCHER_HTTP_CLIENT`` (pyreqwest or aiohttp)."""

from __future__ import annotations

from dispatcher.config import Settings
from dispatcher.sender import Sender
from dispatcher.sender_aiohttp import AiohttpSender
from dispatcher.sender_reqwest import ReqwestSender


def create_sender(settings: Settings, *, extra_ca: bytes | None = None) -> Sender:
    """The sender ``settings`` ask for; ``extra_ca`` (PEM) is trusted besides the system's
    roots (tests use their own CA)."""
    allow_private = settings.allow_private_targets
    if settings.http_client == "aiohttp":
        return AiohttpSender(allow_private=allow_private, extra_ca=extra_ca)
    return ReqwestSender(allow_private=allow_private, extra_ca=extra_ca)
