"""``dispatcher events``: publish an event, list the stored ones, show one with its deliveries."""

from __future__ import annotations

import click
import orjson

from dispatcher.cli.api import Api, api_options, json_argument
from dispatcher.cli.output import (
    DELIVERY_COLUMNS,
    Group,
    all_pages,
    delivery_row,
    fields,
    more_hint,
    print_accepted,
    print_json,
    table,
    when,
)
from dispatcher.client import Client, Event


@click.group(cls=Group)
def events() -> None:
    """Publish events to a running server, and look at the stored ones."""


@events.command("send")
@click.argument("event_type", metavar="TYPE")
@click.argument("data", metavar="JSON")
@click.option("--id", "event_id", default=None, help="Idempotency key (default: generated).")
@click.option("--occurred-at", default=None, help="RFC 3339 time (default: now).")
@api_options
def events_send(
    api: Api,
    client: Client,
    event_type: str,
    data: str,
    event_id: str | None,
    occurred_at: str | None,
) -> None:
    """Publish one event of TYPE with JSON as its data (- reads it from stdin)."""
    payload = json_argument(data)
    answer = client.publish(event_type, payload, id=event_id, occurred_at=occurred_at)
    print_accepted(api.json, answer)


def _by_status(counts: dict[str, int]) -> str:
    """An event's deliveries by status, e.g. ``2 success, 1 retrying``."""
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none"


@events.command("list")
@click.option("--type", "event_type", default=None, help="Only events of this type.")
@click.option("--limit", type=click.IntRange(1, 500), default=None, help="Page size.")
@click.option("--cursor", default=None, help="Continue after a previous page.")
@click.option("--all", "every", is_flag=True, help="Follow every page.")
@api_options
def events_list(
    api: Api,
    client: Client,
    event_type: str | None,
    limit: int | None,
    cursor: str | None,
    every: bool,
) -> None:
    """List stored events, newest first, with their deliveries by status."""
    page = all_pages(
        lambda c: client.list_events(type=event_type, limit=limit, cursor=c), cursor, every
    )
    if api.json:
        print_json(page)
        return
    table(
        ["ID", "TYPE", "DELIVERIES", "OCCURRED", "CREATED"],
        [
            [
                e["id"],
                e["type"],
                _by_status(e["deliveries"]),
                when(e["occurred_at"]),
                when(e["created_at"]),
            ]
            for e in page["data"]
        ],
    )
    more_hint(page)


@events.command("show")
@click.argument("event_id")
@api_options
def events_show(api: Api, client: Client, event_id: str) -> None:
    """Show one event: its data and its deliveries."""
    event: Event = client.get_event(event_id)
    if api.json:
        print_json(event)
        return
    fields(
        [
            ("id", event["id"]),
            ("type", event["type"]),
            ("occurred", when(event["occurred_at"])),
            ("created", when(event["created_at"])),
            ("deliveries", _by_status(event["deliveries"])),
        ]
    )
    click.echo("data:")
    click.echo(orjson.dumps(event["data"], option=orjson.OPT_INDENT_2).decode())
    page = client.list_deliveries(event_id=event_id, limit=500)
    click.echo()
    table(DELIVERY_COLUMNS, [delivery_row(d) for d in page["data"]])
    more_hint(page)
