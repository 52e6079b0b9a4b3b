"""``dispatcher event-types``: the catalogue on a running server (list, show, create, update,
delete); ``event-types import`` is a database command (see :mod:`dispatcher.cli.database`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson

from dispatcher.cli.api import Api, api_options
from dispatcher.cli.output import Group, all_pages, fields, more_hint, print_json, table, when
from dispatcher.client import Client, EventType


@click.group("event-types", cls=Group)
def event_types_group() -> None:
    """The event-type catalogue: descriptions, JSON Schemas and examples."""


def _json_value(_ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
    """JSON text, or ``@FILE`` (``@-``: stdin) holding it; None when not given."""
    if value is None:
        return None
    if isinstance(value, tuple):
        return [_json_value(_ctx, _param, v) for v in value] if value else None
    text = str(value)
    if text.startswith("@"):
        try:
            text = sys.stdin.read() if text == "@-" else Path(text[1:]).read_text()
        except OSError as exc:
            raise click.BadParameter(f"cannot read {text[1:]}: {exc.strerror}") from None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}") from None


def _show_event_type(et: EventType) -> None:
    fields(
        [
            ("name", et["name"]),
            ("status", "enabled" if et["enabled"] else "disabled"),
            ("description", et["description"]),
            ("examples", len(et["examples"])),
            ("created", when(et["created_at"])),
            ("updated", when(et["updated_at"])),
        ]
    )
    if et["schema"] is not None:
        click.echo("schema:")
        click.echo(orjson.dumps(et["schema"], option=orjson.OPT_INDENT_2).decode())
    for i, example in enumerate(et["examples"]):
        click.echo(f"example {i + 1}:")
        click.echo(orjson.dumps(example, option=orjson.OPT_INDENT_2).decode())


def _event_type_out(api: Api, et: EventType) -> None:
    if api.json:
        print_json(et)
    else:
        _show_event_type(et)


schema_option = click.option(
    "--schema",
    callback=_json_value,
    default=None,
    help="The data's JSON Schema (draft 2020-12): JSON, or @FILE.",
)


example_option = click.option(
    "--example",
    "examples",
    multiple=True,
    callback=_json_value,
    help="An example of the data: JSON, or @FILE; repeat for several.",
)


@event_types_group.command("list")
@click.option("--limit", type=click.IntRange(1, 500), default=None, help="Page size.")
@click.option("--cursor", default=None, help="Continue after a previous page.")
@click.option("--all", "every", is_flag=True, help="Follow every page.")
@api_options
def event_types_list(
    api: Api, client: Client, limit: int | None, cursor: str | None, every: bool
) -> None:
    """List event types, alphabetically."""
    page = all_pages(lambda c: client.list_event_types(limit=limit, cursor=c), cursor, every)
    if api.json:
        print_json(page)
        return
    table(
        ["NAME", "STATUS", "SCHEMA", "EXAMPLES", "DESCRIPTION"],
        [
            [
                t["name"],
                "enabled" if t["enabled"] else "disabled",
                "yes" if t["schema"] is not None else "no",
                len(t["examples"]),
                t["description"],
            ]
            for t in page["data"]
        ],
    )
    more_hint(page)


@event_types_group.command("show")
@click.argument("name")
@api_options
def event_types_show(api: Api, client: Client, name: str) -> None:
    """Show one event type with its schema and examples."""
    _event_type_out(api, client.get_event_type(name))


@event_types_group.command("create")
@click.argument("name")
@click.option("--description", default="")
@click.option("--disabled", is_flag=True, help="Its events are stored but not delivered.")
@schema_option
@example_option
@api_options
def event_types_create(
    api: Api,
    client: Client,
    name: str,
    description: str,
    disabled: bool,
    schema: Any,
    examples: list[Any] | None,
) -> None:
    """Register an event type NAME.

    \b
    Example:
      dispatcher event-types create order.created --schema @order.schema.json \\
          --example '{"order": 42}'
    """
    et = client.create_event_type(
        name, description, not disabled, schema=schema, examples=examples or ()
    )
    _event_type_out(api, et)


@event_types_group.command("update")
@click.argument("name")
@click.option("--description", default=None)
@click.option("--enable/--disable", "enabled", default=None, help="Deliver its events, or not.")
@schema_option
@click.option("--no-schema", is_flag=True, help="Remove the schema (stop validating).")
@click.option(
    "--example",
    "examples",
    multiple=True,
    callback=_json_value,
    help="Replace the examples (JSON or @FILE; repeat for several).",
)
@click.option("--no-examples", is_flag=True, help="Remove every example.")
@api_options
def event_types_update(
    api: Api,
    client: Client,
    name: str,
    description: str | None,
    enabled: bool | None,
    schema: Any,
    no_schema: bool,
    examples: list[Any] | None,
    no_examples: bool,
) -> None:
    """Change an event type; what is not given stays as it is."""
    if no_schema and schema is not None:
        raise click.UsageError("--schema and --no-schema contradict each other")
    if no_examples and examples:
        raise click.UsageError("--example and --no-examples contradict each other")
    et = client.update_event_type(
        name,
        description=description,
        enabled=enabled,
        schema=schema,
        examples=[] if no_examples else examples,
        remove_schema=no_schema,
    )
    _event_type_out(api, et)


@event_types_group.command("delete")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@api_options
def event_types_delete(api: Api, client: Client, name: str, yes: bool) -> None:
    """Remove an event type from the catalogue."""
    if not yes:
        click.confirm(f"Delete event type {name}?", abort=True)
    client.delete_event_type(name)
    if api.json:
        print_json({"name": name, "deleted": True})
    else:
        click.echo(f"{name}: deleted")
