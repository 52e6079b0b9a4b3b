"""``dispatcher deliveries``: list, show (with every attempt), retry and cancel."""

from __future__ import annotations

import click

from dispatcher.cli.api import Api, api_options
from dispatcher.cli.output import (
    DELIVERY_COLUMNS,
    Group,
    all_pages,
    delivery_row,
    fields,
    more_hint,
    print_json,
    table,
    when,
)
from dispatcher.client import Client, Delivery, DeliveryStatus


@click.group(cls=Group)
def deliveries() -> None:
    """Inspect, retry and cancel deliveries on a running server."""


@deliveries.command("list")
@click.option("--webhook-id", default=None)
@click.option("--event-id", default=None)
@click.option(
    "--status",
    type=click.Choice(["created", "retrying", "success", "failed", "cancelled"]),
    default=None,
)
@click.option("--limit", type=click.IntRange(1, 500), default=None, help="Page size.")
@click.option("--cursor", default=None, help="Continue after a previous page.")
@click.option("--all", "every", is_flag=True, help="Follow every page.")
@api_options
def deliveries_list(
    api: Api,
    client: Client,
    webhook_id: str | None,
    event_id: str | None,
    status: DeliveryStatus | None,
    limit: int | None,
    cursor: str | None,
    every: bool,
) -> None:
    """List deliveries, newest first."""
    page = all_pages(
        lambda c: client.list_deliveries(
            webhook_id=webhook_id, event_id=event_id, status=status, limit=limit, cursor=c
        ),
        cursor,
        every,
    )
    if api.json:
        print_json(page)
        return
    table(DELIVERY_COLUMNS, [delivery_row(d) for d in page["data"]])
    more_hint(page)


@deliveries.command("show")
@click.argument("delivery_id")
@api_options
def deliveries_show(api: Api, client: Client, delivery_id: str) -> None:
    """Show one delivery with every attempt."""
    d = client.get_delivery(delivery_id)
    if api.json:
        print_json(d)
        return
    fields(
        [
            ("id", d["id"]),
            ("status", d["status"]),
            ("event", f"{d['event_id']} ({d['event_type']})"),
            ("webhook", d["webhook_id"]),
            ("attempts", d["attempt_count"]),
            ("created", when(d["created_at"])),
            ("last attempt", when(d["last_attempt_at"])),
            ("next attempt", when(d["next_attempt_at"])),
            ("last status code", d["last_status_code"]),
            ("last error", d["last_error"]),
        ]
    )
    click.echo()
    table(
        ["#", "STARTED", "MS", "STATUS", "ERROR", "RESPONSE"],
        [
            [
                a["number"],
                when(a["started_at"]),
                round(a["duration_ms"]),
                a["status_code"],
                a["error"],
                a["response_body"],
            ]
            for a in d["attempts"]
        ],
    )


def _delivery_changed(api: Api, d: Delivery) -> None:
    if api.json:
        print_json(d)
    else:
        click.echo(f"{d['id']}: {d['status']}")


@deliveries.command("retry")
@click.argument("delivery_id")
@api_options
def deliveries_retry(api: Api, client: Client, delivery_id: str) -> None:
    """Schedule an immediate attempt."""
    _delivery_changed(api, client.retry_delivery(delivery_id))


@deliveries.command("cancel")
@click.argument("delivery_id")
@api_options
def deliveries_cancel(api: Api, client: Client, delivery_id: str) -> None:
    """Cancel a delivery that is still waiting."""
    _delivery_changed(api, client.cancel_delivery(delivery_id))
