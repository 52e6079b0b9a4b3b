"""The ``dispatcher`` command line."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import uvloop
from aiohttp import web

from dispatcher import __version__, logs, migrate
from dispatcher.app import create_app
from dispatcher.auth import Tokens, load_admin_token
from dispatcher.config import ConfigError, Settings, load_settings
from dispatcher.embedded import EmbeddedPostgres


def _settings(config: Path | None, **overrides: object) -> Settings:
    try:
        settings = load_settings(config_file=config, overrides=overrides)
    except ConfigError as exc:
        click.echo(f"dispatcher: invalid configuration: {exc}", err=True)
        sys.exit(2)
    logs.configure(settings.log_format)
    return settings


@contextlib.contextmanager
def database(settings: Settings) -> Iterator[str]:
    """The DSN to use: the configured one, or an embedded Postgres started for the duration."""
    if settings.database_url:
        yield settings.database_url
        return
    embedded = EmbeddedPostgres(settings.data_dir)
    try:
        yield embedded.start()
    finally:
        embedded.stop()


config_option = click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="TOML file mirroring the DISPATCHER_* variables.",
)


@click.group()
@click.version_option(__version__, prog_name="dispatcher")
def main() -> None:
    """Dispatcher: a self-hosted webhook dispatcher on Postgres."""


@main.command()
@config_option
@click.option("--host", default=None, help="Listen address (DISPATCHER_HOST).")
@click.option("--port", type=int, default=None, help="Listen port (DISPATCHER_PORT).")
def serve(config: Path | None, host: str | None, port: int | None) -> None:
    """Apply pending migrations, then serve the API, ingestion and the admin console."""
    settings = _settings(config, host=host, port=port)
    with database(settings) as dsn:
        loop = uvloop.new_event_loop()
        loop.run_until_complete(migrate.migrate_dsn(dsn))
        admin = load_admin_token(settings.admin_token, settings.data_dir)
        app = create_app(settings, dsn, Tokens(admin, settings.publish_tokens))
        base = f"http://{settings.host}:{settings.port}"
        click.echo(
            f"Dispatcher {__version__} serving on {base}\n"
            f"  admin console: {base}/admin\n"
            f"  admin token:   {admin}",
            err=True,
        )
        try:
            web.run_app(
                app,
                host=settings.host,
                port=settings.port,
                access_log=None,
                print=None,
                loop=loop,
                shutdown_timeout=10,
            )
        except OSError as exc:
            click.echo(f"dispatcher: cannot listen on {base}: {exc.strerror or exc}", err=True)
            sys.exit(1)


@main.command("migrate")
@config_option
def migrate_cmd(config: Path | None) -> None:
    """Apply pending migrations and exit."""
    settings = _settings(config)
    with database(settings) as dsn:
        applied = asyncio.run(migrate.migrate_dsn(dsn))
    click.echo(f"applied {len(applied)} migration(s); schema at version {migrate.latest_version()}")


@main.command()
@config_option
def token(config: Path | None) -> None:
    """Print the admin token (the configured one, or the data dir's)."""
    settings = _settings(config)
    click.echo(load_admin_token(settings.admin_token, settings.data_dir))


if __name__ == "__main__":
    main()
