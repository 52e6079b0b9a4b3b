"""The OpenAPI document: complete, served without a token, and honoured by the server
(schemathesis fuzzes a live server: no 500s, no answer the document does not describe)."""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher import matching, nesting, openapi, schemas
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


# The checks, and where the document cannot say everything the server enforces:
# - a cursor is opaque (only one the API handed out is valid): real ones are supplied;
# - an event type's examples must validate against its schema, and /test needs a type with
#   examples when no data is sent: rules between fields and stored state, which JSON Schema
#   cannot state, so schema-valid requests there may rightly be refused;
# - PATCH /v1/webhooks/{id}: schemathesis's coverage phase treats its optional properties as
#   required and reports their omission as accepted invalid data (a false positive).
# - an event's tenant_id must name an existing tenant (stored state again): a well-formed id
#   of no tenant is rightly a 422, so publishing may answer 422 to schema-valid bodies.
SCHEMATHESIS_TOML = """
[checks]
enabled = false
not_a_server_error.enabled = true
status_code_conformance.enabled = true
content_type_conformance.enabled = true
response_schema_conformance.enabled = true
response_headers_conformance.enabled = true
negative_data_rejection.enabled = true
positive_data_acceptance.enabled = true
unsupported_method.enabled = true

[[operations]]
include-name = "GET /v1/events"
parameters = {{ "query.cursor" = "{event_cursor}" }}

[[operations]]
include-name = [
    "GET /v1/webhooks", "GET /v1/deliveries", "GET /v1/event-types",
    "GET /v1/webhooks/{{id}}/deliveries",
]
parameters = {{ "query.cursor" = "{id_cursor}" }}

[[operations]]
include-name = ["GET /v1/tenants", "GET /v1/tenants/{{id}}/tokens"]
parameters = {{ "query.cursor" = "{tenant_cursor}" }}

[[operations]]
include-name = [
    "POST /v1/event-types", "PATCH /v1/event-types/{{name}}", "POST /v1/webhooks/{{id}}/test",
    "POST /v1/tenants",
]
checks = {{ positive_data_acceptance = {{ enabled = false }} }}

[[operations]]
include-name = ["POST /v1/events", "POST /v1/events/batch"]
checks.positive_data_acceptance.expected-statuses = ["2XX", "401", "403", "404", "422"]

[[operations]]
include-name = "PATCH /v1/webhooks/{{id}}"
checks = {{ negative_data_rejection = {{ enabled = false }} }}
"""


async def next_cursor(client: Any, path: str) -> str:
    """A cursor the API hands out for ``path`` (which must hold two or more rows)."""
    page = await (await client.get(f"{path}?limit=1", headers=ADMIN)).json()
    assert page["next_cursor"], page
    return str(page["next_cursor"])


async def test_schemathesis_finds_nothing(client: Any, receiver: Any, tmp_path: Path) -> None:
    """Fuzz the live server (loopback only, bounded): no 500, every answer as documented,
    every request the document calls valid accepted and every invalid one refused."""
    st_cli = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st_cli, "schemathesis is a dev dependency"
    # Some data for the operations that need existing resources, and for real cursors.
    for n in (1, 2):
        hook = await (
            await client.post("/v1/webhooks", json=webhook_body(url=receiver.url()), headers=ADMIN)
        ).json()
        await client.post(
            "/v1/events", json={"type": "order.created", "id": f"st-{n}", "data": {}}, headers=ADMIN
        )
    for tenant in ("st-a", "st-b"):
        await client.post("/v1/tenants", json={"id": tenant, "name": tenant}, headers=ADMIN)
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        SCHEMATHESIS_TOML.format(
            event_cursor=await next_cursor(client, "/v1/events"),
            id_cursor=await next_cursor(client, "/v1/webhooks"),
            tenant_cursor=await next_cursor(client, "/v1/tenants"),
        )
    )
    base = f"http://127.0.0.1:{client.server.port}"
    proc = await asyncio.create_subprocess_exec(
        st_cli,
        "--config-file",
        str(config),
        "run",
        f"{base}/v1/openapi.json",
        "-H",
        f"Authorization: Bearer {ADMIN_TOKEN}",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "25",
        # NUL is refused in every string; the document says so where it can (patterns), but
        # not inside free JSON such as metadata.
        "--generation-allow-x00",
        "false",
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
    assert "No issues found" in text, text[-6000:]
    assert hook["id"]


async def test_the_document_states_the_rules_the_server_enforces(client: Any) -> None:
    doc = await (await client.get("/v1/openapi.json")).json()
    components = doc["components"]["schemas"]
    event_type = components["EventIn"]["properties"]["type"]
    assert event_type["pattern"] == matching.PRODUCER_NAME_PATTERN
    create = components["WebhookCreate"]["properties"]
    assert create["url"]["maxLength"] == 2048 and create["url"]["pattern"]
    reserved = create["headers"]["propertyNames"]["not"]["pattern"]
    assert re.match(reserved, "Svix-Signature") and re.match(reserved, "webhook-id")
    assert not re.match(reserved, "X-Team")
    assert create["headers"]["maxProperties"] == 50
    assert create["secret"]["anyOf"][0]["pattern"].startswith("^whsec_")
    assert create["event_types"]["items"]["pattern"] == matching.SUBSCRIPTION_PATTERN
    patch = components["WebhookPatch"]["properties"]
    assert "anyOf" not in patch["name"] and patch["name"]["type"] == "string"  # null: 422
    assert {"type": "null"} in patch["max_retries"]["anyOf"]  # null: back to the default
    assert str(nesting.MAX_JSON_DEPTH) in components["EventIn"]["properties"]["data"]["description"]
    listing = doc["paths"]["/v1/events"]["get"]["parameters"]
    assert [p["schema"]["pattern"] for p in listing if p["name"] == "type"] == [
        matching.NAME_PATTERN
    ]


VALIDATED = [
    (schemas._URL, schemas._check_url, 2048),
    (schemas._SECRET, schemas._check_secret, 200),
    (schemas._NOT_BLANK, schemas._non_blank, 255),
    (matching.NAME_PATTERN, schemas._check_name, 255),
    (matching.PRODUCER_NAME_PATTERN, schemas._not_reserved, 255),
]


@pytest.mark.parametrize(("pattern", "check", "longest"), VALIDATED)
def test_what_a_documented_pattern_admits_the_validator_accepts(
    pattern: str, check: Any, longest: int
) -> None:
    """The patterns may say less than the validators (a URL's host), never more."""
    python = re.compile(pattern.removesuffix("$") + r"\Z")

    @settings(max_examples=300, database=None, deadline=None)
    @given(st.from_regex(python))
    def admitted(value: str) -> None:
        if len(value) <= longest:
            check(value)  # raises ValueError for what it refuses

    admitted()
