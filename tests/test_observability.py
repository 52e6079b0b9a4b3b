"""Metrics, the Grafana/Prometheus files, a real Prometheus scrape, and the JSON logs."""

from __future__ import annotations

import asyncio
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
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dispatcher import migrate
from tests.helpers import ADMIN, ADMIN_TOKEN, PUBLISHER, webhook_body, with_database

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "grafana"


async def scrape(client: Any) -> dict[str, float]:
    """Every sample of /metrics as {'name{labels}': value}."""
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(await resp.text()):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            samples[f"{s.name}{{{labels}}}"] = s.value
    return samples


def delta(before: dict[str, float], after: dict[str, float], key: str) -> float:
    return after.get(key, 0.0) - before.get(key, 0.0)


async def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_counters_move_with_real_traffic(make_client: Any, receiver: Any) -> None:
    client = await make_client(max_retries=0)
    ok = await (
        await client.post("/v1/webhooks", json=webhook_body(url=receiver.url("/ok")), headers=ADMIN)
    ).json()
    receiver.responders["/bad"] = lambda _r, _n: _answer(500)
    await client.post("/v1/webhooks", json=webhook_body(url=receiver.url("/bad")), headers=ADMIN)
    before = await scrape(client)

    for i in range(3):
        resp = await client.post(
            "/v1/events", json={"type": "order.created", "data": {"i": i}}, headers=PUBLISHER
        )
        assert resp.status == 202
    dup = await client.post(
        "/v1/events", json={"type": "order.created", "id": "same", "data": {}}, headers=PUBLISHER
    )
    again = await client.post(
        "/v1/events", json={"type": "order.created", "id": "same", "data": {}}, headers=PUBLISHER
    )
    assert dup.status == again.status == 202
    await receiver.wait_for(4, "/ok")
    await receiver.wait_for(4, "/bad")

    async def recorded() -> bool:
        after = await scrape(client)
        failed = "dispatcher_deliveries_finished_total{outcome=failed,webhook_id=}"
        accepted = "dispatcher_events_ingested_total{outcome=accepted}"
        # The 4 failures are announced as operational events once they are committed, and
        # the third failure in a row as the webhook's dispatcher.webhook.failing.
        return delta(before, after, failed) >= 4 and delta(before, after, accepted) >= 9

    await wait_until(recorded)
    after = await scrape(client)
    # 4 from the producer, 4 `dispatcher.delivery.failed` and 1 `dispatcher.webhook.failing`.
    assert delta(before, after, "dispatcher_events_ingested_total{outcome=accepted}") == 9
    assert delta(before, after, "dispatcher_events_ingested_total{outcome=duplicate}") == 1
    assert delta(before, after, "dispatcher_attempts_total{result=2xx,webhook_id=}") == 4
    assert delta(before, after, "dispatcher_attempts_total{result=5xx,webhook_id=}") == 4
    assert (
        delta(before, after, "dispatcher_deliveries_finished_total{outcome=success,webhook_id=}")
        == 4
    )
    assert delta(before, after, "dispatcher_attempt_duration_seconds_count{webhook_id=}") == 8
    assert delta(before, after, "dispatcher_delivery_latency_seconds_count{webhook_id=}") == 4
    # Operational events match neither webhook ("*"-less "order.*" filters): 8 deliveries.
    assert delta(before, after, "dispatcher_deliveries_created_total{webhook_id=}") == 8
    assert delta(before, after, "dispatcher_ingest_batch_size_count{}") >= 1
    assert ok["id"]


async def test_per_webhook_labels_only_when_switched_on(make_client: Any, receiver: Any) -> None:
    client = await make_client(metrics_per_webhook=True)
    hook = await (
        await client.post("/v1/webhooks", json=webhook_body(url=receiver.url()), headers=ADMIN)
    ).json()
    await client.post("/v1/events", json={"type": "order.created", "data": {}}, headers=PUBLISHER)
    await receiver.wait_for(1)

    async def labelled() -> bool:
        after = await scrape(client)
        return f"dispatcher_attempts_total{{result=2xx,webhook_id={hook['id']}}}" in after

    await wait_until(labelled)


async def test_gauges_report_queue_and_pool(client: Any) -> None:
    from dispatcher import metrics
    from dispatcher.app_keys import POOL, REGISTRY

    await client.post("/v1/webhooks", json=webhook_body(url="http://127.0.0.1:9/x"), headers=ADMIN)
    await metrics.sample(client.app[POOL], client.app[REGISTRY])
    samples = await scrape(client)
    assert samples["dispatcher_webhooks{state=enabled}"] == 1
    for state in ("due", "scheduled", "held", "leased"):
        assert f"dispatcher_queue_depth{{state={state}}}" in samples
    assert samples["dispatcher_db_pool_connections{state=idle}"] >= 0
    assert "dispatcher_oldest_due_seconds{}" in samples


