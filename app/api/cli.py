"""`flask api token create|list|revoke`: the agencies' push-API tokens."""

from __future__ import annotations

from datetime import datetime

import click
from flask.cli import with_appcontext

from app.api.services import agency_by_code, create_token, revoke_token, tokens_of
from app.unit_of_work import unit_of_work


@click.group("api", help="The push API for agencies' ERPs.")
def api_cli() -> None:
    """The `flask api` command group."""


@api_cli.group("token", help="Tokens that let an agency's ERP push its debts.")
def token_cli() -> None:
    """The `flask api token` command group."""


def _agency(code: str):
    try:
        return agency_by_code(code)
    except LookupError as error:
        raise click.ClickException(str(error)) from None


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "never"


@token_cli.command("create")
@click.option("--agency", "code", required=True, help="Code of the agency whose ERP will use the token.")
@click.option("--name", required=True, help="What the token is for, e.g. 'water ERP nightly push'.")
@with_appcontext
@unit_of_work()
def create_command(code: str, name: str) -> None:
    """Make a token and print it, once."""
    agency = _agency(code)
    row, token = create_token(agency.id, name)
    click.echo(f"API token {row.id} for {agency.code} ({name}):")
    click.echo(f"  {token}")
    click.secho(
        "Copy it now: it is not stored and cannot be shown again (only its hash is kept). "
        "If it is lost, revoke it and create another.",
        fg="yellow",
        err=True,
    )


@token_cli.command("list")
@click.option("--agency", "code", required=True, help="Code of the agency.")
@with_appcontext
@unit_of_work()
def list_command(code: str) -> None:
    """List an agency's tokens (by prefix; the tokens themselves are not kept)."""
    agency = _agency(code)
    rows = tokens_of(agency.id)
    if not rows:
        click.echo(f"{agency.code} has no API tokens.")
        return
    click.echo(f"{'id':>4}  {'prefix':<10} {'created':<20} {'last used':<20} {'revoked':<20} name")
    for row in rows:
        click.echo(
            f"{row.id:>4}  {row.prefix + '…':<10} {_when(row.created_at):<20} {_when(row.last_used_at):<20} "
            f"{(_when(row.revoked_at) if row.revoked_at else 'no'):<20} {row.name}"
        )


@token_cli.command("revoke")
@click.argument("token_id", type=int)
@with_appcontext
@unit_of_work()
def revoke_command(token_id: int) -> None:
    """Revoke a token by id: the ERP using it is refused from the next request on."""
    try:
        row = revoke_token(token_id)
    except LookupError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"API token {row.id} ({row.prefix}…, {row.name}) is revoked since {_when(row.revoked_at)}.")
