"""The set-up contract, with real processes: ``dispatcher serve`` on an embedded Postgres.

Start with no ``DISPATCHER_DATABASE_URL`` (so the embedded server is created in the data dir),
use the printed admin token, stop with SIGINT, restart, crash with SIGKILL, restart again and
stop with SIGTERM. Postgres must never outlive a clean stop, and a crash must not prevent the
next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import pytest

from dispatcher.embedded import postmaster_status

REPO = Path(__file__).resolve().parent.parent
START_DEADLINE = 45.0
STOP_DEADLINE = 20.0

pytestmark = pytest.mark.timeout(180)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http(method: str, url: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
    """A tiny HTTP client: (status, parsed JSON body or None)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            return err.code, json.loads(raw) if raw else None
        except ValueError:
            return err.code, raw


def postgres_pids(pgdata: Path) -> list[int]:
    """Pids of ``postgres`` processes serving ``pgdata``."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            cmdline = proc.info["cmdline"] or []
            if proc.info["name"] == "postgres" and any(str(pgdata) in arg for arg in cmdline):
                found.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def wait_for(condition: Any, deadline_s: float, what: str) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {deadline_s}s waiting for {what}")


class Server:
    """One ``python -m dispatcher serve`` process and its captured output."""

    def __init__(self, data_dir: Path, log_dir: Path, port: int, run: int) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.stderr_path = log_dir / f"stderr-{run}.txt"
        self.stdout_path = log_dir / f"stdout-{run}.txt"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("DISPATCHER_") and k != "XDG_RUNTIME_DIR"
        }
        env.update(
            {
                "DISPATCHER_DATA_DIR": str(data_dir),
                "DISPATCHER_PORT": str(port),
                "DISPATCHER_LOG_FORMAT": "json",
                "PYTHONPATH": str(REPO),
            }
        )
        with self.stderr_path.open("wb") as err, self.stdout_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dispatcher", "serve"],
                env=env,
                cwd=str(log_dir),
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    def output(self) -> str:
        return (
            f"--- stderr ---\n{self.stderr_path.read_text(errors='replace')}"
            f"--- stdout (tail) ---\n{self.stdout_path.read_text(errors='replace')[-3000:]}"
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"serve exited with {self.proc.returncode} before ready\n{self.output()}"
                )
            try:
                status, _ = http("GET", self.base + "/readyz")
            except OSError:
                status = 0
            if status == 200:
                return
            time.sleep(0.1)
        raise AssertionError(f"serve not ready after {START_DEADLINE}s\n{self.output()}")

    def printed_token(self) -> str:
        match = re.search(r"admin token:\s+(\S+)", self.stderr_path.read_text())
        assert match, self.output()
        return match.group(1)

    def stop(self, sig: signal.Signals) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"serve did not exit on {sig.name}\n{self.output()}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_DEADLINE)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A short, new data dir under /tmp (the Unix socket path is limited to ~107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="dsp-", dir="/tmp")).resolve()
    try:
        yield path
    finally:
        # Whatever happened, leave no Postgres of ours behind.
        for pid in postgres_pids(path / "pg"):
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).kill()
        shutil.rmtree(path, ignore_errors=True)


def test_serve_lifecycle_with_embedded_postgres(data_dir: Path, tmp_path: Path) -> None:
    pgdata = data_dir / "pg"
    servers: list[Server] = []

    def start(run: int) -> Server:
        server = Server(data_dir, tmp_path, free_port(), run)
        servers.append(server)
        server.wait_ready()
        return server

    try:
        # 1. First start: initialises Postgres, migrates, generates and prints the token.
        first = start(1)
        token_file = data_dir / "admin_token"
        assert token_file.exists(), first.output()
        token = token_file.read_text().strip()
        assert token
        assert first.printed_token() == token
        assert token_file.stat().st_mode & 0o077 == 0, "the token file is readable by others"
        assert postgres_pids(pgdata), "no embedded Postgres running in the data dir"

        status, body = http("GET", first.base + "/v1/webhooks", token)
        assert status == 200, body
        assert body == {"data": [], "next_cursor": None}
        status, _ = http("GET", first.base + "/v1/webhooks", "wrong-token-0123456789")
        assert status == 401
        assert http("GET", first.base + "/healthz")[0] == 200

        status, hook = http(
            "POST",
            first.base + "/v1/webhooks",
            token,
            {"name": "kept", "url": "https://93.184.216.34/hook", "event_types": ["*"]},
        )
        assert status == 201, hook

        # 2. SIGINT: exits 0 and stops Postgres.
        assert first.stop(signal.SIGINT) == 0, first.output()
        wait_for(lambda: not postgres_pids(pgdata), STOP_DEADLINE, "Postgres to stop after SIGINT")

        # 3. Restart: same token, the webhook survived.
        second = start(2)
        assert second.printed_token() == token
        assert token_file.read_text().strip() == token
        status, got = http("GET", f"{second.base}/v1/webhooks/{hook['id']}", token)
        assert status == 200, got
        assert got["name"] == "kept"

        # 4. kill -9: Postgres is left running; the next start adopts it.
        second.proc.kill()
        second.proc.wait(timeout=STOP_DEADLINE)
        leftover = postgres_pids(pgdata)
        assert leftover, "expected the crashed instance to leave its Postgres running"

        third = start(3)
        status, got = http("GET", f"{third.base}/v1/webhooks/{hook['id']}", token)
        assert status == 200, got
        status, listed = http("GET", f"{third.base}/v1/webhooks", token)
        assert status == 200
        assert [h["id"] for h in listed["data"]] == [hook["id"]]
        status, created = http(
            "POST",
            f"{third.base}/v1/event-types",
            token,
            {"name": "order.created"},
        )
        assert status == 201, created

        # 5. SIGTERM: exits 0 and Postgres is stopped, even though it was adopted.
        assert third.stop(signal.SIGTERM) == 0, third.output()
        # The token is shown once on stderr, never in the structured logs.
        for server in servers:
            assert token not in server.stdout_path.read_text(errors="replace")
        wait_for(lambda: not postgres_pids(pgdata), STOP_DEADLINE, "Postgres to stop after SIGTERM")
    finally:
        for server in servers:
            server.kill()


def answer(method: str, url: str, token: str | None = None, body: Any = None) -> int:
    """The status of a request; 0 when the connection itself failed."""
    try:
        return http(method, url, token, body)[0]
    except OSError:
        return 0


def postmaster_pid(pgdata: Path) -> int | None:
    """The live postmaster's pid from ``postmaster.pid`` (None if absent, dead or a zombie)."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return None
    except (OSError, ValueError, psutil.Error):
        return None
    return pid


