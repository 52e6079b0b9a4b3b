"""The ``dispatcher`` command line."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import inspect
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Literal, NoReturn, TypeVar, cast

import asyncpg
import click
import orjson
import uvloop
from aiohttp import web

from dispatcher import __version__, logs, migrate, openapi_import, transfer
from dispatcher.app import create_app
from dispatcher.auth import Tokens, admin_token_path, load_admin_token, stored_admin_token
from dispatcher.client import (
    DEFAULT_URL,
    Client,
    ConnectionFailed,
    Delivery,
    DeliveryStatus,
    DispatcherError,
    Event,
    EventAccepted,
    EventType,
    Page,
    Webhook,
    WebhookChanges,
    WebhookOptions,
)
from dispatcher.config import ConfigError, Settings, load_settings
from dispatcher.db import DB_UNAVAILABLE
from dispatcher.embedded import EmbeddedPostgres

T = TypeVar("T")


def _settings(
    config: Path | None, *, logs_to_stderr: bool = False, **overrides: object
) -> Settings:
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


# Groups made with @group.group() are Groups too.
Group.group_class = type


@click.group(cls=Group)
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
    """Print the admin token (the configured one, or the data dir's); never creates one."""
    settings = _settings(config)
    found = _stored_token(settings)
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


# --------------------------------------------------------------------------------------------
# export / import: directly on the database, like migrate


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


@main.command("export")
@config_option
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write to this file (created with mode 0600: it holds secrets) instead of stdout.",
)
def export_cmd(config: Path | None, output: Path | None) -> None:
    """Write every webhook (with its current secret) and event type as JSON."""
    settings = _settings(config, logs_to_stderr=True)
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
        f"exported {len(document['webhooks'])} webhook(s) and "
        f"{len(document['event_types'])} event type(s) to {output}",
        err=True,
    )


# Imports with at least this many records show a progress bar.
PROGRESS_MIN_RECORDS = 100


@main.command("import")
@config_option
@click.argument("file", type=click.File("rb"))
def import_cmd(config: Path | None, file: BinaryIO) -> None:
    """Create or update webhooks and event types from FILE (an export; - for stdin).

    Idempotent: webhooks are matched by id and event types by name, and a record equal to
    what is stored changes nothing. Nothing is deleted. The whole file is validated first and
    written in one transaction: if any record is invalid, nothing is imported.
    """
    settings = _settings(config, logs_to_stderr=True)
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
    click.echo(f"webhooks: {result.webhooks}")
    click.echo(f"event types: {result.event_types}")


# --------------------------------------------------------------------------------------------
# Commands that talk to a running server over its HTTP API


@dataclass(frozen=True)
class Api:
    """What every API command needs: where the server is, the token, the output style."""

    url: str
    token: str | None
    config: Path | None
    json: bool

    def client(self) -> Client:
        """A client for the server (the token resolved as documented on ``--token``)."""
        return Client(self.url, self.token or _admin_token(self.config), retries=2, backoff=0.2)


def _stored_token(settings: Settings) -> str | None:
    """The admin token the server uses, if it can be found here; exits when unreadable."""
    try:
        return stored_admin_token(settings.admin_token, settings.data_dir)
    except OSError as exc:
        click.echo(
            f"dispatcher: cannot read {admin_token_path(settings.data_dir)}: {exc}", err=True
        )
        sys.exit(2)


def _admin_token(config: Path | None) -> str:
    """The admin token from the configuration or the data dir; never generates one."""
    try:
        settings = load_settings(config_file=config)
    except ConfigError as exc:
        click.echo(f"dispatcher: invalid configuration: {exc}", err=True)
        sys.exit(2)
    found = _stored_token(settings)
    if found:
        return found
    click.echo(
        "dispatcher: no token: pass --token, or set DISPATCHER_TOKEN or DISPATCHER_ADMIN_TOKEN, "
        "or DISPATCHER_DATA_DIR to the server's data dir "
        f"(there is none in {admin_token_path(settings.data_dir)})",
        err=True,
    )
    sys.exit(2)


F = TypeVar("F", bound=Callable[..., Any])


