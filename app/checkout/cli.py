"""`flask payments reconcile`: ask the card provider about payments left pending, and finish or give them up."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from app.checkout.payment_flow import reconcile_sandbox_payments, reconcile_stripe_payments
from app.db import utcnow
from app.unit_of_work import unit_of_work


@click.group("payments", help="Card payments: reconcile what the provider knows with our records.")
def payments_cli() -> None:
    """The `flask payments` command group."""


@payments_cli.command("reconcile")
@with_appcontext
@unit_of_work()
def reconcile_command() -> None:
    """Finish or give up card payments left pending: the sandbox's, and Stripe's when it is configured.

    Sandbox payments pending longer than SANDBOX_RECONCILE_AFTER_MINUTES, Stripe payments longer
    than STRIPE_RECONCILE_AFTER_MINUTES. `flask worker` does this every tick; run it by hand after
    an outage to see the result at once.
    """
    click.echo(f"Sandbox payments: {reconcile_sandbox_payments(utcnow())}")
    if current_app.config["CARD_PROVIDER"] == "stripe":
        click.echo(f"Card payments: {reconcile_stripe_payments(utcnow())}")
