"""The ``dispatcher`` command line: the click group, and each command from the module that
does its job.

- :mod:`~dispatcher.cli.serving`: ``serve``, and the supervisor of several worker processes;
- :mod:`~dispatcher.cli.database`: ``migrate``, ``token``, ``export``, ``import`` and
  ``event-types import``, directly on the database;
- :mod:`~dispatcher.cli.webhooks`, :mod:`~dispatcher.cli.events`,
  :mod:`~dispatcher.cli.deliveries`, :mod:`~dispatcher.cli.event_types`,
  :mod:`~dispatcher.cli.tenants`: the commands that
  talk to a running server, over :mod:`~dispatcher.cli.api` (server, token, errors);
- :mod:`~dispatcher.cli.output`: tables, fields, JSON and the command listings;
  :mod:`~dispatcher.cli.common`: settings, the database and ``--config``.
"""

from __future__ import annotations

import click

from dispatcher import __version__
from dispatcher.cli import (
    database,
    deliveries,
    event_types,
    events,
    serving,
    tenants,
    webhooks,
)
from dispatcher.cli.output import Group

__all__ = ["main"]


@click.group(cls=Group)
@click.version_option(__version__, prog_name="dispatcher")
def main() -> None:
    """Dispatcher: a self-hosted webhook dispatcher on Postgres."""


for _command in (
    serving.serve,
    database.migrate_cmd,
    database.token,
    database.export_cmd,
    database.import_cmd,
    webhooks.webhooks,
    events.events,
    deliveries.deliveries,
    event_types.event_types_group,
    tenants.tenants,
):
    main.add_command(_command)
event_types.event_types_group.add_command(database.event_types_import)
