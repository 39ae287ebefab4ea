"""Listeners that keep the audit log append-only: no entry is ever changed or deleted."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Mapper, ORMExecuteState, Session

from app.audit.models import AuditEntry
from app.audit.services import AuditLogIsAppendOnly


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
