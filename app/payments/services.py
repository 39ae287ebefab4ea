"""Paying a quote: claim the debts, charge the card once, record the outcome in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from app.agencies.models import Agency
from app.catalog.services import SoldOut, hold_seats, issue_tickets, payment_hold_until, release_seats
from app.checkout.models import Quote, QuoteLine
from app.checkout.services import CheckoutError, get_user_quote
from app.db import utcnow
from app.debts.models import Debt, Installment
from app.domain.references import readable_code
from app.extensions import db
from app.outbox.services import enqueue_payment_acks, enqueue_receipt_email
from app.payments.models import Payment, PaymentLine
from app.payments.providers import CardDetails, CardProvider

log = logging.getLogger("civicpay.payments")

class PaymentDeclined(Exception):
    """The provider refused the card; the payment is recorded as failed and the quote stays open."""

    def __init__(self, payment: Payment) -> None:
        super().__init__(payment.failure_reason)
        self.payment = payment


def new_payment_reference() -> str:
    """A random, readable receipt number such as ``CP-7KQ2-M9XA-3F``."""
    return readable_code("CP")


def _claim(target: type[Debt] | type[Installment], row_id: int, paid: int, payment_id: int) -> bool:
    """Compare-and-set the row's pending payment: succeeds for exactly one concurrent payer.

    On PostgreSQL the second UPDATE waits for the first transaction's row lock and then
    re-checks the WHERE clause, finding the row taken; SQLite serialises writers outright.
    """
    result = db.session.execute(
        update(target)
        .where(
            target.id == row_id,
            target.status == "open",
            target.pending_payment_id.is_(None),
            target.paid_minor == paid,
        )
        .values(pending_payment_id=payment_id)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def start_payment(user_id: int, token: str, provider: CardProvider, now: datetime) -> Payment:
    """Check the user's quote, claim each debt for a new pending payment, commit before charging."""
    quote = get_user_quote(user_id, token)
    if quote is None:
        raise CheckoutError("unknown_quote")
    return claim_quote(quote, provider_name=provider.name, channel="account", user_id=user_id, now=now)


def claim_quote(
    quote: Quote, *, provider_name: str, channel: str, user_id: int | None, now: datetime
) -> Payment:
    """Create a pending payment for an open quote and claim each of its debts, in one commit.

    Raises CheckoutError("quote_used" | "quote_expired" | "taken"). Callers check that the
    quote belongs to whoever is paying; this function trusts nothing else from them.
    """
    if quote.status != "open":
        raise CheckoutError("quote_used")
    if quote.is_expired(now):
        raise CheckoutError("quote_expired", order=any(line.item_id is not None for line in quote.lines))
    payment = Payment(
        reference=new_payment_reference(),
        user_id=user_id,
        quote_id=quote.id,
        currency=quote.currency,
        amount_minor=quote.total_minor,
        provider=provider_name,
        channel=channel,
        created_at=now,
        lines=[
            PaymentLine(
                agency_id=line.agency_id,
                debt_id=line.debt_id,
                installment_id=line.installment_id,
                item_id=line.item_id,
                quantity=line.quantity,
                answers=line.answers,
                principal_minor=line.principal_minor,
                surcharge_minor=line.surcharge_minor,
                amount_minor=line.amount_minor,
                explanation=line.explanation,
            )
            for line in quote.lines
        ],
    )
    db.session.add(payment)
    db.session.flush()
    # Items first, in id order (their rows are locked: two baskets must lock in the same order).
    for line in sorted((line for line in quote.lines if line.item_id is not None), key=lambda line: line.item_id):
        if line.item is not None and line.item.issues_tickets:
            # The seats held for the review are held again for as long as the payment may take.
            try:
                hold_seats(line.item_id, line.id, line.quantity, payment_hold_until(now), now)
            except SoldOut as sold_out:
                db.session.rollback()
                raise CheckoutError("sold_out", left=sold_out.left) from None
    for line in quote.lines:
        if line.item_id is not None:
            continue
        if line.installment is not None:
            target, row = Installment, line.installment
            paid = row.amount_minor - line.principal_minor
        else:
            target, row = Debt, line.debt
            paid = row.principal_minor - line.principal_minor
        if not _claim(target, row.id, paid, payment.id):
            db.session.rollback()
            raise CheckoutError("taken", description=line.title("el"))
    db.session.commit()
    return payment


def complete_payment(payment: Payment, provider: CardProvider, card: CardDetails) -> Payment:
    """Charge the card for a pending payment and record success or failure."""
    result = provider.charge(
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        card=card,
        idempotency_key=payment.reference,
    )
    if result.succeeded:
        return confirm_payment(
            payment.id,
            provider_reference=result.provider_reference,
            card_brand=result.card_brand,
            card_last4=result.card_last4,
        )
    failed = fail_payment(
        payment.id,
        provider_reference=result.provider_reference,
        reason=result.decline_code or "declined",
        card_last4=result.card_last4,
    )
    raise PaymentDeclined(failed)


