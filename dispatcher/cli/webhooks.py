"""``dispatcher webhooks``: list, create, show, update, enable/disable, rotate the secret, ping,
send a test event, replay and delete, on a running server."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

import click
import orjson

from dispatcher.cli.api import Api, api_options, json_argument
from dispatcher.cli.output import (
    Group,
    all_pages,
    fields,
    more_hint,
    print_accepted,
    print_json,
    table,
    when,
)
from dispatcher.client import Client, Webhook, WebhookChanges, WebhookOptions


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
        pairs.append(("disabled at", when(webhook["disabled_at"])))
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
        ("created", when(webhook["created_at"])),
        ("updated", when(webhook["updated_at"])),
    ]
    if "secret" in webhook:
        pairs.append(("secret", webhook["secret"]))
    fields(pairs)


@click.group(cls=Group)
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
    page = all_pages(
        lambda c: client.list_webhooks(
            enabled=enabled, event_type=event_type, limit=limit, cursor=c
        ),
        cursor,
        every,
    )
    if api.json:
        print_json(page)
        return
    table(
        ["ID", "NAME", "URL", "EVENT TYPES", "STATUS", "CREATED"],
        [
            [
                w["id"],
                w["name"],
                w["url"],
                ",".join(w["event_types"]),
                _state(w),
                when(w["created_at"]),
            ]
            for w in page["data"]
        ],
    )
    more_hint(page)


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
        print_json(webhook)
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
        print_json(webhook)
    else:
        _show_webhook(webhook)


def _switch(api: Api, webhook: Webhook) -> None:
    if api.json:
        print_json(webhook)
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
        print_json({"id": webhook_id, "secret": secret})
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
        print_json({"id": webhook_id, "deleted": True})
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
        print_json(webhook)
    else:
        _show_webhook(webhook)


@webhooks.command("ping")
@click.argument("webhook_id")
@api_options
def webhooks_ping(api: Api, client: Client, webhook_id: str) -> None:
    """Send a webhook.ping event to this webhook only."""
    print_accepted(api.json, client.ping(webhook_id))


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
        answer = client.send_test(webhook_id, event_type, json_argument(data))
    print_accepted(api.json, answer)


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
        print_json({"count": count})
        return
    what = "delivery" if count == 1 else "deliveries"
    done = "created" if status == "missing" else "re-queued"
    click.echo(f"{webhook_id}: {count} {what} {done}")
