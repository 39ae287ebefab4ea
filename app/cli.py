"""`flask db ...` (migrations) and `flask demo setup` (demo agencies and accounts)."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from app import migrate
from app.unit_of_work import unit_of_work


@click.group("db", help="Database migrations (Alembic).")
def db_cli() -> None:
    """The `flask db` command group."""


@db_cli.command("upgrade")
@click.argument("revision", default="head")
@with_appcontext
def upgrade_command(revision: str) -> None:
    """Migrate the database up to REVISION (default: the newest)."""
    migrate.upgrade(current_app.config["DATABASE_URL"], revision)
    click.echo(f"Database migrated to {revision}.")


@db_cli.command("downgrade")
@click.argument("revision")
@with_appcontext
def downgrade_command(revision: str) -> None:
    """Migrate the database down to REVISION ("base" empties it)."""
    migrate.downgrade(current_app.config["DATABASE_URL"], revision)
    click.echo(f"Database migrated down to {revision}.")


@click.group("demo", help="Demo data for trying the portal.")
def demo_cli() -> None:
    """The `flask demo` command group."""


@demo_cli.command("setup")
@with_appcontext
@unit_of_work()
def demo_setup_command() -> None:
    """Create the demo agencies and citizen accounts (safe to repeat) and print the log-ins."""
    from app.demo import setup_demo

    created = setup_demo()
    click.echo(f"Demo agencies: {created.agencies_created} new, {created.agencies_total} in all.")
    click.echo("Demo citizen accounts (public test passwords, for this demo only):")
    for citizen in created.citizens:
        click.echo(f"  {citizen.email:<22} password: {citizen.password:<18} tax ID {citizen.tax_id}")
    click.echo("Demo treasury administrators (add the TOTP key to an authenticator app for /treasury):")
    for staff in created.staff:
        click.echo(f"  {staff.email:<38} password: {staff.password:<18} TOTP key: {staff.totp_secret}")
