"""The shipped alerts fire on the first occurrence: every labelled counter starts at 0."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import ADMIN, PUBLISHER, webhook_body

GRAFANA = Path(__file__).resolve().parent.parent / "grafana"

# Every series the alert rules and the dashboard read through increase()/rate().
ZERO_AT_START = [
    'dispatcher_auto_disables_total{reason="auto"}',
    'dispatcher_auto_disables_total{reason="gone"}',
    'dispatcher_events_ingested_total{outcome="accepted"}',
    'dispatcher_events_ingested_total{outcome="duplicate"}',
    'dispatcher_deliveries_finished_total{outcome="success",webhook_id=""}',
    'dispatcher_deliveries_finished_total{outcome="failed",webhook_id=""}',
    'dispatcher_deliveries_created_total{webhook_id=""}',
    'dispatcher_attempt_duration_seconds_count{webhook_id=""}',
    'dispatcher_delivery_latency_seconds_count{webhook_id=""}',
    *(
        f'dispatcher_attempts_total{{result="{r}",webhook_id=""}}'
        for r in ("2xx", "3xx", "4xx", "5xx", "timeout", "connection", "blocked")
    ),
]


def samples(text: str) -> dict[str, float]:
    """Every sample of a Prometheus text page as {'name{k="v",...}': value}."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in s.labels.items())
            found[f"{s.name}{{{labels}}}"] = s.value
    return found


def test_a_fresh_process_exposes_every_alerted_series_at_zero() -> None:
    # A process of its own: this test session's counters have long moved.
    script = (
        "import sys\n"
        "from prometheus_client import generate_latest\n"
        "from dispatcher import app, metrics\n"
        "sys.stdout.write(generate_latest(metrics.registry()).decode())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert 'dispatcher_auto_disables_total{reason="auto"} 0.0' in done.stdout
    found = samples(done.stdout)
    missing = [s for s in ZERO_AT_START if s not in found]
    assert not missing, missing
    assert all(found[s] == 0 for s in ZERO_AT_START)


async def test_the_app_exposes_every_alerted_series(client: Any) -> None:
    found = samples(await (await client.get("/metrics")).text())
    missing = [s for s in ZERO_AT_START if s not in found]
    assert not missing, missing


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def prometheus(target: str) -> AsyncIterator[str]:
    """A real Prometheus scraping ``target`` every second, evaluating the shipped alerts."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus (Debian package) is required"
    workdir = Path(tempfile.mkdtemp(prefix="dsp-alerts-"))
    port = free_port()
    (workdir / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{GRAFANA / 'alerts.yml'}']\n"
        "scrape_configs:\n"
        f"  - job_name: dispatcher\n    static_configs: [{{targets: ['{target}']}}]\n"
    )
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


async def poll(session: aiohttp.ClientSession, url: str, found: Any, what: str) -> None:
    """GET ``url`` until ``found(json)`` holds; fail after a minute."""
    deadline = time.monotonic() + 60
    while True:
        try:
            async with session.get(url) as resp:
                if resp.status == 200 and found(await resp.json()):
                    return
        except aiohttp.ClientError:
            pass
        assert time.monotonic() < deadline, f"Prometheus never showed {what}"
        await asyncio.sleep(0.25)


async def test_the_first_auto_disable_fires_the_shipped_alert(
    make_client: Any, receiver: Any
) -> None:
    client = await make_client(failures_before_disable=1, max_retries=0)

    async def fail(_request: web.Request, _n: int) -> web.StreamResponse:
        return web.Response(status=500)

    receiver.responders["/down"] = fail
    hook = await (
        await client.post(
            "/v1/webhooks", json=webhook_body(url=receiver.url("/down")), headers=ADMIN
        )
    ).json()
    async with prometheus(f"127.0.0.1:{client.server.port}") as base, aiohttp.ClientSession() as s:
        # Scraped at least twice before the disable: the series' 0 is on record.
        await poll(
            s,
            f"{base}/api/v1/query?query=count_over_time(up[1m])",
            lambda j: j["data"]["result"] and float(j["data"]["result"][0]["value"][1]) >= 2,
            "two scrapes",
        )
        resp = await client.post(
            "/v1/events", json={"type": "order.created", "data": {}}, headers=PUBLISHER
        )
        assert resp.status == 202
        deadline = time.monotonic() + 30
        while True:
            got = await (await client.get(f"/v1/webhooks/{hook['id']}", headers=ADMIN)).json()
            if got["disabled_reason"] == "auto":
                break
            assert time.monotonic() < deadline, "the webhook was never auto-disabled"
            await asyncio.sleep(0.05)

        def firing(j: Any) -> bool:
            return any(
                a["labels"]["alertname"] == "DispatcherWebhookAutoDisabled"
                and a["labels"].get("reason") == "auto"
                and a["state"] == "firing"
                for a in j["data"]["alerts"]
            )

        await poll(s, f"{base}/api/v1/alerts", firing, "DispatcherWebhookAutoDisabled firing")
