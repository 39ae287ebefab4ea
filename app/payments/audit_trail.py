"""The payment's audit trail: every change of a payment's status is recorded in the audit log.

A mapper-level listener rather than an event, so no code path that changes a status (confirm,
fail, refund, a repair by hand) can forget it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import object_session
from sqlalchemy.orm.base import NEVER_SET, NO_VALUE

from app.audit.services import record
from app.payments.models import Payment


def register() -> None:
    """Record each payment status change from now on (once, however often it is called)."""
    if not event.contains(Payment.status, "set", _record_payment_status):
        event.listen(Payment.status, "set", _record_payment_status, active_history=True)


def _record_payment_status(payment: Payment, new: str, old: Any, _initiator: Any) -> None:
    """One entry per agency of the payment: "payment.status" with the old and new status."""
    if old is NO_VALUE or old is NEVER_SET or old is None or old == new:
        return
    state = inspect(payment)
    if state.transient or state.pending:
        return  # a payment being created: its first status is not a change
    session = object_session(payment)
    if session is None:
        return
    with session.no_autoflush:
        agency_ids = sorted({line.agency_id for line in payment.lines}) or [None]
        for agency_id in agency_ids:
            record(
                "payment.status",
                agency_id=agency_id,
                subject=payment.reference,
                details={"from": old, "to": new},
                session=session,
            )
