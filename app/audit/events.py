"""Listeners: the audit log cannot be changed, and every payment status change is recorded."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Mapper, ORMExecuteState, Session, object_session
from sqlalchemy.orm.base import NEVER_SET, NO_VALUE

from app.audit.models import AuditEntry
from app.audit.services import AuditLogIsAppendOnly, record
from app.payments.models import Payment


@event.listens_for(AuditEntry, "before_update")
def _refuse_update(_mapper: Mapper, _connection: Any, entry: AuditEntry) -> None:
    raise AuditLogIsAppendOnly(f"Audit entry {entry.id} cannot be changed: the audit log is append-only.")


@event.listens_for(AuditEntry, "before_delete")
def _refuse_delete(_mapper: Mapper, _connection: Any, entry: AuditEntry) -> None:
    raise AuditLogIsAppendOnly(f"Audit entry {entry.id} cannot be deleted: the audit log is append-only.")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_changes(state: ORMExecuteState) -> None:
    """Bulk ``update(AuditEntry)`` / ``delete(AuditEntry)`` skip the mapper events: refuse them too."""
    if not (state.is_update or state.is_delete):
        return
    mapper = state.bind_mapper
    if mapper is not None and mapper.class_ is AuditEntry:
        raise AuditLogIsAppendOnly("The audit log is append-only: no bulk update or delete.")


@event.listens_for(Payment.status, "set", active_history=True)
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
