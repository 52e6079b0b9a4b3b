"""Typed announcements: a part owns a :class:`Signal` and sends small frozen events on it.

The announcing part never knows who listens; ``dispatcher/app.py`` alone connects listeners.
Listeners run synchronously, in the order connected, and must not block (start a task).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

E = TypeVar("E")


class Signal(Generic[E]):
    """A list of listeners for one kind of event."""

    __slots__ = ("_listeners",)

    def __init__(self) -> None:
        self._listeners: list[Callable[[E], None]] = []

    def connect(self, listener: Callable[[E], None]) -> None:
        """Call ``listener`` with every event sent from now on."""
        self._listeners.append(listener)

    def send(self, event: E) -> None:
        """Tell every listener, in the order they were connected."""
        for listener in self._listeners:
            listener(event)

    def __bool__(self) -> bool:
        return bool(self._listeners)
