"""`flask worker`: scheduled ERP syncs, card payments left pending, and outbox delivery, tick after tick."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from types import FrameType
from typing import Self

import click
from flask import current_app
from flask.cli import with_appcontext

from app.checkout.payment_flow import reconcile_sandbox_payments, reconcile_stripe_payments
from app.db import utcnow
from app.extensions import db
from app.outbox.services import deliver_due
from app.sync.engine import run_due_syncs
from app.unit_of_work import unit_of_work

log = logging.getLogger("civicpay.worker")


class _StopSignal:
    """SIGTERM/SIGINT ask the worker to stop after the message in hand; a second one forces it."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._previous: dict[int, object] = {}

    def __enter__(self) -> Self:
        for number in (signal.SIGTERM, signal.SIGINT):
            self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *_exc: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)  # type: ignore[arg-type]

    def _handle(self, number: int, _frame: FrameType | None) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt  # asked twice: stop now, mid-message if need be
        log.info("%s received: stopping after the current message", signal.Signals(number).name)
        self.event.set()


@click.command("worker")
@click.option("--once", is_flag=True, help="Run one tick and exit (for cron or tests).")
@click.option(
    "--interval", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
    help="Seconds to wait between ticks.",
)  # fmt: skip
@click.option(
    "--batch", type=click.IntRange(min=1), default=20, show_default=True,
    help="Most outbox messages delivered per tick.",
)  # fmt: skip
@with_appcontext
def worker_command(once: bool, interval: float, batch: int) -> None:
    """Run scheduled ERP syncs and deliver outbox messages, tick after tick, until stopped.

    All state lives in the database, so a restarted worker carries on where the last one stopped.
    Several workers may run at once on PostgreSQL (they skip each other's locked messages); on
    SQLite run one.
    """
    name = f"{socket.gethostname()}:{os.getpid()}"
    failed_ticks = 0
    with _StopSignal() as stop:
        log.info("worker %s started (interval %.1f s, batch %d)", name, interval, batch)
        while not stop.event.is_set():
            started = time.monotonic()
            try:
                with unit_of_work():
                    _tick(name, batch, stop.event)
            except Exception:
                failed_ticks += 1
                log.exception("worker %s: the tick failed; trying again next tick", name)
            finally:
                db.session.remove()  # give the connection back between ticks
            if once:
                break
            stop.event.wait(max(0.0, interval - (time.monotonic() - started)))
        log.info("worker %s stopped", name)
    if once and failed_ticks:
        raise click.ClickException("The tick failed; see the log above.")


def _tick(name: str, batch: int, stop: threading.Event) -> None:
    """One round: the syncs that are due, card payments pending too long, then the outbox."""
    synced = run_due_syncs(utcnow())
    # Before the outbox: a payment the reconcilers finish has its ERP ack sent this tick.
    reconciled = reconcile_sandbox_payments(utcnow())
    if current_app.config["CARD_PROVIDER"] == "stripe":
        reconciled.add(reconcile_stripe_payments(utcnow()))
    report = deliver_due(limit=batch, worker=name, should_stop=stop.is_set)
    if synced or report.handled or reconciled.checked:
        payments = f"; card payments: {reconciled}" if reconciled.checked else ""
        click.echo(f"{utcnow():%Y-%m-%d %H:%M:%S} UTC  syncs run: {len(synced)}; outbox: {report}{payments}")
