"""Refunds: staff give back all or part of their agency's share of a payment, exactly once.

The staff member's form carries the amount that was refundable when the page was drawn; the
server refuses the refund if that changed meanwhile (a double click, or two staff at once). The
refund row is committed, holding its amount, before the provider is asked; the provider is asked
with the refund's own reference as idempotency key; the outcome, the payment's new status, any
reopened debts and the outbox messages (ERP write-back, the citizen's e-mail) are one transaction.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from app import events
from app.agencies.models import Agency
from app.catalog.services import void_tickets
from app.db import utcnow
from app.extensions import db
from app.payments.models import Payment, PaymentLine, ProviderCharge, Refund
from app.payments.services import lock_payment
from app.payments.stripe_gateway import ProviderUnavailable, StripeGateway
from app.unit_of_work import commit_early

log = logging.getLogger("civicpay.payments.refunds")

#: Payment statuses a refund can start from.
REFUNDABLE_STATUSES = ("succeeded", "partially_refunded")
#: Refund statuses that hold their amount (a pending one may still succeed).
HOLDING = ("pending", "succeeded")


class RefundRefused(Exception):
    """The refund cannot be made; ``code`` names why: changed, too_much, nothing, not_refundable, provider."""

    def __init__(self, code: str, *, available_minor: int | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.available_minor = available_minor


@dataclass(frozen=True)
class RefundableShare:
    """An agency's share of a payment: what it received and what can still go back."""

    paid_minor: int
    refunded_minor: int

    @property
    def available_minor(self) -> int:
        """minor units that can still be refunded."""
        return self.paid_minor - self.refunded_minor


def refundable_share(payment_id: int, agency_id: int) -> RefundableShare:
    """The agency's paid amount of the payment and what its refunds already hold."""
    paid = db.session.scalar(
        select(func.coalesce(func.sum(PaymentLine.amount_minor), 0)).where(
            PaymentLine.payment_id == payment_id, PaymentLine.agency_id == agency_id
        )
    )
    refunded = db.session.scalar(
        select(func.coalesce(func.sum(Refund.amount_minor), 0)).where(
            Refund.payment_id == payment_id, Refund.agency_id == agency_id, Refund.status.in_(HOLDING)
        )
    )
    return RefundableShare(paid_minor=int(paid or 0), refunded_minor=int(refunded or 0))


def refunds_of(payment_id: int, agency_id: int) -> list[Refund]:
    """The agency's refunds of a payment, oldest first."""
    return list(
        db.session.scalars(
            select(Refund).where(Refund.payment_id == payment_id, Refund.agency_id == agency_id).order_by(Refund.id)
        )
    )


def refund_payment(
    *,
    payment_id: int,
    agency: Agency,
    amount_minor: int,
    expected_available_minor: int,
    reason: str,
    user_id: int | None,
    now: datetime | None = None,
) -> Refund:
    """Refund ``amount_minor`` of the agency's share; raises RefundRefused, or ProviderUnavailable."""
    now = now or utcnow()
    agency_id = agency.id
    payment = lock_payment(payment_id)
    if payment.status not in REFUNDABLE_STATUSES:
        db.session.rollback()
        raise RefundRefused("not_refundable")
    share = refundable_share(payment_id, agency_id)
    if share.available_minor != expected_available_minor:
        db.session.rollback()
        raise RefundRefused("changed", available_minor=share.available_minor)
    if amount_minor <= 0:
        db.session.rollback()
        raise RefundRefused("nothing", available_minor=share.available_minor)
    if amount_minor > share.available_minor:
        db.session.rollback()
        raise RefundRefused("too_much", available_minor=share.available_minor)
    count = db.session.scalar(select(func.count()).select_from(Refund).where(Refund.payment_id == payment_id)) or 0
    refund = Refund(
        reference=f"{payment.reference}-R{count + 1}",
        payment_id=payment_id,
        agency_id=agency_id,
        amount_minor=amount_minor,
        currency=payment.currency,
        status="pending",
        reason=reason.strip(),
        requested_by_user_id=user_id,
        created_at=now,
    )
    db.session.add(refund)
    commit_early("the amount is held before the provider hears of it")
    refund_id, provider = refund.id, payment.provider

    try:
        provider_reference = _ask_provider(provider, refund_id)
    except RefundFailed as failed:
        return _finish(refund_id, succeeded=False, failure_code=failed.code)
    except ProviderUnavailable:
        # Unknown whether Stripe refunded: the row stays pending, holding its amount, and the
        # reconciler (or a retry of the same refund) asks again with the same idempotency key.
        log.warning("refund %s: provider unavailable; left pending", refund_id)
        raise
    return _finish(refund_id, succeeded=True, provider_reference=provider_reference)


