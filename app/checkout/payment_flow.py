"""Paying a quote: the one owner of the Quote → Payment step, for the sandbox and for Stripe.

Claim, start, pay, confirm, fail; Stripe's begin, authorise, settle, give up, its webhooks and
the reconciler. The payments package keeps the ledger (``Payment`` and its lines), the card
providers, refunds and history; this module is the only one that turns a quote into a payment
and a payment into paid debts, and it announces the outcome (``payment.succeeded``,
``payment.failed``) for receipts, the ERP write-back and whoever else listens.

Transactions. The request, CLI command or worker tick that calls in commits at its edge, but
this flow must commit early in a few named places (``commit_early``): the claim stands before
any card is charged, a charge row exists before the provider hears of it, and a recorded charge
is never left to a later failure of the caller.

Stripe (each step safe to repeat):

1. ``begin_stripe_payment`` claims the quote's debts for a pending payment (committed first),
   then creates a Stripe customer and a SetupIntent; the browser confirms the SetupIntent with the
   card through Stripe.js, so card data never touches this server.
2. ``authorize_stripe_payment`` attaches that card and, per agency, writes a charge row, creates a
   PaymentIntent (manual capture; its id stored at once) and confirms it.
3. ``settle_stripe_payment`` looks at every charge: when all are authorised it captures them and
   records the payment as succeeded; when one failed it releases the others and records the
   failure, freeing the debts; otherwise (3-D Secure pending) it waits. The browser's return, the
   webhook and the worker's reconciler all call it, so whichever comes first finishes the job and
   the others change nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from app import events
from app.agencies.models import Agency
from app.catalog.services import SoldOut, hold_seats, issue_tickets, payment_hold_until, release_seats
from app.checkout.models import Quote, QuoteLine
from app.checkout.services import CheckoutError, get_user_quote
from app.db import utcnow
from app.debts.models import Debt, Installment
from app.domain.references import readable_code
from app.extensions import db
from app.payments.models import Payment, PaymentLine, ProviderCharge, ProviderEvent
from app.payments.providers import CardDetails, CardProvider, ChargeResult, get_provider
from app.payments.services import lock_payment
from app.payments.stripe_gateway import (
    IntentState,
    ProviderUnavailable,
    StripeGateway,
    payment_intent_params,
)
from app.unit_of_work import commit_early, end_read_only_transaction

log = logging.getLogger("civicpay.checkout.payments")


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
    quote: Quote,
    *,
    provider_name: str,
    channel: str,
    user_id: int | None,
    now: datetime,
    payer_email: str | None = None,
) -> Payment:
    """Create a pending payment for an open quote and claim each of its debts, in one commit.

    Raises CheckoutError("quote_used" | "quote_expired" | "taken"). Callers check that the
    quote belongs to whoever is paying; this function trusts nothing else from them.
    ``payer_email`` (a guest's receipt address) is kept on the quote with the claim.
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
    if payer_email:
        quote.payer_email = payer_email
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
    commit_early("the claim stands before any card is charged, and frees no lock while the card is")
    return payment


def complete_payment(payment: Payment, provider: CardProvider, card: CardDetails) -> Payment:
    """Charge the card for a pending payment and record success or failure."""
    result = provider.charge(
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        card=card,
        idempotency_key=payment.reference,
    )
    commit_early("the provider's answer is kept before we act on it: if we stop here, the reconciler finds it")
    return _record_charge_result(payment.id, result)


def _record_charge_result(payment_id: int, result: ChargeResult) -> Payment:
    """Confirm or fail the payment by the provider's answer; PaymentDeclined when declined."""
    if result.succeeded:
        return confirm_payment(
            payment_id,
            provider_reference=result.provider_reference,
            card_brand=result.card_brand,
            card_last4=result.card_last4,
        )
    failed = fail_payment(
        payment_id,
        provider_reference=result.provider_reference,
        reason=result.decline_code or "declined",
        card_last4=result.card_last4,
    )
    raise PaymentDeclined(failed)


def pay_quote(user_id: int, token: str, card: CardDetails, provider: CardProvider, now: datetime) -> Payment:
    """Pay a quote by card: claim, charge, confirm. Raises CheckoutError or PaymentDeclined."""
    payment = start_payment(user_id, token, provider, now)
    return complete_payment(payment, provider, card)


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
    # Receipts, the ERP write-back and the rest write their outbox messages in this transaction:
    # they exist if and only if the payment does.
    events.payment_succeeded.send(payment)
    commit_early("a charge was taken: its record stands before anything else can fail")
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


def fail_payment(payment_id: int, *, provider_reference: str | None, reason: str, card_last4: str | None) -> Payment:
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
    events.payment_failed.send(payment)
    commit_early("the debts are free again for another try as soon as the decline is known")
    log.info("payment %s declined: %s", payment.reference, reason)
    return payment


def find_payment_for_quote(quote: Quote, reference: str, user_id: int | None) -> Payment | None:
    """The payment with this receipt number made for this quote by this payer, or None."""
    owner = Payment.user_id.is_(None) if user_id is None else Payment.user_id == user_id
    return db.session.scalar(select(Payment).where(Payment.reference == reference, Payment.quote_id == quote.id, owner))


# -- Stripe ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CardStep:
    """Where a Stripe payment stands, for the browser."""

    #: "succeeded", "failed", "requires_action" (3-D Secure in the browser) or "pending".
    status: str
    payment: Payment
    #: Client secrets of the PaymentIntents the browser must authenticate (3-D Secure).
    action_secrets: list[str] = field(default_factory=list)
    #: The failure code when failed (card_declined, insufficient_funds, authentication_failed ...).
    failure_code: str | None = None


@dataclass(frozen=True)
class StripeStart:
    """A pending payment and the SetupIntent secret the browser confirms with the card."""

    payment: Payment
    setup_client_secret: str


def _pending_stripe_payment(quote: Quote) -> Payment | None:
    return db.session.scalar(
        select(Payment)
        .where(Payment.quote_id == quote.id, Payment.status == "pending", Payment.provider == "stripe")
        .order_by(Payment.id.desc())
    )


def begin_stripe_payment(
    quote: Quote,
    *,
    user_id: int | None,
    channel: str,
    gateway: StripeGateway,
    now: datetime,
    payer_email: str | None = None,
) -> StripeStart:
    """Claim the quote's debts and open a SetupIntent; a repeat for the same quote reuses both.

    ``payer_email`` (a guest's receipt address) is kept on the quote with the claim.
    """
    # Lock the quote first: two tabs starting at once make one payment, and on SQLite the write
    # lock is taken before any read (a read-then-write transaction cannot wait its turn there).
    quote_id = quote.id
    end_read_only_transaction()
    db.session.execute(
        update(Quote)
        .where(Quote.id == quote_id)
        .values(status=Quote.status)
        .execution_options(synchronize_session=False)
    )
    quote = db.session.scalars(
        select(Quote).where(Quote.id == quote_id).execution_options(populate_existing=True)
    ).one()
    payment = _pending_stripe_payment(quote)
    if payment is not None and payment.provider_setup and not payment.charges:
        setup = gateway.retrieve_setup_intent(payment.provider_setup)
        if setup.status != "succeeded" and setup.client_secret:
            return StripeStart(payment, setup.client_secret)
    if payment is not None and payment.charges:
        # The card was already taken for this quote: finish that payment, never start a second.
        raise PaymentInProgress(payment)
    if payment is None:
        payment = claim_quote(
            quote, provider_name="stripe", channel=channel, user_id=user_id, now=now, payer_email=payer_email
        )
    payment_id, reference = payment.id, payment.reference
    customer, earlier_setup = payment.provider_customer, payment.provider_setup
    commit_early("the claim stands before Stripe is called; no lock is held meanwhile")
    try:
        # The customer's idempotency key is the payment's: a retry gets the same customer.
        customer = customer or gateway.create_customer(reference)
        # A new key when a SetupIntent already exists, or Stripe would hand back the old one.
        setup = gateway.create_setup_intent(customer, reference, earlier_setup or "first")
    except ProviderUnavailable:
        fail_payment(payment_id, provider_reference=None, reason="provider_unavailable", card_last4=None)
        raise
    payment = lock_payment(payment_id)
    payment.provider_customer, payment.provider_setup = customer, setup.id
    commit_early("Stripe's customer and SetupIntent are recorded before the browser uses them")
    assert setup.client_secret is not None
    return StripeStart(payment, setup.client_secret)


class PaymentInProgress(Exception):
    """The quote already has a payment whose card was taken; it must be finished, not restarted."""

    def __init__(self, payment: Payment) -> None:
        super().__init__(payment.reference)
        self.payment = payment


def _locked_charge(payment_id: int, agency_id: int) -> ProviderCharge:
    """The payment's charge for one agency, in a new transaction holding the payment's lock."""
    payment = lock_payment(payment_id)
    return next(charge for charge in payment.charges if charge.agency_id == agency_id)


def _shares(payment: Payment) -> list[tuple[int, int]]:
    """(agency id, minor units) of each agency's lines in the payment, by agency id."""
    totals: dict[int, int] = {}
    for line in payment.lines:
        totals[line.agency_id] = totals.get(line.agency_id, 0) + line.amount_minor
    return sorted(totals.items())


def _apply(charge: ProviderCharge, state: IntentState) -> None:
    """Mirror Stripe's status of the intent on our charge row."""
    if state.amount != charge.amount_minor or state.currency != charge.currency:
        # Never capture an amount we did not compute: treat it as a failure and release it.
        charge.status = "failed"
        charge.failure_code = "amount_mismatch"
        return
    if state.status == "requires_capture":
        charge.status = "authorized"
    elif state.status == "succeeded":
        charge.status = "captured"
    elif state.status == "requires_action":
        charge.status = "requires_action"
    elif state.status == "canceled":
        charge.status = "canceled" if charge.status != "failed" else "failed"
    elif state.status == "requires_payment_method" and (state.failure_code or charge.status != "creating"):
        charge.status = "failed"
        charge.failure_code = state.failure_code or charge.failure_code or "card_declined"


def authorize_stripe_payment(payment_id: int, gateway: StripeGateway) -> CardStep:
    """After the browser confirmed the card: one authorised PaymentIntent per agency, then settle."""
    payment = lock_payment(payment_id)
    if payment.status != "pending" or payment.provider != "stripe" or not payment.provider_setup:
        db.session.rollback()
        return _step(payment_id)
    setup = gateway.retrieve_setup_intent(payment.provider_setup)
    if setup.status != "succeeded" or not setup.payment_method:
        db.session.rollback()
        return CardStep("failed", db.session.get(Payment, payment_id), failure_code="card_not_confirmed")
    brand, last4 = gateway.attach_card(setup.payment_method, payment.provider_customer or "")
    payment.card_brand, payment.card_last4 = brand, last4
    existing = {charge.agency_id: charge for charge in payment.charges}
    for agency_id, amount in _shares(payment):
        if agency_id not in existing:
            charge = ProviderCharge(agency_id=agency_id, amount_minor=amount, currency=payment.currency)
            payment.charges.append(charge)
            existing[agency_id] = charge
    agency_ids = [agency_id for agency_id, _amount in _shares(payment)]
    payment_method, customer, reference = setup.payment_method, payment.provider_customer or "", payment.reference
    commit_early("the charge rows exist before Stripe hears of them: a retry finds them")

    for agency_id in agency_ids:
        # Each write transaction starts by locking the payment (see payments.services.lock_payment): never read-then-write.
        charge = _locked_charge(payment_id, agency_id)
        if charge.status != "creating":
            continue
        agency = db.session.get(Agency, agency_id)
        assert agency is not None
        if charge.provider_reference is None:
            params = payment_intent_params(
                amount_minor=charge.amount_minor,
                currency=charge.currency,
                customer=customer,
                payment_method=payment_method,
                metadata={"payment": reference, "agency": agency.code, "charge": str(charge.id)},
                destination=agency.stripe_account,
            )
            intent = gateway.create_payment_intent(params, idempotency_key=f"{reference}:{agency.code}")
            charge.provider_reference = intent.id
            commit_early("the intent's id is kept before it is confirmed, so a webhook finds its charge")
            charge = _locked_charge(payment_id, agency_id)
        state = gateway.confirm_payment_intent(charge.provider_reference or "")
        _apply(charge, state)
        failed = charge.status == "failed"
        commit_early("each agency's charge is recorded, and the payment's lock released, before the next")
        if failed:
            break  # no point authorising the rest: the basket is paid whole or not at all
    return settle_stripe_payment(payment_id, gateway)


def settle_stripe_payment(payment_id: int, gateway: StripeGateway) -> CardStep:
    """Ask Stripe about every charge and finish the payment if it can be finished."""
    payment = lock_payment(payment_id)
    if payment.status != "pending":
        db.session.rollback()
        return _step(payment_id)
    if not payment.charges:
        db.session.rollback()
        return CardStep("pending", payment)
    for charge in payment.charges:
        if charge.provider_reference and charge.status not in ("failed", "canceled", "captured"):
            _apply(charge, gateway.retrieve_payment_intent(charge.provider_reference))
    statuses = {charge.status for charge in payment.charges}
    if statuses & {"failed", "canceled"}:
        failure = next((c.failure_code for c in payment.charges if c.failure_code), None) or "card_declined"
        for charge in payment.charges:
            if charge.status in ("authorized", "requires_action") and charge.provider_reference:
                _apply(charge, gateway.cancel_payment_intent(charge.provider_reference))
                if charge.status != "failed":
                    charge.status = "canceled"
            elif charge.status == "creating":
                charge.status = "canceled"
        captured = [charge for charge in payment.charges if charge.status == "captured"]
        if captured:
            # Money was taken for part of the basket (only possible if a capture raced a failure):
            # never lose it silently.
            log.error("payment %s failed after %d captured charge(s): refund needed", payment.reference, len(captured))
        db.session.flush()
        failed = fail_payment(payment.id, provider_reference=None, reason=failure, card_last4=payment.card_last4)
        return CardStep("failed", failed, failure_code=failure)
    if statuses <= {"authorized", "captured"}:
        for charge in payment.charges:
            if charge.status == "authorized" and charge.provider_reference:
                state = gateway.capture_payment_intent(
                    charge.provider_reference, idempotency_key=f"{payment.reference}:{charge.agency_id}:capture"
                )
                _apply(charge, state)
        db.session.flush()
        if all(charge.status == "captured" for charge in payment.charges):
            first = payment.charges[0].provider_reference or ""
            confirmed = confirm_payment(
                payment.id, provider_reference=first, card_brand=payment.card_brand, card_last4=payment.card_last4
            )
            return CardStep("succeeded", confirmed)
        commit_early("the captures done are recorded before the lock is released")
        return CardStep("pending", payment)
    secrets = []
    for charge in payment.charges:
        if charge.status == "requires_action" and charge.provider_reference:
            secret = gateway.retrieve_payment_intent(charge.provider_reference).client_secret
            if secret:
                secrets.append(secret)
    commit_early(
        "what Stripe said of each charge is kept, and the payment's lock released, for the browser's 3-D Secure"
    )
    return CardStep("requires_action" if secrets else "pending", payment, action_secrets=secrets)


def _step(payment_id: int) -> CardStep:
    payment = db.session.get(Payment, payment_id)
    assert payment is not None
    if payment.status == "succeeded":
        return CardStep("succeeded", payment)
    if payment.status == "failed":
        return CardStep("failed", payment, failure_code=payment.failure_reason)
    return CardStep("pending", payment)


def give_up_stripe_payment(payment_id: int, gateway: StripeGateway, reason: str = "abandoned") -> Payment:
    """Cancel what Stripe holds for an unfinished payment and free its debts."""
    payment = lock_payment(payment_id)
    if payment.status != "pending":
        db.session.rollback()
        return payment
    for charge in payment.charges:
        if charge.provider_reference and charge.status in ("creating", "authorized", "requires_action"):
            state = gateway.cancel_payment_intent(charge.provider_reference)
            _apply(charge, state)
            if charge.status != "captured":
                charge.status = "canceled"
        elif charge.status == "creating":
            charge.status = "canceled"
    db.session.flush()
    return fail_payment(payment.id, provider_reference=None, reason=reason, card_last4=payment.card_last4)


# -- webhooks -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookOutcome:
    """What a webhook call did, for the response and the log."""

    processed: bool
    detail: str


def handle_stripe_event(event: dict, agency: Agency, gateway: StripeGateway) -> WebhookOutcome:
    """Process a verified event once: payment intent events settle the payment they belong to."""
    event_id = event.get("id")
    if not event_id:
        return WebhookOutcome(False, "no event id")
    if db.session.get(ProviderEvent, event_id) is not None:
        db.session.rollback()
        return WebhookOutcome(False, "already processed")
    event_type = event.get("type", "")
    agency_id = agency.id
    detail = "ignored"
    if event_type.startswith("payment_intent."):
        intent = event.get("data", {}).get("object", {})
        detail = _settle_for_intent(intent, agency, gateway)
    if detail == ANOTHER_AGENCY:
        # Stripe sends every event to every endpoint: the right agency's endpoint processes it.
        db.session.rollback()
        return WebhookOutcome(False, detail)
    # The record of the event is written in a transaction of its own whose first statement is
    # the write (on SQLite a read first could not wait for the browser's request to finish).
    commit_early("what the event settled stands on its own")
    db.session.add(ProviderEvent(id=event_id, provider="stripe", type=event_type, agency_id=agency_id))
    commit_early("the event is marked processed; a duplicate delivery racing it fails on the primary key here")
    return WebhookOutcome(True, detail)


ANOTHER_AGENCY = "another agency's payment"


def _settle_for_intent(intent: dict, agency: Agency, gateway: StripeGateway) -> str:
    metadata = intent.get("metadata") or {}
    if metadata.get("agency") and metadata["agency"] != agency.code:
        return ANOTHER_AGENCY
    charge = db.session.scalar(select(ProviderCharge).where(ProviderCharge.provider_reference == intent.get("id")))
    payment = None
    if charge is not None:
        payment = charge.payment
    elif metadata.get("payment"):
        # The event beat our own commit of the intent's id: find the payment by its reference.
        payment = db.session.scalar(select(Payment).where(Payment.reference == metadata["payment"]))
    if payment is None or payment.provider != "stripe":
        return "unknown payment"
    if charge is not None and charge.agency_id != agency.id:
        return ANOTHER_AGENCY
    step = settle_stripe_payment(payment.id, gateway)
    return f"payment {payment.reference} {step.status}"


# -- reconciler -----------------------------------------------------------------------------------


@dataclass
class ReconcileReport:
    """What one reconciler pass did."""

    checked: int = 0
    succeeded: int = 0
    failed: int = 0
    abandoned: int = 0
    errors: int = 0

    def add(self, other: ReconcileReport) -> None:
        """Count another pass's figures in these (the sandbox's and Stripe's in one line)."""
        self.checked += other.checked
        self.succeeded += other.succeeded
        self.failed += other.failed
        self.abandoned += other.abandoned
        self.errors += other.errors

    def __str__(self) -> str:
        return (
            f"{self.checked} checked, {self.succeeded} succeeded, {self.failed} failed, "
            f"{self.abandoned} abandoned, {self.errors} errors"
        )


def reconcile_stripe_payments(now: datetime | None = None, gateway: StripeGateway | None = None) -> ReconcileReport:
    """Ask Stripe about payments pending too long: finish them, or give them up and free the debts."""
    now = now or utcnow()
    config = current_app.config
    ask_before = now - timedelta(minutes=config["STRIPE_RECONCILE_AFTER_MINUTES"])
    give_up_before = now - timedelta(minutes=config["STRIPE_ABANDON_AFTER_MINUTES"])
    ids = db.session.scalars(
        select(Payment.id)
        .where(Payment.provider == "stripe", Payment.status == "pending", Payment.created_at <= ask_before)
        .order_by(Payment.id)
    ).all()
    db.session.rollback()
    report = ReconcileReport()
    if not ids:
        return report
    gateway = gateway or StripeGateway.from_config()
    for payment_id in ids:
        report.checked += 1
        try:
            step = settle_stripe_payment(payment_id, gateway)
            if step.status == "succeeded":
                report.succeeded += 1
            elif step.status == "failed":
                report.failed += 1
            elif step.payment.created_at <= give_up_before:
                give_up_stripe_payment(payment_id, gateway)
                report.abandoned += 1
        except ProviderUnavailable:
            db.session.rollback()
            report.errors += 1
            log.warning("reconciler: Stripe unavailable for payment id %s; next tick tries again", payment_id)
    return report


def reconcile_sandbox_payments(now: datetime | None = None) -> ReconcileReport:
    """Finish or give up sandbox payments left pending: the same repair as Stripe's reconciler.

    The sandbox charges within the request that claimed the debts, so a payment still pending
    after ``SANDBOX_RECONCILE_AFTER_MINUTES`` was interrupted: if the sandbox recorded a charge
    for it, the payment is confirmed (or failed) by that answer; if not, no card was charged and
    the payment is given up, freeing its debts.
    """
    now = now or utcnow()
    ask_before = now - timedelta(minutes=current_app.config["SANDBOX_RECONCILE_AFTER_MINUTES"])
    pending = db.session.execute(
        select(Payment.id, Payment.reference)
        .where(Payment.provider == "sandbox", Payment.status == "pending", Payment.created_at <= ask_before)
        .order_by(Payment.id)
    ).all()
    db.session.rollback()
    report = ReconcileReport()
    provider = get_provider("sandbox")
    for payment_id, reference in pending:
        report.checked += 1
        result = provider.find_charge(reference)
        db.session.rollback()
        if result is None:
            fail_payment(payment_id, provider_reference=None, reason="abandoned", card_last4=None)
            report.abandoned += 1
            continue
        try:
            payment = _record_charge_result(payment_id, result)
        except PaymentDeclined:
            report.failed += 1
        else:
            report.succeeded += payment.status == "succeeded"
    return report
