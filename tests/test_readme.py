"""Every ```sh and ```python snippet in README.md, run or checked as a newcomer would use it.

- The tour (its section, every block in order) runs as one bash script against a served app,
  with the example receiver started by the tour itself; only the ports and the path of the
  venv are substituted. What it prints and what the API says afterwards are checked.
- The Python snippets run: the client one against the served app, the receiver one behind a
  real Dispatcher delivery.
- Other shell lines: ``dispatcher export``/``import`` run on the test database; command lines
  written as a synopsis (``[--all]``, ``show|retry``, ``wh_01J...``) are checked against the
  CLI's own definitions (every command and option exists); ``make`` lines with ``make -n``;
  ``python -m benchmarks`` lines by its argument parser; ``prometheus --config.file=`` with
  promtool. A line of a kind this file does not know fails the first test.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import click
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from dispatcher.app import create_app
from dispatcher.auth import Tokens
from dispatcher.cli import main as cli_main
from tests.conftest import make_settings
from tests.helpers import ADMIN, ADMIN_TOKEN, PUBLISH_TOKEN, webhook_body
from tests.receiver import Receiver
from tests.test_serve_process import free_port

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
BIN = Path(sys.executable).parent
TOUR = "## A five-minute tour"
BASH = shutil.which("bash") or "/bin/bash"
MAKE = shutil.which("make") or "make"

pytestmark = pytest.mark.timeout(180)


@dataclass(frozen=True)
class Block:
    """One fenced snippet: its language, text and the ``## `` section it is in."""

    lang: str
    text: str
    section: str


