"""Commands that work on the database directly, without a running server: ``migrate``,
``token``, ``export``, ``import`` and ``event-types import``."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import BinaryIO, NoReturn

import asyncpg
import click

from dispatcher import migrate, openapi_import, transfer
from dispatcher.auth import admin_token_path
from dispatcher.cli.common import config_option, database, find_token, settings_for
from dispatcher.db import DB_UNAVAILABLE


@click.command("migrate")
@config_option
def migrate_cmd(config: Path | None) -> None:
    """Apply pending migrations and exit."""
    settings = settings_for(config)
    with database(settings) as dsn:
        applied = asyncio.run(migrate.migrate_dsn(dsn))
    click.echo(f"applied {len(applied)} migration(s); schema at version {migrate.latest_version()}")


@click.command()
@config_option
def token(config: Path | None) -> None:
    """Print the admin token (the configured one, or the data dir's); never creates one."""
    settings = settings_for(config)
    found = find_token(settings)
    if found is None:
        # A token made up here would not be the running server's: say where to find that one.
        click.echo(
            "dispatcher: no admin token: DISPATCHER_ADMIN_TOKEN is not set and there is none in "
            f"{admin_token_path(settings.data_dir)}. Start the server first (`make run` creates "
            "one there), or set DISPATCHER_DATA_DIR to the server's data dir, or set "
            "DISPATCHER_ADMIN_TOKEN.",
            err=True,
        )
        sys.exit(2)
    click.echo(found)


# Why export/import can fail: the file or schema (TransferError), or the database.
TRANSFER_TROUBLE: tuple[type[BaseException], ...] = (
    transfer.TransferError,
    *DB_UNAVAILABLE,
    asyncpg.PostgresError,
)


def _transfer_failed(exc: BaseException) -> NoReturn:
    click.echo(f"dispatcher: {exc}", err=True)
    for problem in getattr(exc, "problems", []):
        click.echo(f"  {problem}", err=True)
    sys.exit(1)


@click.command("export")
@config_option
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write to this file (created with mode 0600: it holds secrets) instead of stdout.",
)
def export_cmd(config: Path | None, output: Path | None) -> None:
    """Write every tenant, webhook (with its current secret) and event type as JSON."""
    settings = settings_for(config, logs_to_stderr=True)
    with database(settings) as dsn:
        try:
            document = asyncio.run(transfer.export_dsn(dsn))
        except TRANSFER_TROUBLE as exc:
            _transfer_failed(exc)
    data = transfer.dumps(document)
    if output is None:
        click.echo(data, nl=False)
        return
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(data)
    click.echo(
        f"exported {len(document['tenants'])} tenant(s), {len(document['webhooks'])} "
        f"webhook(s) and {len(document['event_types'])} event type(s) to {output}",
        err=True,
    )


# Imports with at least this many records show a progress bar.
PROGRESS_MIN_RECORDS = 100


@click.command("import")
@config_option
@click.argument("file", type=click.File("rb"))
def import_cmd(config: Path | None, file: BinaryIO) -> None:
    """Create or update tenants, webhooks and event types from FILE (an export; - for stdin).

    Idempotent: tenants and webhooks are matched by id and event types by name, and a record
    equal to what is stored changes nothing. Nothing is deleted. The whole file is validated
    first and written in one transaction: if any record is invalid, nothing is imported.
    """
    settings = settings_for(config, logs_to_stderr=True)
    try:
        document = transfer.parse(file.read())
    except transfer.TransferError as exc:
        _transfer_failed(exc)
    grace = settings.secret_grace_seconds
    with database(settings) as dsn:
        try:
            if len(document) >= PROGRESS_MIN_RECORDS:
                with click.progressbar(
                    length=len(document),
                    label="Importing",
                    file=sys.stderr,
                ) as bar:
                    result = asyncio.run(
                        transfer.import_dsn(dsn, document, grace_seconds=grace, progress=bar.update)
                    )
            else:
                result = asyncio.run(transfer.import_dsn(dsn, document, grace_seconds=grace))
        except TRANSFER_TROUBLE as exc:
            _transfer_failed(exc)
    click.echo(f"tenants: {result.tenants}")
    click.echo(f"webhooks: {result.webhooks}")
    click.echo(f"event types: {result.event_types}")


@click.command("import")
@config_option
@click.argument("file", type=click.File("rb"))
def event_types_import(config: Path | None, file: BinaryIO) -> None:
    """Create or update event types from FILE, an OpenAPI 3.1 document (JSON or YAML; - for
    stdin): each entry of its ``webhooks`` is a type (name, description, schema, examples).

    The request body's schema is the data's, or an envelope whose ``data`` property is (as
    GET /v1/catalogue writes it). Like ``dispatcher import``, directly on the database:
    idempotent (types matched by name; equal ones change nothing, stored ones keep their
    enabled flag), nothing deleted, all or nothing.
    """
    settings = settings_for(config, logs_to_stderr=True)
    try:
        document = openapi_import.parse(file.read())
    except transfer.TransferError as exc:
        _transfer_failed(exc)
    with database(settings) as dsn:
        try:
            result = asyncio.run(
                transfer.import_dsn(dsn, document, grace_seconds=settings.secret_grace_seconds)
            )
        except TRANSFER_TROUBLE as exc:
            _transfer_failed(exc)
    click.echo(f"event types: {result.event_types}")
