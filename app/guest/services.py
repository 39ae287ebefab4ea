"""Guest payments: find a debt by its code and a second factor, quote it, pay it, find the receipt.

Anti-enumeration: every look-up runs the same statements whatever it finds (the lock row of the
code, the debts with the code, then a failure recorded or cleared), and the same work on the
second factor: when no debt has the code, a decoy debt's factor is worked out, parsed, hashed
and compared in constant time exactly as a real one's. So a look-up answers in the same time
without sleeping; GUEST_LOOKUP_MIN_SECONDS (0 by default) adds a floor for threaded workers.
A wrong code, a wrong second factor and a locked code all give one answer: ``LOOKUP_REFUSED``.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app, render_template, url_for
from flask_babel import force_locale
from sqlalchemy import and_, case, delete, literal, null, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import joinedload, selectinload

from app.catalog.models import Ticket
from app.catalog.services import tickets_of_payment_lines
from app.checkout.models import Quote, QuoteLine
from app.checkout.payment_flow import (
    StripeStart,
    begin_stripe_payment,
    claim_quote,
    complete_payment,
    find_payment_for_quote,
)
from app.checkout.services import CheckoutError, quote_payer_email, store_quote
from app.db import UTCDateTime
from app.debts.models import Debt
from app.debts.services import BLOCK_IN_PROGRESS, BLOCK_NOT_ONLINE, PayableItem, items_of_debt
from app.domain.money import format_money, minor_unit_exponent
from app.domain.references import InvalidReference, normalise_rf
from app.domain.second_factors import (
    DEFAULT_FACTOR,
    expected_factor,
    factor_matches,
    typed_factor,
)
from app.extensions import db
from app.guest.models import GuestLookupFailure
from app.i18n import gettext
from app.mail import MailDeliveryError, build_message
from app.mail.backends import backend_from_config
from app.payments.models import Payment, PaymentLine
from app.payments.providers import CardDetails, CardProvider
from app.payments.stripe_gateway import StripeGateway
from app.receipts.pdf import render_receipt_pdf
from app.receipts.services import receipt_qr, verification_url
from app.receipts.tickets import render_tickets_pdf
from app.sync.refresh import refresh_debtor

log = logging.getLogger("civicpay.guest")

#: Payments whose tickets may be shown: a partial refund leaves the others valid.
PAID_STATUSES = ("succeeded", "partially_refunded")

#: What a look-up found. REFUSED is the one answer for a wrong code, a wrong factor or a lock.
LOOKUP_REFUSED = "refused"
LOOKUP_PAYABLE = "payable"
LOOKUP_NOT_ONLINE = "not_online"
LOOKUP_IN_PROGRESS = "in_progress"
LOOKUP_NOTHING_DUE = "nothing_due"

#: Receipt numbers look like CP-7KQ2-M9XA-3F; people type them with or without the dashes.
_RECEIPT_NUMBER = re.compile(r"CP([0-9A-Z]{4})([0-9A-Z]{4})([0-9A-Z]{2})", re.ASCII)
_SPACES_AND_DASHES = re.compile(r"[\s\-\u2010-\u2014]+")
#: A card's last four digits as typed.
_LAST4 = re.compile(r"[0-9]{4}", re.ASCII)


@dataclass(frozen=True)
class GuestLookup:
    """The outcome of a look-up: refused, or the debt's next payable item and its state."""

    status: str
    item: PayableItem | None = None
    #: The server-priced quote, when the item can be paid now.
    quote: Quote | None = None


# -- codes ----------------------------------------------------------------------------------------


#: A plausible e-mail address (the form validates it fully on the sandbox path; JSON calls here).
EMAIL_SHAPE = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")


def normalise_code(value: str | None) -> str:
    """The payment code in one spelling: no spaces, upper case, RF references in compact form."""
    compact = "".join((value or "").split()).upper()
    if compact.startswith("RF"):
        try:
            return normalise_rf(compact)
        except InvalidReference:
            return compact  # matches no debt; refused like any unknown code
    return compact


def code_key(value: str | None) -> str:
    """SHA-256 (hex) of the normalised code: the lock row's key and the rate limiter's."""
    return hashlib.sha256(normalise_code(value).encode("utf-8")).hexdigest()


# -- look-up --------------------------------------------------------------------------------------


def _candidates(code: str) -> Sequence[Debt]:
    """Debts whose RF reference or ERP notice number is the code: one statement, found or not."""
    statement = (
        select(Debt)
        .where(or_(Debt.rf_reference == code, Debt.external_id == code))
        .options(joinedload(Debt.debtor), joinedload(Debt.installments))
        .order_by(Debt.id)
    )
    return db.session.scalars(statement).unique().all()


def _insert_for_dialect():
    name = db.session.get_bind().dialect.name
    return postgresql.insert if name == "postgresql" else sqlite.insert


