"""A per-process budget of request-body bytes that ingestion may hold at once.

Every ingestion request reserves its body's bytes before buffering them (the Content-Length
up front, or chunk by chunk for a chunked body) and gives all of them back when it is
answered, however it ends. A request that does not fit is refused at once instead of
buffered, so the memory ingestion holds stays bounded however many producers send together.
Each process has one event loop and its own budget: a plain counter, no lock.
"""

from __future__ import annotations

from types import TracebackType


class ByteBudget:
    """``capacity`` bytes, of which ``in_use`` are reserved by requests in flight."""

    __slots__ = ("capacity", "in_use")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_use = 0

    def reservation(self) -> Reservation:
        """A new, empty reservation against this budget (use it as a context manager)."""
        return Reservation(self)


class Reservation:
    """What one request holds of a :class:`ByteBudget`; leaving the ``with`` returns it all."""

    __slots__ = ("_budget", "held")

    def __init__(self, budget: ByteBudget) -> None:
        self._budget = budget
        self.held = 0

    def cover(self, total: int) -> bool:
        """Hold at least ``total`` bytes; False (nothing more reserved) when they do not fit."""
        more = total - self.held
        if more <= 0:
            return True
        budget = self._budget
        if budget.in_use + more > budget.capacity:
            return False
        budget.in_use += more
        self.held = total
        return True

    def release(self) -> None:
        """Give back everything this reservation holds (again: nothing more happens)."""
        self._budget.in_use -= self.held
        self.held = 0

    def __enter__(self) -> Reservation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
