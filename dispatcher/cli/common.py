"""What the commands share: their settings (one clear line for an invalid configuration), the
database (the configured one, or an embedded Postgres for the duration), ``--config``, and the
admin token as the server has it."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from dispatcher import logs
from dispatcher.auth import admin_token_path, stored_admin_token
from dispatcher.config import ConfigError, Settings, load_settings
from dispatcher.embedded import EmbeddedPostgres


def settings_for(
    config: Path | None, *, logs_to_stderr: bool = False, **overrides: object
) -> Settings:
    """The settings (a TOML file, the environment, then ``overrides``), logging configured;
    an invalid configuration exits with status 2 and one line naming the variable."""
    try:
        settings = load_settings(config_file=config, overrides=overrides)
    except ConfigError as exc:
        click.echo(f"dispatcher: invalid configuration: {exc}", err=True)
        sys.exit(2)
    if logs_to_stderr:
        # Commands whose stdout is data (export) keep log lines out of it.
        with contextlib.redirect_stdout(sys.stderr):
            logs.configure(settings.log_format)
    else:
        logs.configure(settings.log_format)
    return settings


@contextlib.contextmanager
def database(settings: Settings, *, supervise: bool = False) -> Iterator[str]:
    """The DSN to use: the configured one, or an embedded Postgres started for the duration
    (with ``supervise``, started again whenever it dies, for as long as the block runs)."""
    if settings.database_url:
        yield settings.database_url
        return
    embedded = EmbeddedPostgres(settings.data_dir)
    try:
        dsn = embedded.start()
        if supervise:
            embedded.supervise()
        yield dsn
    finally:
        embedded.stop()


config_option = click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="TOML file mirroring the DISPATCHER_* variables.",
)


def find_token(settings: Settings) -> str | None:
    """The admin token the server uses, if it can be found here; exits when unreadable."""
    try:
        return stored_admin_token(settings.admin_token, settings.data_dir)
    except OSError as exc:
        click.echo(
            f"dispatcher: cannot read {admin_token_path(settings.data_dir)}: {exc}", err=True
        )
        sys.exit(2)
