"""``dispatcher tenants``: your customers on a running server (create, list, show, update,
delete), their tokens (token, tokens, revoke) and portal sign-in links (portal)."""

from __future__ import annotations

import re
from typing import Any

import click
import orjson

from dispatcher.cli.api import Api, api_options
from dispatcher.cli.output import Group, all_pages, fields, more_hint, print_json, table, when
from dispatcher.client import Client, Tenant

_DURATION = re.compile(r"(\d+)\s*([smhd]?)")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    """``--expires-in``: seconds, or 30m, 12h, 7d; None when not given."""
    if value is None:
        return None
    found = _DURATION.fullmatch(value.strip())
    if found is None:
        raise click.BadParameter("must be seconds, or a duration such as 30m, 12h or 7d")
    return int(found[1]) * _SECONDS[found[2]]


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


@click.group("tenants", cls=Group)
def tenants() -> None:
    """Tenants (your customers): their tokens and portal sign-in links."""


def _tenant_out(api: Api, tenant: Tenant) -> None:
    if api.json:
        print_json(tenant)
        return
    fields(
        [
            ("id", tenant["id"]),
            ("name", tenant["name"]),
            ("metadata", orjson.dumps(tenant["metadata"]).decode() if tenant["metadata"] else ""),
            ("created", when(tenant["created_at"])),
            ("updated", when(tenant["updated_at"])),
        ]
    )


@tenants.command("create")
@click.argument("tenant_id", metavar="ID")
@click.option("--name", required=True, help="The customer's name, as the portal shows it.")
@click.option("--metadata", default=None, callback=_json_object, help="A JSON object.")
@api_options
def tenants_create(
    api: Api, client: Client, tenant_id: str, name: str, metadata: dict[str, Any] | None
) -> None:
    """Register a tenant ID (your key for the customer: letters, digits and ._:-)."""
    _tenant_out(api, client.create_tenant(tenant_id, name, metadata=metadata))


@tenants.command("list")
@click.option("--search", default=None, help="Only tenants whose id or name contains this.")
@click.option("--limit", type=click.IntRange(1, 500), default=None, help="Page size.")
@click.option("--cursor", default=None, help="Continue after a previous page.")
@click.option("--all", "every", is_flag=True, help="Follow every page.")
@api_options
def tenants_list(
    api: Api,
    client: Client,
    search: str | None,
    limit: int | None,
    cursor: str | None,
    every: bool,
) -> None:
    """List tenants by id."""
    page = all_pages(lambda c: client.list_tenants(q=search, limit=limit, cursor=c), cursor, every)
    if api.json:
        print_json(page)
        return
    table(
        ["ID", "NAME", "CREATED"],
        [[t["id"], t["name"], when(t["created_at"])] for t in page["data"]],
    )
    more_hint(page)


@tenants.command("show")
@click.argument("tenant_id", metavar="ID")
@api_options
def tenants_show(api: Api, client: Client, tenant_id: str) -> None:
    """Show a tenant and its tokens."""
    tenant = client.get_tenant(tenant_id)
    tokens = all_pages(lambda c: client.list_tenant_tokens(tenant_id, cursor=c), None, True)
    if api.json:
        print_json({**tenant, "tokens": tokens["data"]})
        return
    _tenant_out(api, tenant)
    click.echo("tokens:")
    table(
        ["ID", "CREATED", "EXPIRES"],
        [[t["id"], when(t["created_at"]), when(t["expires_at"])] for t in tokens["data"]],
    )


@tenants.command("update")
@click.argument("tenant_id", metavar="ID")
@click.option("--name", default=None)
@click.option("--metadata", default=None, callback=_json_object, help="A JSON object.")
@api_options
def tenants_update(
    api: Api, client: Client, tenant_id: str, name: str | None, metadata: dict[str, Any] | None
) -> None:
    """Change a tenant's name or metadata; what is not given stays as it is."""
    _tenant_out(api, client.update_tenant(tenant_id, name=name, metadata=metadata))


@tenants.command("delete")
@click.argument("tenant_id", metavar="ID")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@api_options
def tenants_delete(api: Api, client: Client, tenant_id: str, yes: bool) -> None:
    """Delete a tenant: its webhooks (their unfinished deliveries cancelled), tokens and portal
    links go too; its events and deliveries stay in the log."""
    if not yes:
        click.confirm(
            f"Delete tenant {tenant_id} with its webhooks and tokens?", abort=True, err=True
        )
    client.delete_tenant(tenant_id)
    if api.json:
        print_json({"id": tenant_id, "deleted": True})
    else:
        click.echo(f"{tenant_id}: deleted")


expires_option = click.option(
    "--expires-in",
    callback=duration,
    default=None,
    help="How long it stays good: seconds, or 30m, 12h, 7d.",
)


@tenants.command("token")
@click.argument("tenant_id", metavar="ID")
@expires_option
@api_options
def tenants_token(api: Api, client: Client, tenant_id: str, expires_in: int | None) -> None:
    """Create a bearer token that acts only inside tenant ID (default: until revoked).

    The token is printed this once; Dispatcher keeps only a hash of it.
    """
    made = client.create_tenant_token(tenant_id, expires_in=expires_in)
    if api.json:
        print_json(made)
        return
    click.echo(made["token"])
    click.echo(f"(id {made['id']}, expires {when(made['expires_at'])})", err=True)


@tenants.command("tokens")
@click.argument("tenant_id", metavar="ID")
@api_options
def tenants_tokens(api: Api, client: Client, tenant_id: str) -> None:
    """List tenant ID's tokens (their ids and expiry, never the tokens themselves)."""
    page = all_pages(lambda c: client.list_tenant_tokens(tenant_id, cursor=c), None, True)
    if api.json:
        print_json(page)
        return
    table(
        ["ID", "CREATED", "EXPIRES"],
        [[t["id"], when(t["created_at"]), when(t["expires_at"])] for t in page["data"]],
    )


@tenants.command("revoke")
@click.argument("tenant_id", metavar="ID")
@click.argument("token_id")
@api_options
def tenants_revoke(api: Api, client: Client, tenant_id: str, token_id: str) -> None:
    """Revoke one of tenant ID's tokens: it stops working at once."""
    client.revoke_tenant_token(tenant_id, token_id)
    if api.json:
        print_json({"id": token_id, "revoked": True})
    else:
        click.echo(f"{token_id}: revoked")


@tenants.command("portal")
@click.argument("tenant_id", metavar="ID")
@click.option(
    "--expires-in",
    callback=duration,
    default="1h",
    show_default=True,
    help="How long the link stays good: seconds, or 30m, 12h, 7d (at most 7d).",
)
@api_options
def tenants_portal(api: Api, client: Client, tenant_id: str, expires_in: int) -> None:
    """Print a single-use sign-in link to tenant ID's portal, for its people."""
    link = client.portal_link(tenant_id, expires_in=expires_in)
    if api.json:
        print_json(link)
        return
    click.echo(link["url"])
    click.echo(f"(one use, expires {when(link['expires_at'])})", err=True)