def api_options(func: F) -> F:
    """Add ``--url``, ``--token``, ``--config`` and ``--json``, passed on as ``api: Api``."""

    @click.option(
        "--url",
        envvar="DISPATCHER_URL",
        default=DEFAULT_URL,
        show_default=True,
        help="The server's base URL (DISPATCHER_URL).",
    )
    @click.option(
        "--token",
        envvar="DISPATCHER_TOKEN",
        default=None,
        help="Bearer token (DISPATCHER_TOKEN); default: the admin token, as `dispatcher token`.",
    )
    @config_option
    @click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
    @functools.wraps(func)
    def wrapper(
        url: str, token: str | None, config: Path | None, as_json: bool, **kwargs: Any
    ) -> Any:
        api = Api(url, token, config, as_json)
        try:
            with api.client() as client:
                return func(api, client, **kwargs)
        except ConnectionFailed as exc:
            click.echo(f"dispatcher: cannot reach {url}: {exc.detail}", err=True)
            sys.exit(1)
        except DispatcherError as exc:
            if as_json:
                click.echo(orjson.dumps(exc.problem).decode(), err=True)
            else:
                click.echo(f"dispatcher: {exc}", err=True)
            sys.exit(1)

    return cast(F, wrapper)


def _print_json(value: Any) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def _when(value: str | None) -> str:
    """An API timestamp, shortened to seconds (UTC)."""
    if not value:
        return "-"
    return value[:19].replace("T", " ")


