"""Value objects that flow from ingestion and the scheduler into the engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import orjson


@dataclass(slots=True)
class Payload:
    """An event as receivers see it; the envelope bytes are built once and shared."""

    id: str
    type: str
    occurred_at: datetime
    data_json: bytes
    _full: bytes | None = field(default=None, repr=False)
    _bare: bytes | None = field(default=None, repr=False)

    def envelope(self, include_payload: bool) -> bytes:
        """``{"id","type","timestamp","data"}`` (without ``data`` when not included)."""
        if include_payload:
            if self._full is None:
                self._full = self._head() + b',"data":' + self.data_json + b"}"
            return self._full
        if self._bare is None:
            self._bare = self._head() + b"}"
        return self._bare

    def _head(self) -> bytes:
        return (
            b'{"id":'
            + orjson.dumps(self.id)
            + b',"type":'
            + orjson.dumps(self.type)
            + b',"timestamp":'
            + orjson.dumps(self.occurred_at)
        )


@dataclass(slots=True)
class Job:
    """One delivery this instance has leased and will attempt."""

    delivery_id: str
    webhook_id: str
    payload: Payload
    attempt_count: int
    # Attempts made before the last manual retry/replay (the retry budget restarts there).
    attempts_base: int
    # When the delivery was created or last re-queued by hand (its age counts from here).
    age_from: datetime
