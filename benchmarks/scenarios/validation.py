"""validation: ingestion of a type with a JSON Schema against the same events without one.

A 1 KiB order event (20 properties, a nested customer with an address, an array of line
objects) is published as ``bench.typed``, whose schema describes it fully, and as
``bench.plain``, which has none. Single events (at 64 in flight) and batches of 100 (4 in
flight) alternate between the two in rounds, so both see the same machine; each figure is
the median of the rounds. The cost is the drop in events/s: at most 10 % for single events
and 15 % for batches (issue 16). No webhook is registered: this is ingestion alone.
``validator_us_per_event`` is one validation timed in the benchmark process itself, the
part of the cost that does not move with the machine's load.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import orjson

from benchmarks.env import HEADERS
from benchmarks.measure import ProcessCpu, Progress, run_concurrent
from benchmarks.scenarios.base import Context, Result
from dispatcher.event_schemas import compile_schema

CONCURRENCY = 64
BATCH = 100
BATCH_CONCURRENCY = 4
EVENT_BYTES = 1024

_ADDRESS = {
    "type": "object",
    "required": ["line1", "city", "country"],
    "properties": {
        "line1": {"type": "string", "maxLength": 200},
        "line2": {"type": ["string", "null"]},
        "city": {"type": "string"},
        "postcode": {"type": "string", "pattern": "^[A-Z0-9 -]{3,10}$"},
        "country": {"type": "string", "minLength": 2, "maxLength": 2},
    },
}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["sent_at", "order_id", "status", "currency", "total", "customer", "lines"],
    "additionalProperties": False,
    "properties": {
        "sent_at": {"type": "number"},
        "order_id": {"type": "string", "pattern": "^ord_[0-9a-z]+$"},
        "number": {"type": "integer", "minimum": 1},
        "status": {"enum": ["placed", "paid", "shipped", "cancelled"]},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "total": {"type": "number", "minimum": 0},
        "subtotal": {"type": "number", "minimum": 0},
        "tax": {"type": "number", "minimum": 0},
        "shipping": {"type": "number", "minimum": 0},
        "placed_at": {"type": "string", "format": "date-time"},
        "channel": {"type": "string", "enum": ["web", "app", "store"]},
        "locale": {"type": "string"},
        "coupon": {"type": ["string", "null"]},
        "gift": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 20},
        "note": {"type": "string", "maxLength": 2000},
        "customer": {
            "type": "object",
            "required": ["id", "email"],
            "properties": {
                "id": {"type": "string"},
                "email": {"type": "string", "format": "email"},
                "name": {"type": "string"},
                "address": {"$ref": "#/$defs/address"},
            },
        },
        "shipping_address": {"$ref": "#/$defs/address"},
        "lines": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["sku", "quantity", "unit_price"],
                "properties": {
                    "sku": {"type": "string"},
                    "name": {"type": "string"},
                    "quantity": {"type": "integer", "minimum": 1},
                    "unit_price": {"type": "number", "minimum": 0},
                },
            },
        },
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "$defs": {"address": _ADDRESS},
}


def order(pad: str) -> dict[str, Any]:
    """One order event's data (``note`` pads it to the size wanted)."""
    address = {
        "line1": "221B Baker Street",
        "line2": None,
        "city": "London",
        "postcode": "NW1 6XE",
        "country": "GB",
    }
    return {
        "sent_at": time.time(),
        "order_id": "ord_01j9z8k2m4",
        "number": 100234,
        "status": "paid",
        "currency": "EUR",
        "total": 182.4,
        "subtotal": 152.0,
        "tax": 30.4,
        "shipping": 0.0,
        "placed_at": "2025-01-01T12:00:00Z",
        "channel": "web",
        "locale": "en-GB",
        "coupon": None,
        "gift": False,
        "tags": ["priority", "returning"],
        "note": pad,
        "customer": {
            "id": "cus_8812",
            "email": "ada@example.com",
            "name": "Ada Lovelace",
            "address": address,
        },
        "shipping_address": address,
        "lines": [
            {"sku": f"SKU-{i:04d}", "name": "Widget", "quantity": i + 1, "unit_price": 19.0}
            for i in range(4)
        ],
        "metadata": {"source": "bench"},
    }


def _pad() -> str:
    size = len(orjson.dumps(order("")))
    return "x" * max(0, EVENT_BYTES - size - 2)  # sent_at may grow by a digit