def _cell(value: object, width: int = 60) -> str:
    text = "-" if value is None or value == "" else str(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    for line in [list(headers), *cells]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    if not rows:
        click.echo("(none)")


def _fields(pairs: Sequence[tuple[str, object]]) -> None:
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        text = "-" if value is None or value == "" else str(value)
        click.echo(f"{key.ljust(width)}  {text}")


def _all_pages(fetch: Callable[[str | None], Page[T]], cursor: str | None, every: bool) -> Page[T]:
    page = fetch(cursor)
    if not every:
        return page
    data = list(page["data"])
    while page["next_cursor"]:
        page = fetch(page["next_cursor"])
        data.extend(page["data"])
    return {"data": data, "next_cursor": None}


def _more(page: Page[Any]) -> None:
    if page["next_cursor"]:
        click.echo(f"(more: --cursor {page['next_cursor']}, or --all)", err=True)


def _state(webhook: Webhook) -> str:
    if webhook["enabled"]:
        return "enabled"
    return f"disabled ({webhook['disabled_reason'] or 'manual'})"


def _show_webhook(webhook: Webhook) -> None:
    pairs: list[tuple[str, object]] = [
        ("id", webhook["id"]),
        ("name", webhook["name"]),
        ("url", webhook["url"]),
        ("event types", ", ".join(webhook["event_types"])),
        ("status", _state(webhook)),
    ]
    if not webhook["enabled"]:
        pairs.append(("disabled at", _when(webhook["disabled_at"])))
    pairs += [
        ("description", webhook["description"]),
        ("headers", ", ".join(f"{k}: {v}" for k, v in webhook["headers"].items())),
        ("metadata", orjson.dumps(webhook["metadata"]).decode() if webhook["metadata"] else ""),
        ("include payload", "yes" if webhook["include_payload"] else "no"),
        (
            "max retries",
            webhook["max_retries"] if webhook["max_retries"] is not None else "default",
        ),
        ("timeout", f"{webhook['timeout_seconds']} s" if webhook["timeout_seconds"] else "default"),
        (
            "rate limit",
            f"{webhook['rate_limit_per_second']}/s"
            if webhook["rate_limit_per_second"]
            else "default",
        ),
        ("max in flight", webhook["max_in_flight"] or "default"),
        ("created", _when(webhook["created_at"])),
        ("updated", _when(webhook["updated_at"])),
    ]
    if "secret" in webhook:
        pairs.append(("secret", webhook["secret"]))
    _fields(pairs)


@main.group()
def webhooks() -> None:
    """Manage webhooks on a running server."""


@webhooks.command("list")
@click.option("--enabled/--disabled", default=None, help="Only enabled or only disabled ones.")
@click.option("--event-type", default=None, help="Only those receiving this event type.")
@click.option("--limit", type=click.IntRange(1, 500), default=None, help="Page size.")
@click.option("--cursor", default=None, help="Continue after a previous page.")
@click.option("--all", "every", is_flag=True, help="Follow every page.")
@api_options
def webhooks_list(
    api: Api,
    client: Client,
    enabled: bool | None,
    event_type: str | None,
    limit: int | None,
    cursor: str | None,
    every: bool,
) -> None:
    """List webhooks, newest first."""
    page = _all_pages(
        lambda c: client.list_webhooks(
            enabled=enabled, event_type=event_type, limit=limit, cursor=c
        ),
        cursor,
        every,
    )
    if api.json:
        _print_json(page)
        return
    _table(
        ["ID", "NAME", "URL", "EVENT TYPES", "STATUS", "CREATED"],
        [
            [
                w["id"],
                w["name"],
                w["url"],
                ",".join(w["event_types"]),
                _state(w),
                _when(w["created_at"]),
            ]
            for w in page["data"]
        ],
    )
    _more(page)


def _header(value: str) -> tuple[str, str]:
    for sep in (":", "="):
        name, found, val = value.partition(sep)
        if found and name.strip():
            return name.strip(), val.strip()
    raise click.BadParameter(f"{value!r}: expected 'Name: value' or Name=value")


def _json_object(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise click.BadParameter("must be a JSON object")
    return parsed


@webhooks.command("create")
@click.argument("name")
@click.argument("target", metavar="URL")
@click.option(
    "--event-type",
    "-e",
    "event_types",
    multiple=True,
    required=True,
    help="An event type or pattern (order.*, *); repeat for several.",
)
@click.option("--description", default=None)
@click.option("--header", "headers", multiple=True, help="'Name: value' sent with each request.")
@click.option("--metadata", default=None, callback=_json_object, help="A JSON object.")
@click.option("--secret", default=None, help="whsec_... (default: generated).")
@click.option("--disabled", is_flag=True, help="Create it disabled.")
@click.option("--no-payload", is_flag=True, help="Send the envelope without data.")
@click.option("--max-retries", type=int, default=None)
@click.option("--timeout", "timeout_seconds", type=float, default=None, help="Seconds.")
@click.option("--rate-limit", type=float, default=None, help="Requests per second.")
@click.option("--max-in-flight", type=int, default=None)
@api_options
def webhooks_create(
    api: Api,
    client: Client,
    name: str,
    target: str,
    event_types: tuple[str, ...],
    description: str | None,
    headers: tuple[str, ...],
    metadata: dict[str, Any] | None,
    secret: str | None,
    disabled: bool,
    no_payload: bool,
    max_retries: int | None,
    timeout_seconds: float | None,
    rate_limit: float | None,
    max_in_flight: int | None,
) -> None:
    """Register a webhook NAME delivering to URL; prints it with its signing secret.

    \b
    Example:
      dispatcher webhooks create billing https://billing.example.com/hooks -e 'order.*'
    """
    options: WebhookOptions = {}
    if description is not None:
        options["description"] = description
    if headers:
        options["headers"] = dict(_header(h) for h in headers)
    if metadata is not None:
        options["metadata"] = metadata
    if secret is not None:
        options["secret"] = secret
    if disabled:
        options["enabled"] = False
    if no_payload:
        options["include_payload"] = False
    if max_retries is not None:
        options["max_retries"] = max_retries
    if timeout_seconds is not None:
        options["timeout_seconds"] = timeout_seconds
    if rate_limit is not None:
        options["rate_limit_per_second"] = rate_limit
    if max_in_flight is not None:
        options["max_in_flight"] = max_in_flight
    webhook = client.create_webhook(name, target, list(event_types), **options)
    if api.json:
        _print_json(webhook)
    else:
        _show_webhook(webhook)


@webhooks.command("show")
@click.argument("webhook_id")
@click.option("--secret", "with_secret", is_flag=True, help="Include the signing secret.")
@api_options
def webhooks_show(api: Api, client: Client, webhook_id: str, with_secret: bool) -> None:
    """Show one webhook."""
    webhook = client.get_webhook(webhook_id)
    if with_secret:
        webhook["secret"] = client.get_secret(webhook_id)
    if api.json:
        _print_json(webhook)
    else:
        _show_webhook(webhook)


def _switch(api: Api, webhook: Webhook) -> None:
    if api.json:
        _print_json(webhook)
    else:
        click.echo(f"{webhook['id']}: {_state(webhook)}")


@webhooks.command("disable")
@click.argument("webhook_id")
@api_options
def webhooks_disable(api: Api, client: Client, webhook_id: str) -> None:
    """Stop sending to a webhook; its pending deliveries are held."""
    _switch(api, client.disable_webhook(webhook_id))


@webhooks.command("enable")
@click.argument("webhook_id")
@api_options
def webhooks_enable(api: Api, client: Client, webhook_id: str) -> None:
    """Resume sending to a webhook, held deliveries included."""
    _switch(api, client.enable_webhook(webhook_id))


@webhooks.command("rotate-secret")
@click.argument("webhook_id")
@api_options
def webhooks_rotate_secret(api: Api, client: Client, webhook_id: str) -> None:
    """Make a new signing secret (the old one signs during the grace period); prints it."""
    secret = client.rotate_secret(webhook_id)
    if api.json:
        _print_json({"id": webhook_id, "secret": secret})
    else:
        click.echo(secret)


@webhooks.command("delete")
@click.argument("webhook_id")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@api_options
def webhooks_delete(api: Api, client: Client, webhook_id: str, yes: bool) -> None:
    """Delete a webhook; its unfinished deliveries are cancelled."""
    if not yes:
        click.confirm(f"Delete webhook {webhook_id} and cancel its pending deliveries?", abort=True)
    client.delete_webhook(webhook_id)
    if api.json:
        _print_json({"id": webhook_id, "deleted": True})
    else:
        click.echo(f"{webhook_id}: deleted")


class Reset:
    """``default`` given for a per-webhook override: back to the global setting (null)."""

    def __repr__(self) -> str:
        return "default"


RESET = Reset()


def overrides(kind: type[int] | type[float]) -> Callable[..., int | float | Reset | None]:
    """An option callback: a number of ``kind``, or ``default`` for the global setting."""

    def convert(
        _ctx: click.Context, _param: click.Parameter, value: str | None
    ) -> int | float | Reset | None:
        if value is None:
            return None
        if value.strip().lower() == "default":
            return RESET
        try:
            return kind(value)
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a number or 'default'") from None

    return convert


def _override(value: int | float | Reset) -> int | float | None:
    return None if isinstance(value, Reset) else value


@webhooks.command("update")
@click.argument("webhook_id")
@click.option("--name", default=None, help="A new name.")
@click.option("--target", default=None, metavar="URL", help="Deliver to this URL instead.")
@click.option(
    "--event-type",
    "-e",
    "event_types",
    multiple=True,
    help="Replace the event types (exact or patterns); repeat for several.",
)
@click.option("--description", default=None)
@click.option(
    "--header", "headers", multiple=True, help="Replace the extra headers ('Name: value')."
)
@click.option("--no-headers", is_flag=True, help="Remove every extra header.")
@click.option("--metadata", default=None, callback=_json_object, help="Replace it (JSON object).")
@click.option("--payload/--no-payload", default=None, help="Send the data, or the envelope only.")
@click.option("--max-retries", metavar="N|default", callback=overrides(int))
@click.option("--timeout", "timeout_seconds", metavar="SECONDS|default", callback=overrides(float))
@click.option("--rate-limit", metavar="PER_SECOND|default", callback=overrides(float))
@click.option("--max-in-flight", metavar="N|default", callback=overrides(int))
@api_options
def webhooks_update(
    api: Api,
    client: Client,
    webhook_id: str,
    name: str | None,
    target: str | None,
    event_types: tuple[str, ...],
    description: str | None,
    headers: tuple[str, ...],
    no_headers: bool,
    metadata: dict[str, Any] | None,
    payload: bool | None,
    max_retries: int | Reset | None,
    timeout_seconds: float | Reset | None,
    rate_limit: float | Reset | None,
    max_in_flight: int | Reset | None,
) -> None:
    """Change a webhook; what is not given stays as it is.

    The overrides (--max-retries, --timeout, --rate-limit, --max-in-flight) take a number, or
    `default` for the global setting again.

    \b
    Example:
      dispatcher webhooks update wh_01J... --target https://new.example.com/hooks --timeout 5
    """
    if no_headers and headers:
        raise click.UsageError("--header and --no-headers contradict each other")
    changes: WebhookChanges = {}
    if name is not None:
        changes["name"] = name
    if target is not None:
        changes["url"] = target
    if event_types:
        changes["event_types"] = list(event_types)
    if description is not None:
        changes["description"] = description
    if headers or no_headers:
        changes["headers"] = dict(_header(h) for h in headers)
    if metadata is not None:
        changes["metadata"] = metadata
    if payload is not None:
        changes["include_payload"] = payload
    if max_retries is not None:
        changes["max_retries"] = cast(int | None, _override(max_retries))
    if timeout_seconds is not None:
        changes["timeout_seconds"] = _override(timeout_seconds)
    if rate_limit is not None:
        changes["rate_limit_per_second"] = _override(rate_limit)
    if max_in_flight is not None:
        changes["max_in_flight"] = cast(int | None, _override(max_in_flight))
    if not changes:
        raise click.UsageError("nothing to change: give at least one option (see --help)")
    webhook = client.update_webhook(webhook_id, **changes)
    if api.json:
        _print_json(webhook)
    else:
        _show_webhook(webhook)


@webhooks.command("ping")
@click.argument("webhook_id")
@api_options
def webhooks_ping(api: Api, client: Client, webhook_id: str) -> None:
    """Send a webhook.ping event to this webhook only."""
    _accepted(api, client.ping(webhook_id))


@webhooks.command("test")
@click.argument("webhook_id")
@click.argument("event_type", metavar="TYPE")
@click.argument("data", metavar="[JSON]", required=False)
@api_options
def webhooks_test(
    api: Api, client: Client, webhook_id: str, event_type: str, data: str | None
) -> None:
    """Send one event of TYPE to this webhook only, with JSON as its data (- reads stdin).

    Without JSON, the event type's first example is sent.
    """
    if data is None:
        answer = client.send_test(webhook_id, event_type)
    else:
        answer = client.send_test(webhook_id, event_type, _json_argument(data))
    _accepted(api, answer)


# "30m", "2h", "7d": that long ago.
_AGO = re.compile(r"(\d+)\s*([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def since_time(value: str) -> str:
    """``--since``: an RFC 3339 time as given, or a duration (30m, 2h, 7d) before now."""
    ago = _AGO.fullmatch(value.strip())
    if ago is None:
        return value
    delta = timedelta(**{_UNITS[ago[2]]: int(ago[1])})
    return (datetime.now(UTC) - delta).isoformat()


@webhooks.command("replay")
@click.argument("webhook_id")
@click.option(
    "--since",
    required=True,
    help="An RFC 3339 time, or how long ago: 30m, 2h, 7d.",
)
@click.option(
    "--status",
    type=click.Choice(["failed", "cancelled", "success", "missing"]),
    default="failed",
    show_default=True,
    help="Re-queue deliveries with this status; missing: send the events it never got.",
)
@api_options
def webhooks_replay(
    api: Api,
    client: Client,
    webhook_id: str,
    since: str,
    status: Literal["failed", "cancelled", "success", "missing"],
) -> None:
    """Send a webhook's deliveries again: the failed ones (or --status) since a time.

    With --status missing, deliveries are created for the events since then that match the
    webhook now but were never delivered to it (sent while it was disabled, or before it
    subscribed); replaying the same window again creates nothing.
    """
    count = client.replay(webhook_id, since_time(since), status)
    if api.json:
        _print_json({"count": count})
        return
    what = "delivery" if count == 1 else "deliveries"
    done = "created" if status == "missing" else "re-queued"
    click.echo(f"{webhook_id}: {count} {what} {done}")


@main.group()
def events() -> None:
    """Publish events to a running server, and look at the stored ones."""


def _json_argument(raw: str) -> Any:
    """A JSON command-line argument (``-``: read from stdin)."""
    text = sys.stdin.read() if raw == "-" else raw
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="JSON") from None


def _accepted(api: Api, answer: EventAccepted) -> None:
    if api.json:
        _print_json(answer)
        return
    note = " (duplicate: already accepted, nothing created)" if answer["duplicate"] else ""
    n = answer["deliveries"]
    click.echo(
        f"{answer['id']}: {answer['type']}, {n} {'delivery' if n == 1 else 'deliveries'}{note}"
    )


@events.command("send")
@click.argument("event_type", metavar="TYPE")
@click.argument("data", metavar="JSON")
@click.option("--id", "event_id", default=None, help="Idempotency key (default: generated).")
@click.option("--occurred-at", default=None, help="RFC 3339 time (default: now).")
@api_options
def events_send(
    api: Api,
    client: Client,
    event_type: str,
    data: str,
    event_id: str | None,
    occurred_at: str | None,
) -> None:
    """Publish one event of TYPE with JSON as its data (- reads it from stdin)."""
    payload = _json_argument(data)
    _accepted(api, client.publish(event_type, payload, id=event_id, occurred_at=occurred_at))


def _by_status(counts: dict[str, int]) -> str:
    """An event's deliveries by status, e.g. ``2 success, 1 retrying``."""
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none"


@events.command("list")
@click.option("--type", "event_type", default=None, help="Only events of this type.")
@click.option("--limit", type=click.IntRange(1, 500), default=None, help="Page size.")
@click.option("--cursor", default=None, help="Continue after a previous page.")
@click.option("--all", "every", is_flag=True, help="Follow every page.")
@api_options
def events_list(
    api: Api,
    client: Client,
    event_type: str | None,
    limit: int | None,
    cursor: str | None,
    every: bool,
) -> None:
    """List stored events, newest first, with their deliveries by status."""
    page = _all_pages(
        lambda c: client.list_events(type=event_type, limit=limit, cursor=c), cursor, every
    )
    if api.json:
        _print_json(page)
        return
    _table(
        ["ID", "TYPE", "DELIVERIES", "OCCURRED", "CREATED"],
        [
            [
                e["id"],
                e["type"],
                _by_status(e["deliveries"]),
                _when(e["occurred_at"]),
                _when(e["created_at"]),
            ]
            for e in page["data"]
        ],
    )
    _more(page)


@events.command("show")
@click.argument("event_id")
@api_options
def events_show(api: Api, client: Client, event_id: str) -> None:
    """Show one event: its data and its deliveries."""
    event: Event = client.get_event(event_id)
    if api.json:
        _print_json(event)
        return
    _fields(
        [
            ("id", event["id"]),
            ("type", event["type"]),
            ("occurred", _when(event["occurred_at"])),
            ("created", _when(event["created_at"])),
            ("deliveries", _by_status(event["deliveries"])),
        ]
    )
    click.echo("data:")
    click.echo(orjson.dumps(event["data"], option=orjson.OPT_INDENT_2).decode())
    page = client.list_deliveries(event_id=event_id, limit=500)
    click.echo()
    _table(DELIVERY_COLUMNS, [_delivery_row(d) for d in page["data"]])
    _more(page)


@main.group()
def deliveries() -> None:
    """Inspect, retry and cancel deliveries on a running server."""


def _delivery_row(d: Delivery) -> list[object]:
    return [
        d["id"],
        d["status"],
        d["event_type"],
        d["event_id"],
        d["webhook_id"],
        d["attempt_count"],
        d["last_status_code"],
        _when(d["created_at"]),
        _when(d["next_attempt_at"]),
    ]


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
    page = _all_pages(
        lambda c: client.list_deliveries(
            webhook_id=webhook_id, event_id=event_id, status=status, limit=limit, cursor=c
        ),
        cursor,
        every,
    )
    if api.json:
        _print_json(page)
        return
    _table(DELIVERY_COLUMNS, [_delivery_row(d) for d in page["data"]])
    _more(page)


@deliveries.command("show")
@click.argument("delivery_id")
@api_options
def deliveries_show(api: Api, client: Client, delivery_id: str) -> None:
    """Show one delivery with every attempt."""
    d = client.get_delivery(delivery_id)
    if api.json:
        _print_json(d)
        return
    _fields(
        [
            ("id", d["id"]),
            ("status", d["status"]),
            ("event", f"{d['event_id']} ({d['event_type']})"),
            ("webhook", d["webhook_id"]),
            ("attempts", d["attempt_count"]),
            ("created", _when(d["created_at"])),
            ("last attempt", _when(d["last_attempt_at"])),
            ("next attempt", _when(d["next_attempt_at"])),
            ("last status code", d["last_status_code"]),
            ("last error", d["last_error"]),
        ]
    )
    click.echo()
    _table(
        ["#", "STARTED", "MS", "STATUS", "ERROR", "RESPONSE"],
        [
            [
                a["number"],
                _when(a["started_at"]),
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
        _print_json(d)
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


# --------------------------------------------------------------------------------------------
# Event types: the catalogue on a running server; import from OpenAPI directly on the database


@main.group("event-types")
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
    _fields(
        [
            ("name", et["name"]),
            ("status", "enabled" if et["enabled"] else "disabled"),
            ("description", et["description"]),
            ("examples", len(et["examples"])),
            ("created", _when(et["created_at"])),
            ("updated", _when(et["updated_at"])),
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
        _print_json(et)
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
    page = _all_pages(lambda c: client.list_event_types(limit=limit, cursor=c), cursor, every)
    if api.json:
        _print_json(page)
        return
    _table(
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
    _more(page)


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
        _print_json({"name": name, "deleted": True})
    else:
        click.echo(f"{name}: deleted")


@event_types_group.command("import")
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
    settings = _settings(config, logs_to_stderr=True)
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


if __name__ == "__main__":
    main()
