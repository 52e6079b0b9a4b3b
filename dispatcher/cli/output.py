"""How commands print: aligned tables and ``key  value`` fields for people, indented JSON for
scripts (``--json``), and command listings that show each command's whole first sentence."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click
import orjson

from dispatcher.client import Delivery, EventAccepted, Page

T = TypeVar("T")


def summary(text: str | None) -> str:
    """The first sentence of a command's help, on one line and whole."""
    if not text:
        return ""
    line = " ".join(inspect.cleandoc(text).split("\n\n")[0].split())
    end = line.find(". ")
    return line if end < 0 else line[: end + 1]


class Group(click.Group):
    """A command group whose listing shows each command's whole first sentence, wrapped to the
    terminal's width, where click cuts it to one line ending in "..."."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List the subcommands with their summaries."""
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.short_help or summary(cmd.help)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def print_json(value: Any) -> None:
    """Indented JSON, for ``--json``."""
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def when(value: str | None) -> str:
    """An API timestamp, shortened to seconds (UTC)."""
    if not value:
        return "-"
    return value[:19].replace("T", " ")


def _cell(value: object, width: int = 60) -> str:
    text = "-" if value is None or value == "" else str(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Aligned columns under ``headers`` (long cells cut short); ``(none)`` for no rows."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    for line in [list(headers), *cells]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    if not rows:
        click.echo("(none)")


def fields(pairs: Sequence[tuple[str, object]]) -> None:
    """One ``key  value`` line per pair, the values aligned."""
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        text = "-" if value is None or value == "" else str(value)
        click.echo(f"{key.ljust(width)}  {text}")


def all_pages(fetch: Callable[[str | None], Page[T]], cursor: str | None, every: bool) -> Page[T]:
    """The page after ``cursor``, or with ``every`` all of them from there as one."""
    page = fetch(cursor)
    if not every:
        return page
    data = list(page["data"])
    while page["next_cursor"]:
        page = fetch(page["next_cursor"])
        data.extend(page["data"])
    return {"data": data, "next_cursor": None}


def more_hint(page: Page[Any]) -> None:
    """On stderr, how to get the next page, if there is one."""
    if page["next_cursor"]:
        click.echo(f"(more: --cursor {page['next_cursor']}, or --all)", err=True)


def print_accepted(as_json: bool, answer: EventAccepted) -> None:
    """An ingestion answer: the event id, its type and how many deliveries it made."""
    if as_json:
        print_json(answer)
        return
    note = " (duplicate: already accepted, nothing created)" if answer["duplicate"] else ""
    n = answer["deliveries"]
    click.echo(
        f"{answer['id']}: {answer['type']}, {n} {'delivery' if n == 1 else 'deliveries'}{note}"
    )


DELIVERY_COLUMNS = [
    "ID",
    "STATUS",
    "EVENT TYPE",
    "EVENT",
    "WEBHOOK",
    "ATTEMPTS",
    "LAST CODE",
    "CREATED",
    "NEXT ATTEMPT",
]


def delivery_row(d: Delivery) -> list[object]:
    """A delivery as a row under :data:`DELIVERY_COLUMNS`."""
    return [
        d["id"],
        d["status"],
        d["event_type"],
        d["event_id"],
        d["webhook_id"],
        d["attempt_count"],
        d["last_status_code"],
        when(d["created_at"]),
        when(d["next_attempt_at"]),
    ]
