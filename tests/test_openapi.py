"""The OpenAPI document: complete, served without a token, and honoured by the server
(schemathesis fuzzes a live server: no 500s, no answer the document does not describe)."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path
from typing import Any

from dispatcher import openapi
from tests.helpers import ADMIN, ADMIN_TOKEN, webhook_body


async def test_every_route_is_documented(client: Any) -> None:
    served = openapi.operations(client.app)
    undocumented = [f"{m} {p}" for m, p, op in served if op is None]
    assert not undocumented, f"routes the OpenAPI document does not describe: {undocumented}"
    resp = await client.get("/v1/openapi.json")
    doc = await resp.json()
    documented = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
    assert {(m, p) for m, p, _ in served} == documented


async def test_document_is_public_and_3_1(client: Any) -> None:
    resp = await client.get("/v1/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"] == "3.1.0"
    create = doc["paths"]["/v1/webhooks"]["post"]
    assert set(create["responses"]) >= {"201", "400", "401", "403", "422"}
    schema_ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert schema_ref.endswith("/WebhookCreate")
    assert doc["paths"]["/v1/events"]["post"]["security"] == [{"bearer": []}]
    assert doc["paths"]["/healthz"]["get"]["security"] == []


async def test_schemathesis_finds_nothing(client: Any, receiver: Any, tmp_path: Path) -> None:
    """Fuzz the live server (loopback only, bounded): no 500, every answer as documented."""
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st, "schemathesis is a dev dependency"
    # Some data for the operations that need existing resources.
    hook = await (
        await client.post("/v1/webhooks", json=webhook_body(url=receiver.url()), headers=ADMIN)
    ).json()
    await client.post(
        "/v1/events", json={"type": "order.created", "id": "st-1", "data": {}}, headers=ADMIN
    )
    base = f"http://127.0.0.1:{client.server.port}"
    proc = await asyncio.create_subprocess_exec(
        st,
        "run",
        f"{base}/v1/openapi.json",
        "-H",
        f"Authorization: Bearer {ADMIN_TOKEN}",
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,"
        "response_schema_conformance,response_headers_conformance,negative_data_rejection,"
        "unsupported_method",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "25",
        # One worker: hypothesis's source inspection is not thread-safe on CPython 3.11.
        "--workers",
        "1",
        "--seed",
        "42",
        "--no-color",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=300)
    text = out.decode()
    assert proc.returncode == 0, text[-6000:]
    assert hook["id"]