async def test_every_dashboard_metric_is_exposed(client: Any) -> None:
    """The dashboard cannot silently rot: each metric it queries exists at /metrics."""
    resp = await client.get("/metrics")
    exposed: set[str] = set()
    for family in text_string_to_metric_families(await resp.text()):
        if family.type == "counter":
            exposed.add(family.name + "_total")
        elif family.type == "histogram":
            exposed.update(family.name + s for s in ("_bucket", "_sum", "_count"))
        else:
            exposed.add(family.name)
    dashboard = json.loads((GRAFANA / "dashboards" / "dispatcher.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    used = {m for e in exprs for m in re.findall(r"\b(dispatcher_[a-z_]+)\b", e)}
    rules = (GRAFANA / "alerts.yml").read_text()
    used |= set(re.findall(r"\b(dispatcher_[a-z_]+)\b", rules))
    missing = sorted(used - exposed)
    assert not missing, f"dashboard/alerts use metrics /metrics does not expose: {missing}"


@pytest.mark.parametrize(
    "args", [["check", "config", "prometheus.yml"], ["check", "rules", "alerts.yml"]]
)
def test_promtool_accepts_shipped_files(args: list[str]) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is required"
    result = subprocess.run(
        [promtool, *args], cwd=GRAFANA, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_real_prometheus_scrapes_a_running_dispatcher(client: Any, receiver: Any) -> None:
    binary = shutil.which("prometheus")
    assert binary, "prometheus (Debian package) is required"
    await client.post("/v1/webhooks", json=webhook_body(url=receiver.url()), headers=ADMIN)
    await client.post("/v1/events", json={"type": "order.created", "data": {}}, headers=PUBLISHER)
    await receiver.wait_for(1)
    workdir = Path(tempfile.mkdtemp(prefix="dsp-prom-"))
    port = free_port()
    target = f"127.0.0.1:{client.server.port}"
    (workdir / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s}\n"
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
        query = f"http://127.0.0.1:{port}/api/v1/query"
        deadline = time.monotonic() + 60
        result: list[Any] = []
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline and not result:
                try:
                    async with session.get(
                        query, params={"query": 'dispatcher_attempts_total{result="2xx"}'}
                    ) as resp:
                        if resp.status == 200:
                            result = (await resp.json())["data"]["result"]
                except aiohttp.ClientError:
                    pass
                if not result:
                    await asyncio.sleep(0.25)
        assert result, "Prometheus never answered the query with a sample"
        assert float(result[0]["value"][1]) >= 1
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


async def _answer(status: int) -> Any:
    from aiohttp import web

    return web.Response(status=status, text="nope: the order is unknown")


async def test_logs_are_json_with_delivery_fields_and_no_secrets(
    server_dsn: str, receiver: Any, tmp_path: Path
) -> None:
    """A real `dispatcher serve`: every delivery line carries the ids, attempt, host, status
    and duration; 4xx bodies are warnings; secrets and tokens never appear."""
    name = f"dispatcher_logs_{os.getpid()}"
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    dsn = with_database(server_dsn, name)
    await migrate.migrate_dsn(dsn)
    port = free_port()
    env = {
        **os.environ,
        "DISPATCHER_DATABASE_URL": dsn,
        "DISPATCHER_PORT": str(port),
        "DISPATCHER_ADMIN_TOKEN": ADMIN_TOKEN,
        "DISPATCHER_ALLOW_PRIVATE_TARGETS": "true",
        "DISPATCHER_DATA_DIR": str(tmp_path),
        "DISPATCHER_LOG_FORMAT": "json",
        "DISPATCHER_MAX_RETRIES": "0",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "dispatcher", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    receiver.responders["/rejects"] = lambda _r, _n: _answer(422)
    secrets: list[str] = []
    try:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 30
            while True:
                try:
                    async with session.get(base + "/readyz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, "dispatcher did not become ready"
                await asyncio.sleep(0.1)
            for path in ("/hook", "/rejects"):
                async with session.post(
                    base + "/v1/webhooks",
                    json=webhook_body(url=receiver.url(path)),
                    headers=ADMIN,
                ) as r:
                    secrets.append((await r.json())["secret"])
            async with session.post(
                base + "/v1/events",
                json={"type": "order.created", "id": "evt-log-1", "data": {"n": 1}},
                headers=ADMIN,
            ) as r:
                assert r.status == 202
            await receiver.wait_for(1, "/hook")
            await receiver.wait_for(1, "/rejects")
            async with session.get(base + "/v1/deliveries?status=failed", headers=ADMIN) as r:
                pass
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        conn = await asyncpg.connect(server_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
    text = out.decode()
    lines = [orjson.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert lines, text
    attempts = [ln for ln in lines if ln.get("event") in ("delivery_attempt", "delivery_rejected")]
    assert len(attempts) == 2, text
    for ln in attempts:
        for key in ("event_id", "delivery_id", "webhook_id", "attempt", "host", "duration_ms"):
            assert key in ln, (key, ln)
        assert ln["event_id"] == "evt-log-1"
        assert ln["host"] == "127.0.0.1"
    rejected = [ln for ln in attempts if ln["event"] == "delivery_rejected"]
    assert rejected[0]["level"] == "warning"
    assert rejected[0]["status_code"] == 422
    assert "the order is unknown" in rejected[0]["response_body"]
    api = [ln for ln in lines if ln.get("event") == "api_request"]
    assert api and all(ln.get("request_id") for ln in api)
    for secret in secrets:
        assert secret not in text
        assert secret.removeprefix("whsec_") not in text
    assert ADMIN_TOKEN not in text
    assert "webhook-signature" not in text.lower()
