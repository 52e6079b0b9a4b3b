"""What a part raises when it is not serving yet (start-up) or any more (shutdown)."""

from __future__ import annotations


class NotRunning(Exception):
    """Ingestion is not accepting events right now."""
