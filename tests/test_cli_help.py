"""``dispatcher --help`` (and each group's) shows every command's whole first sentence."""

from __future__ import annotations

import inspect

import click
import pytest
from click.testing import CliRunner

from dispatcher.cli import main


def first_sentence(cmd: click.Command) -> str:
    paragraph = inspect.cleandoc(cmd.help or "").split("\n\n")[0]
    text = " ".join(paragraph.split())
    return text[: text.index(". ") + 1] if ". " in text else text


def groups(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            found += groups(cmd, (*path, name))
    return found


@pytest.mark.parametrize("path", groups(main), ids=lambda p: " ".join(p) or "dispatcher")
@pytest.mark.parametrize("columns", ["80", "60"])
def test_help_lists_every_command_with_its_whole_first_sentence(
    path: tuple[str, ...], columns: str
) -> None:
    group = main
    for name in path:
        sub = group.commands[name]
        assert isinstance(sub, click.Group)
        group = sub
    result = CliRunner().invoke(main, [*path, "--help"], env={"COLUMNS": columns})
    assert result.exit_code == 0, result.output
    listing = result.output.split("Commands:", 1)[1]
    flat = " ".join(listing.split())
    assert "..." not in flat
    for name, cmd in group.commands.items():
        if cmd.hidden:
            continue
        assert f"{name} {first_sentence(cmd)}" in flat, (name, listing)


def test_the_main_commands_are_listed() -> None:
    assert {"serve", "webhooks", "events", "deliveries", "event-types"} <= set(main.commands)
    webhooks = main.commands["webhooks"]
    assert isinstance(webhooks, click.Group)
    assert {"update", "ping", "test", "replay"} <= set(webhooks.commands)
    events = main.commands["events"]
    assert isinstance(events, click.Group)
    assert {"send", "list", "show"} <= set(events.commands)