def _record_failure(key: str, now: datetime) -> None:
    """Count one failure for the code in a single atomic upsert; lock it at GUEST_LOCK_AFTER."""
    lock_after = int(current_app.config["GUEST_LOCK_AFTER"])
    lock_end = now + timedelta(minutes=int(current_app.config["GUEST_LOCK_MINUTES"]))
    table = GuestLookupFailure.__table__
    lock_expired = and_(table.c.locked_until.is_not(None), table.c.locked_until <= now)
    still_locked = and_(table.c.locked_until.is_not(None), table.c.locked_until > now)
    # After a lock runs out the count starts again, so the next lock needs as many failures.
    failures = case((lock_expired, 1), else_=table.c.failures + 1)
    statement = _insert_for_dialect()(table).values(
        code_hash=key,
        failures=1,
        locked_until=lock_end if lock_after <= 1 else None,
        last_failed_at=now,
    )
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.code_hash],
        set_={
            "failures": failures,
            "locked_until": case(
                (still_locked, table.c.locked_until),
                (failures >= lock_after, literal(lock_end, UTCDateTime())),
                else_=null(),
            ),
            "last_failed_at": now,
        },
    )
    db.session.execute(statement)


@dataclass(frozen=True)
class _DecoyAgency:
    def guest_factor(self, kind: str) -> str:
        return DEFAULT_FACTOR


@dataclass(frozen=True)
class _DecoyDebtor:
    tax_id: str = "000000000"


@dataclass(frozen=True)
class _DecoyDebt:
    """Stands in for a debt when no debt has the code, so a miss does a hit's work on the factor."""

    agency: _DecoyAgency = _DecoyAgency()
    debtor: _DecoyDebtor = _DecoyDebtor()
    kind: str = "decoy"
    vehicle_plate: str | None = None
    principal_minor: int = 0
    currency: str = "EUR"


_DECOY = _DecoyDebt()


def _matching_debts(candidates: Sequence[Debt], typed: str) -> list[Debt]:
    """The candidates whose second factor, as their agency asks it, is the typed one."""
    matches = []
    # No debt has the code: the decoy's factor goes through the same steps (worked out, parsed,
    # hashed, compared in constant time), and never matches.
    for debt in candidates or (_DECOY,):
        factor = debt.agency.guest_factor(debt.kind)
        expected = expected_factor(
            factor,
            tax_id=debt.debtor.tax_id,
            vehicle_plate=debt.vehicle_plate,
            principal_minor=debt.principal_minor,
        )
        given = typed_factor(factor, typed, exponent=minor_unit_exponent(debt.currency))
        if factor_matches(expected, given) and debt is not _DECOY:
            matches.append(debt)
    return matches


def look_up_debt(code: str, typed_factor_value: str, now: datetime) -> GuestLookup:
    """Find the debt a guest names by code and second factor; any failure is LOOKUP_REFUSED."""
    floor = float(current_app.config["GUEST_LOOKUP_MIN_SECONDS"])
    if floor <= 0:
        return _look_up(code, typed_factor_value, now)  # constant-time by equal work, no sleep
    started = time.monotonic()
    try:
        return _look_up(code, typed_factor_value, now)
    finally:
        remaining = floor - (time.monotonic() - started)
        if remaining > 0:
            time.sleep(remaining)


def _look_up(code: str, typed: str, now: datetime) -> GuestLookup:
    normalised = normalise_code(code)
    key = code_key(code)
    lock = db.session.scalar(select(GuestLookupFailure).where(GuestLookupFailure.code_hash == key))
    locked = lock is not None and lock.locked_until is not None and lock.locked_until > now
    matches = _matching_debts(_candidates(normalised), typed or "")
    if locked or len(matches) != 1:
        # Two debts answering to one code and factor is refused too: a guest pays one known debt.
        _record_failure(key, now)
        db.session.flush()  # the request commits the failure even though it answers with a refusal
        return GuestLookup(LOOKUP_REFUSED)
    if lock is not None:
        db.session.execute(delete(GuestLookupFailure).where(GuestLookupFailure.code_hash == key))
    db.session.flush()
    return _payable_state(matches[0].id, now)