class RefundFailed(Exception):
    """The provider refused the refund."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _ask_provider(provider: str, refund_id: int) -> str:
    """Give the money back through the payment's provider; its refund id."""
    refund = db.session.get(Refund, refund_id)
    assert refund is not None
    if provider == "sandbox":
        return "sbx_re_" + hashlib.sha256(refund.reference.encode()).hexdigest()[:24]
    if provider != "stripe":
        raise RefundFailed("unknown_provider")
    charge = db.session.scalar(
        select(ProviderCharge).where(
            ProviderCharge.payment_id == refund.payment_id, ProviderCharge.agency_id == refund.agency_id
        )
    )
    if charge is None or charge.provider_reference is None or charge.status != "captured":
        raise RefundFailed("no_charge")
    agency = db.session.get(Agency, refund.agency_id)
    gateway = StripeGateway.from_config()
    try:
        return gateway.refund(
            charge.provider_reference,
            refund.amount_minor,
            idempotency_key=refund.reference,
            reverse_transfer=bool(agency is not None and agency.stripe_account),
        )
    except ValueError as error:
        raise RefundFailed(str(error) or "refused") from None


def _finish(
    refund_id: int, *, succeeded: bool, provider_reference: str | None = None, failure_code: str | None = None
) -> Refund:
    """Record the provider's answer with everything that follows from it, in one transaction."""
    refund = db.session.get(Refund, refund_id)
    assert refund is not None
    payment = lock_payment(refund.payment_id)
    refund = db.session.get(Refund, refund_id)
    assert refund is not None
    if refund.status != "pending":
        db.session.rollback()
        return refund
    refund.completed_at = utcnow()
    if not succeeded:
        refund.status = "failed"
        refund.failure_code = failure_code
        commit_early("the provider's refusal is recorded at once, releasing the amount it held")
        log.warning("refund %s of payment %s failed: %s", refund.reference, payment.reference, failure_code)
        return refund
    refund.status = "succeeded"
    refund.provider_reference = provider_reference
    db.session.flush()
    refunded_total = db.session.scalar(
        select(func.coalesce(func.sum(Refund.amount_minor), 0)).where(
            Refund.payment_id == payment.id, Refund.status == "succeeded"
        )
    )
    payment.status = "refunded" if refunded_total >= payment.amount_minor else "partially_refunded"
    agency = db.session.get(Agency, refund.agency_id)
    share = refundable_share(payment.id, refund.agency_id)
    if share.available_minor == 0:
        # Fully refunded: the agency's tickets of this payment no longer let anyone in.
        void_tickets([line.id for line in payment.lines if line.agency_id == refund.agency_id and line.item_id])
    if agency is not None and agency.reopen_debts_on_refund and share.available_minor == 0:
        _reopen_debts(payment, refund.agency_id)
        refund.reopened_debts = True
    # The ERP write-back and the payer's e-mail are written in this transaction by their listeners.
    events.refund_made.send(refund, payment=payment)
    commit_early("money went back: its record stands before anything else can fail")
    log.info("refund %s of payment %s: %d minor units", refund.reference, payment.reference, refund.amount_minor)
    return refund


def _reopen_debts(payment: Payment, agency_id: int) -> None:
    """Undo what the payment paid on the agency's debts: they are owed again."""
    for line in payment.lines:
        if line.agency_id != agency_id or line.debt is None:
            continue  # another agency's line, or an item sold (nothing is owed again)
        if line.installment is not None:
            line.installment.paid_minor -= line.principal_minor
            line.installment.status = "open"
        line.debt.paid_minor -= line.principal_minor
        line.debt.status = "open"
        line.debt.closed_at = None
        line.debt.closed_reason = None
