"""The wheel ``python -m build`` makes installs into a fresh virtual environment and serves on
its own: templates, static files, SQL and migrations are inside it, nothing comes from the
repository. (pip fetches the dependencies from the package index, as on any new machine.)"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.test_serve_process import free_port, http, postgres_pids

REPO = Path(__file__).resolve().parent.parent
# Building in an isolated environment and installing the dependencies take most of this.
pytestmark = pytest.mark.timeout(600)
READY_DEADLINE = 90.0


def run(
    args: list[str], cwd: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; fail the test with its output if it fails."""
    done = subprocess.run(args, capture_output=True, text=True, timeout=480, cwd=cwd, env=env)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheel_venv() -> Iterator[Path]:
    """A fresh venv with only the wheel built from this checkout (and its dependencies)."""
    work = Path(tempfile.mkdtemp(prefix="dsp-whl-", dir="/tmp"))
    try:
        # The default build goes through an sdist, so it also proves the sdist is complete,
        # and it leaves nothing behind in the checkout.
        run([sys.executable, "-m", "build", "--outdir", str(work / "dist"), str(REPO)])
        wheels = list((work / "dist").glob("dispatcher-*.whl"))
        assert len(wheels) == 1, wheels
        run([sys.executable, "-m", "venv", str(work / "venv")])
        pip = [str(work / "venv" / "bin" / "python"), "-m", "pip"]
        run([*pip, "install", "--quiet", "--disable-pip-version-check", str(wheels[0])])
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without this checkout on the path and without DISPATCHER_* settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DISPATCHER_") and k not in ("PYTHONPATH", "XDG_RUNTIME_DIR")
    }
    env.update(extra)
    return env


def get(url: str) -> tuple[int, str, bytes]:
    """(status, content type, body) of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read()


def test_the_wheel_installs_and_serves_from_a_fresh_venv(wheel_venv: Path) -> None:
    venv = wheel_venv / "venv"
    # The package comes from the venv, not from the checkout; the publisher client is in it.
    where = run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import dispatcher, admin; from dispatcher.client import Client, AsyncClient;"
            " print(dispatcher.__file__)",
        ],
        cwd="/",
        env=clean_env(),
    ).stdout
    assert str(venv) in where and str(REPO) not in where

    data_dir = wheel_venv / "data"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = (wheel_venv / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(venv / "bin" / "dispatcher"), "serve"],
        cwd=str(wheel_venv),
        env=clean_env(
            DISPATCHER_DATA_DIR=str(data_dir),
            DISPATCHER_PORT=str(port),
            DISPATCHER_LOG_FORMAT="json",
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def output() -> str:
        return (wheel_venv / "serve.log").read_text(errors="replace")[-4000:]

    try:
        deadline = time.monotonic() + READY_DEADLINE
        while True:
            assert proc.poll() is None, f"serve exited with {proc.returncode}\n{output()}"
            try:
                if get(base + "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"not ready after {READY_DEADLINE}s\n{output()}"
            time.sleep(0.2)

        # The console's login page, rendered from the wheel's templates, with its stylesheet.
        status, ctype, page = get(base + "/admin/login")
        assert status == 200 and ctype.startswith("text/html"), page[:500]
        css = re.search(rb'href="([^"]+\.css[^"]*)"', page)
        assert css, page[:1000]
        status, ctype, sheet = get(base + css[1].decode())
        assert status == 200 and ctype.startswith("text/css") and len(sheet) > 1000

        # The admin token generated into the data dir, and an event published with it.
        token = (data_dir / "admin_token").read_text().strip()
        status, body = http("POST", base + "/v1/events", token, {"type": "a.b", "data": {"n": 1}})
        assert status == 202, body
        assert body["deliveries"] == 0 and body["duplicate"] is False
        status, webhooks = http("GET", base + "/v1/webhooks", token)
        assert status == 200 and webhooks == {"data": [], "next_cursor": None}
        assert orjson.loads(get(base + "/readyz")[2])["status"] == "ready"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        finally:
            log.close()
    assert code == 0, output()
    assert postgres_pids(data_dir) == [], "the embedded Postgres outlived serve"
