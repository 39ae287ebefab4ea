"""The payments ledger: locking a payment, a citizen's payments and their history, the time zone they are shown in.

Turning a quote into a payment is checkout's (``app.checkout.payment_flow``); this package keeps
what was paid.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from app.agencies.models import Agency
from app.extensions import db
from app.payments.models import Payment, PaymentLine
from app.unit_of_work import end_read_only_transaction

log = logging.getLogger("civicpay.payments")


def lock_payment(payment_id: int) -> Payment:
    """The payment, locked in a new transaction: the browser, a webhook, the worker or staff may race.

    The transaction starts with a no-op UPDATE of the row: a row lock on PostgreSQL, and on SQLite
    the database write lock, taken before any read (a read-then-write transaction there fails at
    once when another writer got in between, instead of waiting its turn). Lines and provider
    charges come loaded. The caller must have no changes in hand (they would be neither committed
    nor lost silently: ``end_read_only_transaction`` refuses).
    """
    end_read_only_transaction()
    db.session.execute(
        update(Payment)
        .where(Payment.id == payment_id)
        .values(status=Payment.status)
        .execution_options(synchronize_session=False)
    )
    statement = (
        select(Payment)
        .where(Payment.id == payment_id)
        .options(selectinload(Payment.lines), selectinload(Payment.charges))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return db.session.scalars(statement).one()


def payments_of_user(user_id: int) -> Sequence[Payment]:
    """The user's payments, newest first, with their lines."""
    statement = (
        select(Payment)
        .where(Payment.user_id == user_id)
        .options(selectinload(Payment.lines))
        .order_by(Payment.created_at.desc(), Payment.id.desc())
    )
    return db.session.scalars(statement).all()


def get_user_payment(user_id: int, reference: str) -> Payment | None:
    """The user's payment with this receipt number, or None (also for someone else's)."""
    return db.session.scalar(select(Payment).where(Payment.reference == reference, Payment.user_id == user_id))


def payment_timezone(payment: Payment) -> ZoneInfo:
    """The zone a payment's times are shown in: that of the agency of its first line."""
    # A basket may span agencies; they are one country's bodies in practice, and one zone
    # per payment keeps its date the same on the history, the receipt and the PDF.
    if payment.lines:
        return ZoneInfo(payment.lines[0].agency.timezone)
    return ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])


@dataclass(frozen=True)
class PaymentHistory:
    """A citizen's payments as filtered, with the filter choices that make sense for them."""

    payments: Sequence[Payment]
    #: Years (in the agencies' time zone) in which the citizen made a payment, newest first.
    years: list[int]
    #: Agencies the citizen has paid (or tried to pay), by code.
    agencies: list[Agency]
    #: The filters applied; a value the citizen has no payment for is ignored (None).
    year: int | None
    agency: Agency | None

    @property
    def filtered(self) -> bool:
        """Whether the list is narrowed by a filter."""
        return self.year is not None or self.agency is not None


def _local_years(user_id: int) -> dict[int, int]:
    """Each of the user's payments mapped to the year it was made in its agency's time zone."""
    rows = db.session.execute(
        select(Payment.id, Payment.created_at, Agency.timezone)
        .join(PaymentLine, PaymentLine.payment_id == Payment.id)
        .join(Agency, Agency.id == PaymentLine.agency_id)
        .where(Payment.user_id == user_id)
        .order_by(Payment.id, PaymentLine.id)
    ).all()
    years: dict[int, int] = {}
    for payment_id, created_at, timezone in rows:
        if payment_id not in years:  # the first line's agency, as payment_timezone() chooses
            years[payment_id] = created_at.astimezone(ZoneInfo(timezone)).year
    return years


def payment_history(user_id: int, *, year: int | None = None, agency_code: str | None = None) -> PaymentHistory:
    """The user's payments, newest first, narrowed to a local year and/or one agency."""
    agencies = list(
        db.session.scalars(
            select(Agency)
            .where(
                Agency.id.in_(
                    select(PaymentLine.agency_id)
                    .join(Payment, Payment.id == PaymentLine.payment_id)
                    .where(Payment.user_id == user_id)
                )
            )
            .order_by(Agency.code)
        ).all()
    )
    local_years = _local_years(user_id)
    years = sorted(set(local_years.values()), reverse=True)
    chosen_year = year if year in years else None
    chosen_agency = next((agency for agency in agencies if agency.code == agency_code), None)

    statement = (
        select(Payment)
        .where(Payment.user_id == user_id)
        .options(selectinload(Payment.lines).selectinload(PaymentLine.agency))
        .order_by(Payment.created_at.desc(), Payment.id.desc())
    )
    if chosen_year is not None:
        statement = statement.where(
            Payment.id.in_([pid for pid, local_year in local_years.items() if local_year == chosen_year])
        )
    if chosen_agency is not None:
        statement = statement.where(Payment.lines.any(PaymentLine.agency_id == chosen_agency.id))
    return PaymentHistory(
        payments=db.session.scalars(statement).all(),
        years=years,
        agencies=agencies,
        year=chosen_year,
        agency=chosen_agency,
    )