def test_a_killed_embedded_postgres_is_brought_back(data_dir: Path, tmp_path: Path) -> None:
    pgdata = data_dir / "pg"
    server = Server(data_dir, tmp_path, free_port(), 1)
    try:
        server.wait_ready()
        token = server.printed_token()
        events = server.base + "/v1/events"
        before = {"type": "order.created", "id": "evt_before_the_crash", "data": {"n": 1}}
        assert answer("POST", events, token, before) == 202, server.output()
        killed = postmaster_pid(pgdata)
        assert killed, server.output()

        os.kill(killed, signal.SIGKILL)

        def restarted() -> bool:
            pid = postmaster_pid(pgdata)
            return pid is not None and pid != killed

        wait_for(restarted, START_DEADLINE, "a new postmaster on the same data dir")
        wait_for(
            lambda: answer("GET", server.base + "/readyz") == 200, START_DEADLINE, "/readyz 200"
        )
        after = {"type": "order.created", "id": "evt_after_the_crash", "data": {"n": 2}}
        # The pool may hand out a connection that died with the old server once more (503).
        wait_for(lambda: answer("POST", events, token, after) == 202, START_DEADLINE, "a 202")
        for event_id in ("evt_before_the_crash", "evt_after_the_crash"):
            status, got = http("GET", f"{events}/{event_id}", token)
            assert status == 200, (event_id, got)

        def logged() -> list[str | None]:
            return [
                json.loads(line).get("event")
                for line in server.stdout_path.read_text(errors="replace").splitlines()
                if line.startswith("{")
            ]

        # The supervisor logs the restart once the wheel's start call returns, which may be
        # after the server already answers (and info lines are written up to 50 ms late).
        wait_for(
            lambda: "embedded_postgres_restarted" in logged(), START_DEADLINE, "the restart logged"
        )
        names = logged()
        assert names.index("embedded_postgres_down") < names.index("embedded_postgres_restarted")

        # Stopping still stops Postgres: the supervisor does not bring it back meanwhile.
        assert server.stop(signal.SIGTERM) == 0, server.output()
        wait_for(lambda: not postgres_pids(pgdata), STOP_DEADLINE, "Postgres to stop")
    finally:
        server.kill()


def test_serve_waits_for_a_previous_postmaster_that_is_still_stopping(
    data_dir: Path, tmp_path: Path
) -> None:
    # A killed instance left its postmaster, which is shutting down (smart: it waits for a
    # client still connected). A service restarted then (by systemd, say) must wait for it to
    # go and start its own, not crash on the wheel's "is it ready" assertion.
    pgdata = data_dir / "pg"
    first = Server(data_dir, tmp_path, free_port(), 1)
    loop = asyncio.new_event_loop()
    held = None
    second = None
    try:
        first.wait_ready()
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        port, socket_dir = lines[3].strip(), lines[4].strip()
        held = loop.run_until_complete(
            asyncpg.connect(host=socket_dir, port=int(port), user="postgres", database="postgres")
        )
        first.proc.kill()  # SIGKILL: its postmaster stays behind
        first.proc.wait(timeout=STOP_DEADLINE)
        old = postmaster_pid(pgdata)
        assert old is not None
        os.kill(old, signal.SIGTERM)  # smart shutdown: stopping while our client is connected
        wait_for(lambda: postmaster_status(pgdata) == "stopping", START_DEADLINE, "stopping")

        second = Server(data_dir, tmp_path, free_port(), 2)

        def logged(event: str) -> bool:
            text = second.stdout_path.read_text(errors="replace")
            return any(
                line.startswith("{") and json.loads(line).get("event") == event
                for line in text.splitlines()
            )

        wait_for(lambda: logged("embedded_postgres_waiting"), START_DEADLINE, "the wait logged")
        assert second.proc.poll() is None, second.output()
        loop.run_until_complete(held.close())
        held = None
        second.wait_ready()
        assert postmaster_pid(pgdata) not in (None, old)
        token = second.printed_token()
        event = {"type": "order.created", "data": {"n": 1}}
        assert answer("POST", second.base + "/v1/events", token, event) == 202, second.output()
        assert second.stop(signal.SIGTERM) == 0, second.output()
        wait_for(lambda: not postgres_pids(pgdata), STOP_DEADLINE, "Postgres to stop")
    finally:
        if held is not None:
            loop.run_until_complete(held.close())
        loop.close()
        first.kill()
        if second is not None:
            second.kill()