def _payable_state(debt_id: int, now: datetime) -> GuestLookup:
    """The debt's next open item (the next installment of an arrangement) and whether it can be paid."""
    debt = db.session.get(Debt, debt_id)
    assert debt is not None
    if debt.status == "open":
        # Ask the ERP (briefly, where our copy is stale) so the guest sees today's amount.
        outcome = refresh_debtor(debt.agency, debt.debtor.country, debt.debtor.tax_id, now, timeout=2.0)
        if outcome.refreshed:
            db.session.flush()
            debt = db.session.get(Debt, debt_id, populate_existing=True)
            assert debt is not None
    items = items_of_debt(debt, now) if debt.status == "open" else []
    if not items:
        return GuestLookup(LOOKUP_NOTHING_DUE)
    item = items[0]
    if item.blocked == BLOCK_NOT_ONLINE:
        return GuestLookup(LOOKUP_NOT_ONLINE, item=item)
    if item.blocked == BLOCK_IN_PROGRESS:
        return GuestLookup(LOOKUP_IN_PROGRESS, item=item)
    return GuestLookup(LOOKUP_PAYABLE, item=item, quote=quote_guest_item(item, now))


# -- quote and payment ----------------------------------------------------------------------------


def quote_guest_item(item: PayableItem, now: datetime) -> Quote:
    """Price one item for today and store it as a quote that belongs to no account."""
    return store_quote([item], user_id=None, currency=item.debt.currency, now=now)


def guest_quote(token: str, user_id: int | None = None) -> Quote | None:
    """The guest quote with this token, with what its page shows.

    A quote of an account (an order of an item sold only to signed-in citizens) is found only
    for that account's ``user_id``; any other account's quote is never found.
    """
    owner = Quote.user_id.is_(None) if user_id is None else or_(Quote.user_id.is_(None), Quote.user_id == user_id)
    return db.session.scalar(
        select(Quote)
        .where(Quote.token == token, owner)
        .options(
            selectinload(Quote.lines).selectinload(QuoteLine.agency),
            selectinload(Quote.lines).selectinload(QuoteLine.debt),
            selectinload(Quote.lines).selectinload(QuoteLine.installment),
            selectinload(Quote.lines).selectinload(QuoteLine.item),
        )
    )


def pay_guest_quote(
    token: str,
    card: CardDetails,
    provider: CardProvider,
    now: datetime,
    *,
    payer_email: str | None = None,
    user_id: int | None = None,
) -> Payment:
    """Claim the guest quote's debts and charge the card its total; raises CheckoutError or PaymentDeclined."""
    quote = guest_quote(token, user_id)
    if quote is None:
        raise CheckoutError("unknown_quote")
    channel = "account" if quote.user_id is not None else "guest"
    payment = claim_quote(
        quote,
        provider_name=provider.name,
        channel=channel,
        user_id=quote.user_id,
        now=now,
        payer_email=payer_email.strip().lower() if payer_email else None,
    )
    return complete_payment(payment, provider, card)


def paid_reference(quote: Quote) -> str | None:
    """The receipt number of the successful payment of a quote, if any."""
    return db.session.scalar(
        select(Payment.reference).where(Payment.quote_id == quote.id, Payment.status == "succeeded")
    )


# -- receipts -------------------------------------------------------------------------------------


def _with_lines(statement):
    return statement.options(
        selectinload(Payment.lines).selectinload(PaymentLine.agency),
        selectinload(Payment.lines).selectinload(PaymentLine.debt),
        selectinload(Payment.lines).selectinload(PaymentLine.installment),
        selectinload(Payment.lines).selectinload(PaymentLine.item),
    )


def guest_receipt(reference: str) -> Payment | None:
    """The successful guest payment with this receipt number (callers check the visitor may see it)."""
    return db.session.scalar(
        _with_lines(
            select(Payment).where(
                Payment.reference == reference, Payment.channel == "guest", Payment.status == "succeeded"
            )
        )
    )


def normalise_receipt_number(value: str | None) -> str:
    """A receipt number as printed (CP-7KQ2-M9XA-3F), however it was typed."""
    compact = _SPACES_AND_DASHES.sub("", value or "").upper()
    match = _RECEIPT_NUMBER.fullmatch(compact)
    return "CP-{}-{}-{}".format(*match.groups()) if match else compact


def find_guest_receipt(reference: str, detail: str) -> Payment | None:
    """A guest receipt by its number plus the payer's e-mail or the card's last four digits.

    One statement and one constant-time comparison whether or not the number exists, so the
    answer for a wrong number and a wrong detail is the same.
    """
    row = db.session.execute(
        select(Payment.id, Payment.card_last4, Quote.payer_email)
        .outerjoin(Quote, Quote.id == Payment.quote_id)
        .where(
            Payment.reference == normalise_receipt_number(reference),
            Payment.channel == "guest",
            Payment.status == "succeeded",
        )
    ).first()
    detail = (detail or "").strip()
    if "@" in detail:
        given: str | None = detail.lower()
        expected = row.payer_email if row is not None else None
    else:
        digits = "".join(ch for ch in detail if ch.isdigit())
        given = digits if _LAST4.fullmatch(digits) else None
        expected = row.card_last4 if row is not None else None
    if not factor_matches(expected, given) or row is None:
        return None
    return guest_receipt(normalise_receipt_number(reference))


