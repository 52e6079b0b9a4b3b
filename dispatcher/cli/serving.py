"""``dispatcher serve``: migrate, then serve in this process, or in ``DISPATCHER_WORKERS``
processes sharing the port under a supervisor that restarts the ones that die."""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import uvloop
from aiohttp import web

from dispatcher import __version__, logs, migrate
from dispatcher.app import create_app
from dispatcher.auth import Tokens, load_admin_token
from dispatcher.cli.common import config_option, database, settings_for
from dispatcher.config import Settings


@click.command()
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
    settings = settings_for(config, host=host, port=port, workers=workers)
    if worker_child:
        # A child of a multi-process serve: the parent migrated and owns the database.
        assert settings.database_url and settings.admin_token
        _run_server(settings, settings.database_url, settings.admin_token, reuse_port=True)
        return
    # This process owns the embedded server (workers only get its DSN), so it supervises it.
    with database(settings, supervise=True) as dsn:
        loop = uvloop.new_event_loop()
        loop.run_until_complete(migrate.migrate_dsn(dsn))
        logs.flush()  # with several workers this loop closes and the supervisor logs no more
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
    tune_gc()
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
            # aiohttp's keep-alive timer runs from the moment a connection opens (and again
            # from each answer) until a request's headers are complete: one deadline closes
            # connections that never finish their headers and idle keep-alive ones alike.
            keepalive_timeout=settings.header_timeout_seconds,
        )
    except OSError as exc:
        base = f"http://{settings.host}:{settings.port}"
        click.echo(f"dispatcher: cannot listen on {base}: {exc.strerror or exc}", err=True)
        sys.exit(1)


# Young-generation size before the cyclic GC runs, and how rarely older generations follow.
GC_THRESHOLDS = (50_000, 20, 10)


def tune_gc() -> None:
    """Make the cyclic garbage collector cheap for a server holding thousands of connections.

    With CPython's defaults (700, 10, 10) a burst of new connections triggers full
    collections over the whole, growing heap: in this machine's 10,000-connection benchmark
    they took 2.2 of 4.8 CPU seconds. Objects alive after start-up (modules, the app) are
    frozen out of collection, and the young generation is allowed to grow larger: most
    garbage here is freed by reference counting anyway, and cycles are still collected.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


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
