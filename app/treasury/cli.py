"""`flask treasury ...`: give and take treasury roles, name platform administrators, reset 2FA.

Each command is one unit of work: it commits what the services flushed when it ends, and
nothing when it fails.
"""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from app.treasury.access.second_factor import reset_second_factor_by_email
from app.treasury.access.services import TreasuryError, grant_by_email, revoke_by_email, set_platform_admin
from app.treasury.models import ROLES
from app.unit_of_work import unit_of_work


@click.group("treasury", help="Treasury staff and their roles.")
def treasury_cli() -> None:
    """The `flask treasury` command group."""


@treasury_cli.command("grant")
@click.argument("email")
@click.argument("agency_code")
@click.argument("role", type=click.Choice(ROLES))
@with_appcontext
@unit_of_work()
def grant_command(email: str, agency_code: str, role: str) -> None:
    """Give the account EMAIL the ROLE in the agency AGENCY_CODE (or change its role there)."""
    try:
        grant_by_email(email, agency_code, role)
    except TreasuryError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{email.strip().lower()} is now {role} in {agency_code}.")


@treasury_cli.command("revoke")
@click.argument("email")
@click.argument("agency_code")
@with_appcontext
@unit_of_work()
def revoke_command(email: str, agency_code: str) -> None:
    """Take the account EMAIL off the staff of the agency AGENCY_CODE."""
    try:
        removed = revoke_by_email(email, agency_code)
    except TreasuryError as error:
        raise click.ClickException(str(error)) from None
    if not removed:
        raise click.ClickException(f"{email} is not on the staff of {agency_code}.")
    click.echo(f"{email.strip().lower()} is no longer on the staff of {agency_code}.")


@treasury_cli.command("platform-admin")
@click.argument("email")
@click.option("--remove", is_flag=True, help="Stop the account being a platform administrator.")
@with_appcontext
@unit_of_work()
def platform_admin_command(email: str, remove: bool) -> None:
    """Make the account EMAIL a platform administrator (it may manage every agency's staff)."""
    try:
        set_platform_admin(email, not remove)
    except TreasuryError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{email.strip().lower()} is {'no longer' if remove else 'now'} a platform administrator.")


@treasury_cli.command("reset-2fa")
@click.argument("email")
@with_appcontext
@unit_of_work()
def reset_second_factor_command(email: str) -> None:
    """Forget the authenticator and recovery codes of EMAIL (lost phone and codes): it enrols again."""
    try:
        reset_second_factor_by_email(email)
    except TreasuryError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{email.strip().lower()} will set up a new authenticator at the next treasury sign-in.")
