"""The ``dispatcher`` command line."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
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
@click.option(
    "--workers", type=int, default=None, help="Processes sharing the port (DISPATCHER_WORKERS)."
)
@click.option("--worker-child", is_flag=True, hidden=True)
def serve(
    config: Path | None,
    host: str | None,
    port: int | None,
    workers: int | None,
    worker_child: bool,
) -> None:
    """Apply pending migrations, then serve the API, ingestion and the admin console."""
    settings = _settings(config, host=host, port=port, workers=workers)
    if worker_child:
        # A child of a multi-process serve: the parent migrated and owns the database.
        assert settings.database_url and settings.admin_token
        _run_server(settings, settings.database_url, settings.admin_token, reuse_port=True)
        return
    with database(settings) as dsn:
        loop = uvloop.new_event_loop()
        loop.run_until_complete(migrate.migrate_dsn(dsn))
        admin = load_admin_token(settings.admin_token, settings.data_dir)
        base = f"http://{settings.host}:{settings.port}"
        click.echo(
            f"Dispatcher {__version__} serving on {base}"
            + (f" with {settings.workers} workers" if settings.workers > 1 else "")
            + f"\n  admin console: {base}/admin\n  admin token:   "
            # A token the operator configured is theirs already: keep it out of logs.
            + ("(from DISPATCHER_ADMIN_TOKEN)" if settings.admin_token else admin),
            err=True,
        )
        if settings.workers > 1:
            loop.close()
            supervise(settings, dsn, admin)
        else:
            _run_server(settings, dsn, admin, loop=loop)


def _run_server(
    settings: Settings,
    dsn: str,
    admin: str,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    reuse_port: bool = False,
) -> None:
    app = create_app(settings, dsn, Tokens(admin, settings.publish_tokens))
    try:
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            access_log=None,
            print=None,
            loop=loop or uvloop.new_event_loop(),
            shutdown_timeout=10,
            reuse_port=reuse_port,
        )
    except OSError as exc:
        base = f"http://{settings.host}:{settings.port}"
        click.echo(f"dispatcher: cannot listen on {base}: {exc.strerror or exc}", err=True)
        sys.exit(1)


def supervise(settings: Settings, dsn: str, admin: str) -> None:
    """Run ``settings.workers`` server processes on one port (SO_REUSEPORT) until signalled.

    A worker that dies is restarted; SIGINT/SIGTERM are passed on and waited for.
    """
    env = {
        **os.environ,
        "DISPATCHER_DATABASE_URL": dsn,
        "DISPATCHER_ADMIN_TOKEN": admin,
        "DISPATCHER_WORKERS": "1",
        "DISPATCHER_HOST": settings.host,
        "DISPATCHER_PORT": str(settings.port),
        "DISPATCHER_LOG_FORMAT": settings.log_format,
    }
    # Workers write their metrics here and each one's /metrics aggregates all of them.
    metrics_dir = settings.data_dir.resolve() / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    cmd = [sys.executable, "-m", "dispatcher", "serve", "--worker-child"]
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    children = [subprocess.Popen(cmd, env=env) for _ in range(settings.workers)]
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping:
        for i, child in enumerate(children):
            if child.poll() is not None and not stopping:
                from prometheus_client import multiprocess

                multiprocess.mark_process_dead(child.pid, str(metrics_dir))  # type: ignore[no-untyped-call]
                click.echo(
                    f"dispatcher: worker {child.pid} exited ({child.returncode}); restarting",
                    err=True,
                )
                time.sleep(1)
                children[i] = subprocess.Popen(cmd, env=env)
        time.sleep(0.2)
    deadline = time.monotonic() + settings.delivery_timeout_seconds + 15
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()


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
