"""`flask erp sync`: pull every agency's ERP, with a progress bar on the terminal."""

from __future__ import annotations

import sys

import click
from tqdm import tqdm
from flask.cli import with_appcontext

from app.sync.services import agencies_to_sync, sync_agency


@click.group("erp", help="Work with the agencies' ERP systems.")
def erp_cli() -> None:
    """The `flask erp` command group."""


@erp_cli.command("sync")
@click.option("--agency", "codes", multiple=True, help="Agency code; repeat for several (default: all).")
@with_appcontext
def sync_command(codes: tuple[str, ...]) -> None:
    """Copy the debts of each agency's ERP into the portal (a full sync, safe to repeat)."""
    try:
        agencies = agencies_to_sync(codes)
    except LookupError as error:
        raise click.ClickException(str(error)) from None
    if not agencies:
        raise click.ClickException("There are no agencies yet: run `flask demo setup` first.")
    failed = 0
    for agency in agencies:
        # tqdm rather than click.progressbar: an ERP stream has no known length, and tqdm shows
        # a running count and rate instead of an empty bar.
        with tqdm(desc=f"{agency.code:<18}", unit=" records", file=sys.stderr, leave=True) as bar:
            try:
                result = sync_agency(agency, progress=bar.update)
            except ConnectionError as error:
                failed += 1
                click.secho(f"{agency.code}: the ERP could not be reached: {error}", fg="red", err=True)
                continue
        click.echo(
            f"{agency.code}: {result.created} new, {result.updated} updated, "
            f"{result.unchanged} unchanged, {result.rejected} skipped"
        )
        for problem in result.problems[:10]:
            click.echo(f"  skipped: {problem}")
    if failed:
        raise click.ClickException(f"{failed} agency sync(s) failed; the others completed.")