def guest_receipt_pdf(payment: Payment, language: str) -> bytes:
    """The PDF receipt of a guest payment, nameless, in the visitor's language."""
    url = verification_url(payment)
    return render_receipt_pdf(payment, payer_name=None, verification_url=url, qr=receipt_qr(url), language=language)


def send_receipt_copy(payment: Payment, to: str, language: str) -> bool:
    """E-mail the receipt (PDF attached) to the guest; a failure is logged, never shown as a payment error."""
    with force_locale(language):
        subject = gettext("Your Civic Pay receipt %(reference)s", reference=payment.reference)
        amount = format_money(payment.amount_minor, payment.currency, language)
        paragraphs = [
            gettext("Thank you for your payment of %(amount)s.", amount=amount),
            gettext("Your receipt %(reference)s is attached as a PDF.", reference=payment.reference),
            gettext("Anyone can check this receipt at %(url)s", url=verification_url(payment)),
            gettext(
                "To see this receipt again on Civic Pay, enter its number and this e-mail address at %(url)s",
                url=_external_url("guest.find_receipt"),
            ),
        ]
        text = "\n\n".join([*paragraphs, "Civic Pay"]) + "\n"
        html = render_template("guest/email.html", subject=subject, paragraphs=paragraphs, language=language)
        pdf = guest_receipt_pdf(payment, language)
    message = build_message(to, subject, text, html)
    message.add_attachment(pdf, maintype="application", subtype="pdf", filename=f"receipt-{payment.reference}.pdf")
    try:
        backend_from_config(current_app.config, current_app.instance_path).send(message)
    except MailDeliveryError as error:
        log.error("Could not send the copy of guest receipt %s: %s", payment.reference, error)
        return False
    return True


def _external_url(endpoint: str, **values: str) -> str:
    """An absolute link for an e-mail, on PUBLIC_URL when it is set."""
    public = current_app.config.get("PUBLIC_URL")
    if public:
        return public.rstrip("/") + url_for(endpoint, **values)
    return url_for(endpoint, _external=True, **values)


def begin_guest_card_payment(
    token: str, gateway: StripeGateway, now: datetime, *, payer_email: str | None, user_id: int | None = None
) -> StripeStart:
    """Stripe: claim the guest quote's debt and open the SetupIntent the browser confirms."""
    quote = guest_quote(token, user_id)
    if quote is None:
        raise CheckoutError("unknown_quote")
    address = payer_email.strip().lower() if payer_email else None
    if address and not EMAIL_SHAPE.fullmatch(address):
        raise CheckoutError("bad_email")
    channel = "account" if quote.user_id is not None else "guest"
    return begin_stripe_payment(
        quote, user_id=quote.user_id, channel=channel, gateway=gateway, now=now, payer_email=address
    )


def guest_card_payment(token: str, reference: str, user_id: int | None = None) -> Payment | None:
    """The guest payment with this receipt number for this guest quote, or None."""
    quote = guest_quote(token, user_id)
    return find_payment_for_quote(quote, reference, quote.user_id) if quote is not None else None


def guest_quote_email(payment: Payment) -> str | None:
    """The receipt address the guest gave for this payment's quote, if any."""
    return quote_payer_email(payment.quote_id)


# -- tickets --------------------------------------------------------------------------------------


def order_tickets(
    reference: str, user_id: int | None, in_session: bool
) -> tuple[Payment, list[tuple[PaymentLine, Ticket]]] | None:
    """A paid order's tickets, for its account's owner or the guest session that paid it; else None."""
    payment = db.session.scalar(
        _with_lines(select(Payment).where(Payment.reference == reference, Payment.status.in_(PAID_STATUSES)))
    )
    if payment is None:
        return None
    if payment.user_id is not None:
        if payment.user_id != user_id:
            return None
    elif not in_session:
        return None
    lines = {line.id: line for line in payment.lines}
    tickets = [
        (lines[ticket.payment_line_id], ticket)
        for ticket in tickets_of_payment_lines(lines)
        if ticket.payment_line_id is not None and ticket.status in ("issued", "used")
    ]
    if not tickets:
        return None
    return payment, tickets


def tickets_pdf(payment: Payment, tickets: list[tuple[PaymentLine, Ticket]], language: str) -> bytes:
    """The order's tickets as a PDF in the visitor's language."""
    return render_tickets_pdf(payment, tickets, language)


def payment_ticket_pairs(payment: Payment) -> list[tuple[PaymentLine, Ticket]]:
    """(line, ticket) for every ticket the payment's lines were issued, used or cancelled ones included."""
    lines = {line.id: line for line in payment.lines if line.item_id is not None}
    return [
        (lines[ticket.payment_line_id], ticket)
        for ticket in tickets_of_payment_lines(lines)
        if ticket.payment_line_id in lines
    ]
