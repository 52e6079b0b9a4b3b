"""The ``dispatcher-client`` distribution: built alone from ``clients/python``, installed into a
venv that has nothing else, it publishes to a served Dispatcher with the blocking and the asyncio
client without the server being installed or imported. And the blocking client is the async one,
method for method, with the same signatures and docstrings.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestServer

from dispatcher.client import AsyncClient, Client
from tests.helpers import ADMIN_TOKEN, PUBLISH_TOKEN
from tests.receiver import Receiver
from tests.test_client import FAST, server, url_of

__all__ = ["server"]  # a fixture shared with test_client

REPO = Path(__file__).resolve().parent.parent
CLIENT_SRC = REPO / "clients" / "python"

# Run inside the client-only venv: publish once with each client, then report what was loaded.
SCRIPT = """
import asyncio, importlib.util, inspect, json, sys
import dispatcher_client
from dispatcher_client import AsyncClient, Client

url, token = sys.argv[1], sys.argv[2]
with Client(url, token=token) as c:
    sync_answer = c.publish("order.created", {"via": "sync"}, id="from-sync")

async def main():
    async with AsyncClient(url, token=token) as ac:
        return await ac.publish("order.created", {"via": "async"}, id="from-async")

async_answer = asyncio.run(main())
print(json.dumps({
    "sync": sync_answer,
    "async": async_answer,
    "file": dispatcher_client.__file__,
    "loaded": sorted({m.split(".")[0] for m in sys.modules}),
    "installed": {
        name: importlib.util.find_spec(name) is not None
        for name in ("dispatcher", "asyncpg", "orjson", "pydantic", "click", "aiohttp")
    },
    "signature": str(inspect.signature(Client.publish)),
    "doc": Client.publish.__doc__,
}))
"""


def _coroutine_methods() -> dict[str, Any]:
    return {
        name: fn
        for name, fn in vars(AsyncClient).items()
        if inspect.iscoroutinefunction(fn) and not name.startswith("_") and name != "close"
    }


def test_every_async_method_has_a_blocking_twin() -> None:
    methods = _coroutine_methods()
    assert {"publish", "publish_batch", "create_webhook", "replay", "catalogue"} <= set(methods)
    for name, coro in methods.items():
        twin = getattr(Client, name, None)
        assert twin is not None, f"Client has no {name}"
        assert not inspect.iscoroutinefunction(twin), name
        assert inspect.signature(twin) == inspect.signature(coro), name
        assert twin.__doc__ == coro.__doc__, name


@pytest.fixture(scope="module")
def client_venv() -> Iterator[tuple[Path, Path]]:
    """(the dispatcher-client wheel, a fresh venv with only it and its dependencies)."""
    work = Path(tempfile.mkdtemp(prefix="dsp-client-whl-", dir="/tmp"))
    try:
        # A copy: the build must need nothing outside clients/python, and leaves nothing there.
        src = work / "src"
        shutil.copytree(
            CLIENT_SRC, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
        )
        run([sys.executable, "-m", "build", "--wheel", "--outdir", str(work / "dist"), str(src)])
        wheels = list((work / "dist").glob("dispatcher_client-*.whl"))
        assert len(wheels) == 1, wheels
        run([sys.executable, "-m", "venv", str(work / "venv")])
        pip = [str(work / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        run([*pip, "--disable-pip-version-check", str(wheels[0])])
        yield wheels[0], work / "venv"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args: list[str]) -> None:
    """Run a command to completion; fail the test with its output if it fails."""
    done = subprocess.run(args, capture_output=True, text=True, timeout=480)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"


def test_the_wheel_needs_only_aiohttp(client_venv: tuple[Path, Path]) -> None:
    wheel, _ = client_venv
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        requires = [
            line.split(":", 1)[1].strip()
            for line in zf.read(meta).decode().splitlines()
            if line.startswith("Requires-Dist:")
        ]
    assert requires == ["aiohttp>=3.10"]
    assert "dispatcher_client/py.typed" in names
    assert not [n for n in names if n.startswith("dispatcher/")], names


@pytest.mark.timeout(600)
async def test_a_client_only_venv_publishes_with_both_clients(
    client_venv: tuple[Path, Path], server: TestServer, receiver: Receiver
) -> None:
    _, venv = client_venv
    async with AsyncClient(url_of(server), token=ADMIN_TOKEN, **FAST) as admin:
        await admin.create_webhook("orders", receiver.url(), ["order.*"])

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    # The server's loop must keep serving while the script runs: a subprocess, awaited.
    proc = await asyncio.create_subprocess_exec(
        str(venv / "bin" / "python"),
        "-c",
        SCRIPT,
        url_of(server),
        PUBLISH_TOKEN,
        cwd="/",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    report = orjson.loads(out)

    assert report["sync"] == {
        "id": "from-sync",
        "type": "order.created",
        "deliveries": 1,
        "duplicate": False,
    }
    assert report["async"]["id"] == "from-async" and report["async"]["deliveries"] == 1
    # The package came from the venv, and nothing of the server is there or was loaded.
    assert report["file"].startswith(str(venv)), report["file"]
    assert report["installed"] == {
        "dispatcher": False,
        "asyncpg": False,
        "orjson": False,
        "pydantic": False,
        "click": False,
        "aiohttp": True,
    }
    assert "dispatcher" not in report["loaded"] and "asyncpg" not in report["loaded"]
    # help() on the blocking client shows the async method's parameters, types and docstring.
    assert report["signature"].startswith("(self, type: 'str', data: 'Any'"), report["signature"]
    assert report["signature"].endswith("-> 'EventAccepted'"), report["signature"]
    assert "idempotency key" in report["doc"]

    got = await receiver.wait_for(2)
    assert sorted(r.json()["data"]["via"] for r in got) == ["async", "sync"]
    assert sorted(r.headers["webhook-id"] for r in got) == ["from-async", "from-sync"]
