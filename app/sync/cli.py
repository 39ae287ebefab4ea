"""`flask erp ...`: sync agencies' ERPs (with a progress bar), check them, handle quarantine.

Each command is one unit of work: it commits when it ends normally, rolls back when it fails.
A sync commits each of its batches on its own, earlier (see ``engine``).
"""

from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext
from tqdm import tqdm

from app.db import utcnow
from app.sync.connectors import build_connector, configure_agency_connector
from app.sync.engine import agencies_to_sync, retry_quarantined, sync_agency
from app.sync.quarantine import quarantined, resolve_quarantined
from app.sync.runs import SyncBusy
from app.unit_of_work import unit_of_work


@click.group("erp", help="Work with the agencies' ERP systems.")
def erp_cli() -> None:
    """The `flask erp` command group."""


def _agencies(codes: tuple[str, ...]):
    try:
        agencies = agencies_to_sync(codes)
    except LookupError as error:
        raise click.ClickException(str(error)) from None
    if not agencies:
        raise click.ClickException("There are no agencies yet: run `flask demo setup` first.")
    return agencies


@erp_cli.command("sync")
@click.option("--agency", "codes", multiple=True, help="Agency code; repeat for several (default: all).")
@click.option("--full", is_flag=True, help="Read everything and close debts the ERP no longer lists.")
@with_appcontext
@unit_of_work()
def sync_command(codes: tuple[str, ...], full: bool) -> None:
    """Copy the debts of each agency's ERP into the portal (incremental when the ERP allows it)."""
    rows = []
    failed = 0
    for agency in _agencies(codes):
        # tqdm rather than click.progressbar: an ERP stream has no known length, and tqdm shows
        # a running count and rate instead of an empty bar.
        with tqdm(desc=f"{agency.code:<18}", unit=" records", file=sys.stderr, leave=False) as bar:
            try:
                run = sync_agency(agency, full=full or agency.synced_until is None, progress=bar.update)
            except SyncBusy as error:
                failed += 1
                click.secho(str(error), fg="yellow", err=True)
                continue
            except Exception as error:  # the run is recorded as failed; tell the operator why
                failed += 1
                click.secho(f"{agency.code}: the sync failed: {error}", fg="red", err=True)
                continue
        rows.append(
            (agency.code, run.kind, run.created, run.updated, run.unchanged, run.closed,
             run.quarantined, run.flagged, f"{run.duration_seconds or 0:.1f}")
        )  # fmt: skip
    headers = ("agency", "kind", "new", "updated", "unchanged", "closed", "quarantined", "flagged", "seconds")
    widths = [max(len(str(value)) for value in column) for column in zip(headers, *rows, strict=False)]
    for line in (headers, *rows):
        click.echo("  ".join(str(value).rjust(width) for value, width in zip(line, widths, strict=True)))
    if failed:
        raise click.ClickException(f"{failed} agency sync(s) did not complete; the others did.")


@erp_cli.command("check")
@click.option("--agency", "codes", multiple=True, help="Agency code; repeat for several (default: all).")
@with_appcontext
def check_command(codes: tuple[str, ...]) -> None:
    """Check that each agency's ERP can be reached."""
    bad = 0
    for agency in _agencies(codes):
        try:
            build_connector(agency).check()
            click.echo(f"{agency.code}: reachable")
        except (ConnectionError, ValueError, OSError) as error:
            bad += 1
            click.secho(f"{agency.code}: NOT reachable: {error}", fg="red")
    if bad:
        raise click.ClickException(f"{bad} ERP(s) cannot be reached.")


@erp_cli.group("quarantine", help="Records the sync could not take.")
def quarantine_cli() -> None:
    """The `flask erp quarantine` command group."""


@quarantine_cli.command("list")
@click.option("--agency", "code", default=None, help="Only this agency.")
@click.option("--limit", default=50, show_default=True)
@with_appcontext
def quarantine_list(code: str | None, limit: int) -> None:
    """List open quarantined records with their reasons."""
    agency_id = _agencies((code,))[0].id if code else None
    records = quarantined(agency_id, limit=limit)
    if not records:
        click.echo("No quarantined records.")
    for record in records:
        click.echo(f"#{record.id}  {record.external_id or '-'}  {record.reason}")
        click.echo(f"      raw: {record.raw[:200]}")


@quarantine_cli.command("retry")
@click.option("--agency", "code", required=True, help="The agency whose records to retry.")
@with_appcontext
@unit_of_work()
def quarantine_retry(code: str) -> None:
    """Pull the agency's ERP again; records it has fixed come in, others are quarantined anew."""
    agency = _agencies((code,))[0]
    run = retry_quarantined(agency, utcnow())
    click.echo(f"{agency.code}: {run.created} new, {run.updated} updated, {run.quarantined} still quarantined")


@quarantine_cli.command("dismiss")
@click.argument("record_ids", nargs=-1, type=int, required=True)
@with_appcontext
@unit_of_work()
def quarantine_dismiss(record_ids: tuple[int, ...]) -> None:
    """Dismiss quarantined records that need no action."""
    click.echo(f"{resolve_quarantined(record_ids, 'dismissed', utcnow())} record(s) dismissed.")


@erp_cli.command("configure")
@click.option("--agency", "code", required=True, help="The agency to configure.")
@click.option(
    "--connector",
    "path",
    type=click.Path(exists=True, dir_okay=False),
    help='JSON file: {"type": ..., "options": {...}}.',
)
@click.option(
    "--interval", type=int, default=None, help="Minutes between scheduled syncs run by `flask worker` (0: none)."
)
@click.option("--skip-check", is_flag=True, help="Save even if the ERP cannot be reached now.")
@with_appcontext
@unit_of_work()
def configure_command(code: str, path: str | None, interval: int | None, skip_check: bool) -> None:
    """Point an agency at its ERP (a new ERP is configuration, not code)."""
    import json

    agency = _agencies((code,))[0]
    config = None
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                config = json.load(handle)
        except ValueError as error:
            raise click.ClickException(f"{path} is not valid JSON: {error}") from None
    try:
        configure_agency_connector(agency, config, interval, check=not skip_check)
    except (ValueError, ConnectionError) as error:
        raise click.ClickException(f"Nothing was saved: {error}") from None
    click.echo(f"{agency.code}: connector {agency.connector.get('type', 'demo')}, "
               f"scheduled every {agency.sync_interval_minutes or 'never'} minutes")  # fmt: skip