async def run(ctx: Context) -> Result:
    env = ctx.env
    await env.reset()  # the catalogue too: bench.typed is registered afresh
    pad = _pad()
    await env.api(
        "POST",
        "/v1/event-types",
        {"name": "bench.typed", "schema": SCHEMA, "examples": [order(pad)]},
    )
    await _check_enforced(ctx)
    rounds = ctx.opts.pick(3, 5)
    n = ctx.opts.pick(2000, 5000)
    batches = ctx.opts.pick(40, 120)
    rates: dict[str, list[float]] = {}
    # CPU seconds by process and events, per (shape, kind), summed over the measured rounds.
    cpu_s: dict[str, dict[str, float]] = {}
    counted: dict[str, int] = {}

    def account(key: str, cpu: ProcessCpu, events: int) -> None:
        if not measuring[0]:
            return
        into = cpu_s.setdefault(key, {})
        for group, secs in cpu.seconds.items():
            into[group] = into.get(group, 0.0) + secs
        counted[key] = counted.get(key, 0) + events

    measuring = [False]  # the warm-up is not counted

    async def single(kind: str, label: str) -> float:
        async def one(_: int) -> None:
            await env.publish({"type": kind, "data": order(pad)})

        cpu = env.cpu()
        secs = await run_concurrent(n, CONCURRENCY, one, Progress(label, n, "events"))
        account(f"single_{_name(kind)}", cpu.stop(), n)
        return n / secs

    async def batch(kind: str, label: str) -> float:
        async def one(_: int) -> None:
            await env.publish_batch([{"type": kind, "data": order(pad)} for _ in range(BATCH)])

        progress = Progress(label, batches, "batches")
        cpu = env.cpu()
        secs = await run_concurrent(batches, BATCH_CONCURRENCY, one, progress)
        account(f"batch100_{_name(kind)}", cpu.stop(), batches * BATCH)
        return batches * BATCH / secs

    # Warm-up: connections, the compiled validator, Postgres' caches.
    for kind in ("bench.plain", "bench.typed"):
        await single(kind, f"validation warm-up {kind}")
    measuring[0] = True
    for r in range(rounds):
        # Alternate which goes first, so neither always runs on a warmer (or busier) machine.
        kinds = ("bench.plain", "bench.typed") if r % 2 == 0 else ("bench.typed", "bench.plain")
        for kind in kinds:
            name = "schema" if kind == "bench.typed" else "plain"
            rates.setdefault(f"single_{name}", []).append(
                await single(kind, f"validation r{r + 1} single {name}")
            )
        for kind in kinds:
            name = "schema" if kind == "bench.typed" else "plain"
            rates.setdefault(f"batch100_{name}", []).append(
                await batch(kind, f"validation r{r + 1} batch100 {name}")
            )
        await env.db.execute("TRUNCATE events CASCADE")
    await env.api("DELETE", "/v1/event-types/bench.typed")
    figures: dict[str, float] = {
        f"{key}_events_per_s": statistics.median(values) for key, values in rates.items()
    }
    for shape in ("single", "batch100"):
        plain = figures[f"{shape}_plain_events_per_s"]
        schema = figures[f"{shape}_schema_events_per_s"]
        figures[f"{shape}_cost_pct"] = (plain - schema) / plain * 100
    for key, groups in cpu_s.items():
        for group, secs in groups.items():
            figures[f"{key}_{group}_cpu_us_per_event"] = 1e6 * secs / counted[key]
    figures["validator_us_per_event"] = _validator_cost(order(pad))
    result = Result(figures)
    size = len(orjson.dumps(order(pad)))
    result.notes.append(
        f"{size}-byte events, schema of {len(SCHEMA['properties'])} properties (nested objects, "
        f"an array of objects, a $ref); median of {rounds} alternating rounds; "
        f"per round {n} single events at {CONCURRENCY} in flight, {batches} batches of {BATCH}"
    )
    return result


def _name(kind: str) -> str:
    return "schema" if kind == "bench.typed" else "plain"


def _validator_cost(data: dict[str, Any]) -> float:
    """Microseconds one validation takes in this process, with the validator ingestion uses."""
    validator = compile_schema(SCHEMA)
    count = 20000
    started = time.perf_counter()
    for _ in range(count):
        validator.is_valid(data)
    return (time.perf_counter() - started) / count * 1e6


async def _check_enforced(ctx: Context) -> None:
    """An event breaking the schema must be refused, or the run measures nothing."""
    async with ctx.env.session.post(
        ctx.env.base + "/v1/events",
        data=orjson.dumps({"type": "bench.typed", "data": {"order_id": 5}}),
        headers=HEADERS,
    ) as resp:
        await resp.read()
        if resp.status != 422:
            raise RuntimeError(f"an invalid bench.typed event got {resp.status}, not 422")