def pay_quote(
    user_id: int, token: str, card: CardDetails, provider: CardProvider, now: datetime
) -> Payment:
    """Pay a quote by card: claim, charge, confirm. Raises CheckoutError or PaymentDeclined."""
    payment = start_payment(user_id, token, provider, now)
    return complete_payment(payment, provider, card)


def lock_payment(payment_id: int) -> Payment:
    """The payment, locked in a new transaction: the browser, a webhook, the worker or staff may race.

    The transaction starts with a no-op UPDATE of the row: a row lock on PostgreSQL, and on SQLite
    the database write lock, taken before any read (a read-then-write transaction there fails at
    once when another writer got in between, instead of waiting its turn). Lines and provider
    charges come loaded.
    """
    db.session.commit()  # end any read-only transaction the caller had open
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


def _locked_payment(payment_id: int) -> Payment:
    statement = (
        select(Payment)
        .where(Payment.id == payment_id)
        .options(selectinload(Payment.lines))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return db.session.scalars(statement).one()


def confirm_payment(
    payment_id: int, *, provider_reference: str, card_brand: str | None, card_last4: str | None
) -> Payment:
    """Record a successful charge: the payment, its debts and its quote change in one transaction."""
    payment = _locked_payment(payment_id)
    if payment.status == "succeeded":
        db.session.rollback()
        return payment  # a repeated confirmation (retry, webhook) changes nothing
    if payment.status != "pending":
        raise ValueError(f"Payment {payment.reference} is {payment.status}; it cannot succeed.")
    now = utcnow()
    item_lines = _quote_item_lines(payment)
    for line in payment.lines:
        if line.item_id is not None:
            issue_tickets(item_lines[line.id], line.id, now)
            continue
        target = line.installment if line.installment_id is not None else line.debt
        assert target is not None
        if target.pending_payment_id != payment.id:
            raise RuntimeError(f"Payment {payment.reference} does not hold debt {line.debt_id}.")
        target.paid_minor += line.principal_minor
        target.pending_payment_id = None
        if line.installment is not None:
            if target.paid_minor == line.installment.amount_minor:
                target.status = "paid"
            line.debt.paid_minor += line.principal_minor
        assert line.debt is not None
        if line.debt.paid_minor == line.debt.principal_minor:
            line.debt.status = "paid"
    payment.status = "succeeded"
    payment.provider_reference = provider_reference
    payment.card_brand = card_brand
    payment.card_last4 = card_last4
    payment.completed_at = now
    if payment.quote_id is not None:
        quote = db.session.get(Quote, payment.quote_id)
        if quote is not None:
            quote.status = "used"
    enqueue_payment_acks(payment)  # the ERP hears of it only if this commit happens
    enqueue_receipt_email(payment)  # and the payer gets the receipt by e-mail, once
    db.session.commit()
    log.info("payment %s succeeded (%d lines)", payment.reference, len(payment.lines))
    return payment


def _quote_item_lines(payment: Payment) -> dict[int, int]:
    """The quote line each of the payment's item lines was made from: {payment line id: quote line id}.

    claim_quote copies the quote's lines in their order, so the item lines of both pair up in order.
    """
    paid = [line.id for line in sorted(payment.lines, key=lambda line: line.id) if line.item_id is not None]
    if payment.quote_id is None or not paid:
        return {}
    ordered = db.session.scalars(
        select(QuoteLine.id)
        .where(QuoteLine.quote_id == payment.quote_id, QuoteLine.item_id.is_not(None))
        .order_by(QuoteLine.id)
    ).all()
    return dict(zip(paid, ordered, strict=True))


def fail_payment(
    payment_id: int, *, provider_reference: str | None, reason: str, card_last4: str | None
) -> Payment:
    """Record a declined charge and free the debts for another try."""
    payment = _locked_payment(payment_id)
    if payment.status != "pending":
        db.session.rollback()
        return payment
    for line in payment.lines:
        target = line.installment if line.installment_id is not None else line.debt
        if target is not None and target.pending_payment_id == payment.id:
            target.pending_payment_id = None
    # Seats held for the order are free again; a retry holds them anew if nobody took them.
    release_seats(_quote_item_lines(payment).values())
    payment.status = "failed"
    payment.failure_reason = reason
    payment.provider_reference = provider_reference
    payment.card_last4 = card_last4
    payment.completed_at = utcnow()
    db.session.commit()
    log.info("payment %s declined: %s", payment.reference, reason)
    return payment


def find_payment_for_quote(quote: Quote, reference: str, user_id: int | None) -> Payment | None:
    """The payment with this receipt number made for this quote by this payer, or None."""
    owner = Payment.user_id.is_(None) if user_id is None else Payment.user_id == user_id
    return db.session.scalar(
        select(Payment).where(Payment.reference == reference, Payment.quote_id == quote.id, owner)
    )


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
    return db.session.scalar(
        select(Payment).where(Payment.reference == reference, Payment.user_id == user_id)
    )


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


def payment_history(
    user_id: int, *, year: int | None = None, agency_code: str | None = None
) -> PaymentHistory:
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
