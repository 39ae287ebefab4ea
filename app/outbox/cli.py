"""`flask outbox list|retry`: look at the messages waiting to be delivered, and queue a dead one again."""

from __future__ import annotations

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from app.agencies.models import Agency
from app.db import utcnow
from app.extensions import db
from app.outbox.models import OUTBOX_STATUSES
from app.outbox.services import OutboxError, list_messages, retry_message
from app.unit_of_work import unit_of_work


@click.group("outbox", help="Look at and retry the messages waiting to be delivered.")
def outbox_cli() -> None:
    """The `flask outbox` command group."""


@outbox_cli.command("list")
@click.option("--status", type=click.Choice(OUTBOX_STATUSES), help="Only messages of this status.")
@click.option("--agency", "agency_code", help="Only messages for this agency (its code).")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@with_appcontext
def list_command(status: str | None, agency_code: str | None, limit: int) -> None:
    """Show the newest outbox messages as a table."""
    agency_id = None
    if agency_code:
        agency_id = db.session.scalar(select(Agency.id).where(Agency.code == agency_code))
        if agency_id is None:
            raise click.ClickException(f"There is no agency with the code {agency_code}.")
    messages = list_messages(status=status, agency_id=agency_id, limit=limit)
    if not messages:
        click.echo("No outbox messages match.")
        return
    codes = {agency_id: code for agency_id, code in db.session.execute(select(Agency.id, Agency.code))}
    rows = [
        (
            str(message.id),
            message.status,
            codes.get(message.agency_id, "-") if message.agency_id else "-",
            str(message.attempts),
            f"{message.next_attempt_at:%Y-%m-%d %H:%M:%S}" if message.status == "pending" else "-",
            message.key,
            (message.last_error or "")[:60],
        )
        for message in messages
    ]
    header = ("ID", "STATUS", "AGENCY", "ATTEMPTS", "NEXT ATTEMPT (UTC)", "KEY", "LAST ERROR")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@outbox_cli.command("retry")
@click.argument("message_id", type=int)
@with_appcontext
@unit_of_work()
def retry_command(message_id: int) -> None:
    """Queue a dead message again, due now (its attempt count is kept)."""
    try:
        message = retry_message(message_id, utcnow())
    except (LookupError, OutboxError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Outbox message {message.id} ({message.key}) will be delivered by the next worker tick.")
