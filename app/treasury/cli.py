"""`flask treasury ...`: give and take treasury roles, name platform administrators, reset 2FA, verify the ledger.

Each command is one unit of work: it commits what the services flushed when it ends, and
nothing when it fails.
"""

from __future__ import annotations

from datetime import date

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from app.agencies.models import Agency
from app.extensions import db
from app.payments.splits import AGENCY_PART, verify_ledger
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


@treasury_cli.command("verify-ledger")
@click.option("--agency", "agency_code", help="One agency's code (default: every agency).")
@click.option("--from", "date_from", type=click.DateTime(["%Y-%m-%d"]), help="First local day (default: the first).")
@click.option("--to", "date_to", type=click.DateTime(["%Y-%m-%d"]), help="Last local day (default: the last).")
@with_appcontext
@unit_of_work()
def verify_ledger_command(agency_code: str | None, date_from, date_to) -> None:
    """Prove the withholdings ledger adds up: to each line and refund, to gross less refunds, per beneficiary.

    Exits with an error, listing every discrepancy, if it does not.
    """
    agencies = list(db.session.scalars(select(Agency).order_by(Agency.code)))
    if agency_code is not None:
        agencies = [agency for agency in agencies if agency.code == agency_code]
        if not agencies:
            raise click.ClickException(f"No agency has the code {agency_code}.")
    first = date_from.date() if date_from else date(1970, 1, 1)
    last = date_to.date() if date_to else date(9999, 12, 31)
    failed = 0
    for agency in agencies:
        check = verify_ledger(agency, first, last)
        withheld = sum(amount for name, amount in check.by_beneficiary.items() if name != AGENCY_PART)
        click.echo(
            f"{agency.code}: {check.lines} lines, gross {check.gross_minor}, {check.refunds} refunds "
            f"{check.refunds_minor}, entries {check.entries_minor} (withheld {withheld}) "
            f"[{agency.currency} minor units]: {'adds up' if check.ok else 'DOES NOT ADD UP'}"
        )
        for problem in check.problems:
            click.echo(f"  - {problem}")
        failed += not check.ok
    if failed:
        raise click.ClickException(f"The ledger of {failed} agency(ies) does not add up.")
