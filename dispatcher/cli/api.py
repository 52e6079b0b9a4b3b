"""What every command that talks to a running server over its HTTP API shares: ``--url``,
``--token`` (default: the admin token, found as ``dispatcher token`` finds it), ``--config``
and ``--json``; error answers and an unreachable server as one line and exit status 1."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import click
import orjson

from dispatcher.auth import admin_token_path
from dispatcher.cli.common import config_option, find_token
from dispatcher.client import DEFAULT_URL, Client, ConnectionFailed, DispatcherError
from dispatcher.config import ConfigError, load_settings


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


def _admin_token(config: Path | None) -> str:
    """The admin token from the configuration or the data dir; never generates one."""
    try:
        settings = load_settings(config_file=config)
    except ConfigError as exc:
        click.echo(f"dispatcher: invalid configuration: {exc}", err=True)
        sys.exit(2)
    found = find_token(settings)
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


def json_argument(raw: str) -> Any:
    """A JSON command-line argument (``-``: read from stdin)."""
    text = sys.stdin.read() if raw == "-" else raw
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="JSON") from None