def blocks() -> list[Block]:
    """The README's ```sh and ```python blocks, in order."""
    found: list[Block] = []
    section = ""
    fence = re.compile(r"^(## [^\n]*)$|^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
    for m in fence.finditer(README.read_text()):
        if m.group(1):
            section = m.group(1)
        elif m.group(2) in ("sh", "python"):
            found.append(Block(m.group(2), m.group(3), section))
    return found


def logical_lines(text: str) -> list[str]:
    """Shell lines with continuations joined and comments and blank lines dropped."""
    joined = text.replace("\\\n", " ")
    lines = []
    for line in joined.splitlines():
        code = line.split("  #", 1)[0].strip()
        if code and not code.startswith("#"):
            lines.append(code)
    return lines


def kind(line: str) -> str:
    """How a shell line outside the tour is checked."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:  # a quote spanning lines: not a line of its own
        return "unknown"
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        words = words[1:]  # VAR=value make run
    head = words[0] if words else ""
    if head == "make":
        return "make"
    if head in ("dispatcher", ".venv/bin/dispatcher"):
        if len(words) > 1 and words[1] in ("export", "import"):
            return "run"
        return "synopsis"
    if words[:3] == [".venv/bin/python", "-m", "benchmarks"]:
        return "benchmarks"
    if head == "prometheus":
        return "prometheus"
    return "unknown"


# Third-party tools a snippet shows (code generators for the catalogue): installing them needs
# the network and Node.js, so the curl blocks run with these names as no-op shell functions.
STUBBED = ("pip", "datamodel-codegen", "npx")


def curl_block(block: Block) -> bool:
    """A block of API calls outside the tour: run whole (its JSON may span lines)."""
    return block.lang == "sh" and block.section != TOUR and "curl " in block.text


def test_every_snippet_is_one_this_file_checks() -> None:
    found = blocks()
    assert any(b.section == TOUR for b in found), "the tour has no snippets?"
    python = [b for b in found if b.lang == "python"]
    assert len(python) == 2, "a new Python snippet needs a test here"
    assert "dispatcher.client" in python[0].text and "standardwebhooks" in python[1].text
    for block in found:
        if block.lang != "sh" or block.section == TOUR or curl_block(block):
            continue
        for line in logical_lines(block.text):
            assert kind(line) != "unknown", f"README ({block.section}): no check for {line!r}"


# --------------------------------------------------------------------------------------------
# The tour


@pytest.fixture
async def served(aiohttp_client: Any, database_url: str, tmp_path: Path, db: Any) -> str:
    """The app on a real loopback port (private targets allowed, as the tour starts it)."""
    settings = make_settings(database_url, tmp_path)
    app = create_app(settings, database_url, Tokens(ADMIN_TOKEN, (PUBLISH_TOKEN,)))
    client: TestClient[Any, Any] = await aiohttp_client(app)
    return f"127.0.0.1:{client.server.port}"


def tour_script(app: str, receiver_port: int) -> str:
    """The tour's blocks as one script; `make run` is the served app, so it is left out."""
    parts = ["set -euo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
    for block in blocks():
        if block.section != TOUR or block.lang != "sh":
            continue
        if re.fullmatch(r"([A-Z_]+=\S+ )*make \w+", block.text.strip()):
            continue  # DISPATCHER_ALLOW_PRIVATE_TARGETS=true make run: checked with make -n
        parts.append(block.text)
    # Before the script ends (and its receiver with it), wait until billing got everything.
    parts.append(
        """python3 - "$API" "$TOKEN" "$HOOK" <<'PY'
import json, sys, time, urllib.request
api, token, hook = sys.argv[1:]
deadline = time.monotonic() + 60
while True:
    url = f"{api}/deliveries?webhook_id={hook}&status=success"
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    n = len(json.load(urllib.request.urlopen(req))["data"])
    if n >= 5:
        break
    if time.monotonic() > deadline:
        sys.exit(f"only {n} deliveries to billing succeeded")
    time.sleep(0.1)
PY
echo "tour-ids HOOK=$HOOK BROKEN=$BROKEN DLV=$DLV"
"""
    )
    script = "\n".join(parts)
    for old, new in (
        ("127.0.0.1:8080", app),
        ("127.0.0.1:9000", f"127.0.0.1:{receiver_port}"),
        (".venv/bin/", f"{BIN}/"),
    ):
        assert old in script, f"the tour no longer mentions {old}"
        script = script.replace(old, new)
    return script


def compact(text: str) -> str:
    """JSON answers without spaces, to search them whatever the formatting."""
    return re.sub(r"\s+", "", text)


async def test_the_tour_runs_as_written(served: str) -> None:
    receiver_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCHER_")}
    # `dispatcher token` prints the configured token: the one the served app accepts.
    env.update(DISPATCHER_ADMIN_TOKEN=ADMIN_TOKEN, PORT=str(receiver_port))
    proc = await asyncio.create_subprocess_exec(
        BASH,
        "-c",
        tour_script(served, receiver_port),
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out_b, err_b = await asyncio.wait_for(proc.communicate(), 150)
    out, err = out_b.decode(), err_b.decode()
    assert proc.returncode == 0, f"the tour failed\n--- stdout\n{out}\n--- stderr\n{err}"

    # The example receiver verified and printed what was delivered to billing.
    for printed in (
        "order.created order-42-created: {'order': 42, 'total': '19.90'}",
        "order.paid ",
        "order.shipped ",
        "webhook.ping ",
        "order.refunded ",
    ):
        assert printed in out, f"the receiver never printed {printed!r}\n{out}"
    flat = compact(out)
    assert '"deliveries":2' in flat  # order.created: billing and the broken endpoint
    assert '"status":"cancelled"' in flat  # the cancel
    assert flat.count('{"count":1}') == 2  # replay of the cancelled one, then of the missed one
    assert '"deliveries":1' in flat  # order.refunded while the broken webhook was disabled

    ids = dict(kv.split("=", 1) for kv in re.search(r"tour-ids (.*)", out)[1].split())  # type: ignore[index]
    async with aiohttp.ClientSession() as api:
        base = f"http://{served}/v1"
        async with api.get(f"{base}/webhooks/{ids['BROKEN']}", headers=ADMIN) as r:
            assert r.status == 404  # deleted at the end
        async with api.get(f"{base}/deliveries/{ids['DLV']}", headers=ADMIN) as r:
            failed = await r.json()
        # Retried by hand and replayed: real attempts answered 500 by /fail. (The first may
        # have found the receiver not listening yet: the tour starts it a moment before.)
        answered = [a for a in failed["attempts"] if a["status_code"] is not None]
        assert len(answered) >= 2 and {a["status_code"] for a in answered} == {500}
        assert all(a["url"].endswith("/fail") for a in failed["attempts"])
        async with api.get(f"{base}/webhooks/{ids['HOOK']}", headers=ADMIN) as r:
            billing = await r.json()
        assert billing["headers"] == {"X-Team": "finance"}


# --------------------------------------------------------------------------------------------
# The Python snippets


def python_block(marker: str) -> str:
    (found,) = [b.text for b in blocks() if b.lang == "python" and marker in b.text]
    return found


async def test_the_client_snippet_runs(served: str, receiver: Receiver) -> None:
    code = python_block("dispatcher.client")
    assert "http://127.0.0.1:8080" in code
    async with aiohttp.ClientSession() as api:
        async with api.post(
            f"http://{served}/v1/webhooks", json=webhook_body(url=receiver.url()), headers=ADMIN
        ) as r:
            assert r.status == 201
        env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCHER_")}
        env["DISPATCHER_TOKEN"] = ADMIN_TOKEN
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            code.replace("http://127.0.0.1:8080", f"http://{served}"),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        lines = out.decode().splitlines()
        assert "'type': 'order.created', 'deliveries': 1, 'duplicate': False}" in lines[0]
        assert lines[1] == "[1, 1]"
        await receiver.wait_for(5)  # created, paid, shipped, delivered, created (async)
        async with api.get(f"http://{served}/v1/events/order-42-paid", headers=ADMIN) as r:
            assert r.status == 200


async def test_the_receiver_snippet_accepts_real_deliveries_and_refuses_forgeries(
    client: TestClient[Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    code = python_block("standardwebhooks")
    assert '"whsec_..."' in code
    namespace: dict[str, Any] = {}
    exec(compile(code.replace('"whsec_..."', repr(secret)), "README.md", "exec"), namespace)  # noqa: S102
    app = web.Application()
    app.router.add_post("/hook", namespace["receive"])
    async with TestServer(app, host="127.0.0.1") as server:
        url = str(server.make_url("/hook"))
        created = await client.post(
            "/v1/webhooks", json=webhook_body(url=url, secret=secret), headers=ADMIN
        )
        assert created.status == 201, await created.text()
        webhook_id = (await created.json())["id"]
        published = await client.post(
            "/v1/events", json={"type": "order.created", "data": {"order": 42}}, headers=ADMIN
        )
        assert published.status == 202
        deadline = asyncio.get_running_loop().time() + 15
        while True:
            rows = (
                await (
                    await client.get(f"/v1/deliveries?webhook_id={webhook_id}", headers=ADMIN)
                ).json()
            )["data"]
            if rows and rows[0]["status"] == "success":
                break
            assert asyncio.get_running_loop().time() < deadline, rows
            await asyncio.sleep(0.05)
        assert rows[0]["last_status_code"] == 204
        assert "order.created {'order': 42}" in capsys.readouterr().out
        # A request not signed with the secret is refused.
        async with TestClient(server) as forger:
            forged = await forger.post(
                "/hook",
                data=b'{"type": "order.created"}',
                headers={
                    "webhook-id": "x",
                    "webhook-timestamp": "1",
                    "webhook-signature": "v1,AAAA",
                },
            )
            assert forged.status == 400


# --------------------------------------------------------------------------------------------
# The other shell lines


def other_lines(which: str) -> list[str]:
    return [
        line
        for b in blocks()
        if b.lang == "sh" and not curl_block(b)
        for line in logical_lines(b.text)
        if kind(line) == which and (b.section != TOUR or which == "make")
    ]


def make_args(line: str) -> list[str]:
    """What follows ``make`` on a line (``VAR=value make run`` gives ``["run"]``)."""
    words = shlex.split(line)
    return words[words.index("make") + 1 :]


def test_make_lines_name_real_targets() -> None:
    lines = other_lines("make")
    assert {"run", "test", "lint", "bench"} <= {make_args(line)[0] for line in lines}
    for line in lines:
        done = subprocess.run(
            [MAKE, "-n", *make_args(line)], cwd=REPO, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, f"{line}: {done.stderr}"


def test_benchmark_lines_parse() -> None:
    lines = other_lines("benchmarks")
    assert lines
    for line in lines:
        args = shlex.split(line)[3:]
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks", *args, "--help"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"{line}: {done.stderr}"


def test_the_prometheus_line_names_a_valid_config() -> None:
    (line,) = other_lines("prometheus")
    config = re.search(r"--config\.file=(\S+)", line)
    assert config, line
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is required"
    done = subprocess.run(
        [promtool, "check", "config", config[1]], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_export_and_import_lines_run(database_url: str, tmp_path: Path) -> None:
    lines = other_lines("run")
    assert len(lines) >= 3
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCHER_")}
    env.update(DISPATCHER_DATABASE_URL=database_url, DISPATCHER_LOG_FORMAT="json")
    for line in lines:
        if "--output" in line:
            (tmp_path / "backup.json").unlink(missing_ok=True)  # it creates the file
        script = line.replace(".venv/bin/dispatcher", "dispatcher").replace(
            "dispatcher ", f"{BIN}/dispatcher ", 1
        )
        done = subprocess.run(
            [BASH, "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"{line}: {done.stderr}"
        assert (tmp_path / "backup.json").stat().st_size > 0


def resolve(words: list[str]) -> list[tuple[click.Command, list[str]]]:
    """The commands a synopsis line names (``a|b`` is each of them), with the words after."""
    found: list[tuple[click.Command, list[str]]] = []

    def walk(command: click.Command, rest: list[str]) -> None:
        if isinstance(command, click.Group) and rest:
            for name in rest[0].split("|"):
                sub = command.commands.get(name)
                assert sub is not None, f"no command {name!r} under {command.name!r}"
                walk(sub, rest[1:])
        else:
            found.append((command, rest))

    walk(cli_main, words)
    return found


def test_command_synopses_match_the_cli() -> None:
    lines = other_lines("synopsis")
    assert lines
    for line in lines:
        words = shlex.split(line)[1:]
        for command, rest in resolve(words):
            options = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
            for word in rest:
                for flag in re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", word):
                    assert flag in options, f"{line}: {command.name} has no option {flag}"


async def test_api_call_blocks_run(served: str, tmp_path: Path) -> None:
    found = [b for b in blocks() if curl_block(b)]
    assert found
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCHER_")}
    env.update(TOKEN=ADMIN_TOKEN, API=f"http://{served}/v1")
    stubs = "".join(f'{name}() {{ echo "(not run) {name} $*"; }}\n' for name in STUBBED)
    for block in found:
        script = "set -euo pipefail\n" + stubs + block.text.replace("127.0.0.1:8080", served)
        proc = await asyncio.create_subprocess_exec(
            BASH,
            "-c",
            script,
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, f"{block.section}:\n{block.text}\n{err.decode()}"
        assert '"status":4' not in compact(out.decode()), f"{block.section}: {out.decode()}"
        assert '"status":5' not in compact(out.decode()), f"{block.section}: {out.decode()}"
    async with aiohttp.ClientSession() as api:
        base = f"http://{served}/v1"
        async with api.get(f"{base}/event-types/order.created", headers=ADMIN) as r:
            assert r.status == 200 and (await r.json())["schema"]["type"] == "object"
    if (tmp_path / "catalogue.json").exists():
        document = orjson.loads((tmp_path / "catalogue.json").read_bytes())
        assert document["openapi"].startswith("3.1") and "order.created" in document["webhooks"]
