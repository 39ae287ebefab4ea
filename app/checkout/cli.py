"""`flask payments reconcile`: ask the card provider about payments left pending, and finish or give them up."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from app.checkout.payment_flow import reconcile_stripe_payments
from app.db import utcnow
from app.unit_of_work import unit_of_work


@click.group("payments", help="Card payments: reconcile what the provider knows with our records.")
def payments_cli() -> None:
    """The `flask payments` command group."""


@payments_cli.command("reconcile")
@with_appcontext
@unit_of_work()
def reconcile_command() -> None:
    """Finish or give up Stripe payments pending longer than STRIPE_RECONCILE_AFTER_MINUTES.

    `flask worker` does this every tick; run it by hand after an outage to see the result at once.
    """
    if current_app.config["CARD_PROVIDER"] != "stripe":
        raise click.ClickException("CARD_PROVIDER is not 'stripe': there is nothing to reconcile.")
    click.echo(f"Card payments: {reconcile_stripe_payments(utcnow())}")
