"""Quarantined records: an ERP record the sync could not take, kept with its reason and raw payload."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select, update

from app.extensions import db
from app.sync.models import QuarantinedRecord, SyncRun


def quarantine_record(agency_id: int, run: SyncRun, external_id: str | None, reason: str, raw: object) -> None:
    """Keep a record the run could not take, with the reason and the payload as received; count it."""
    db.session.add(
        QuarantinedRecord(
            agency_id=agency_id,
            sync_run_id=run.id,
            external_id=external_id,
            reason=reason,
            raw=_raw_text(raw),
        )
    )
    run.quarantined += 1


def _raw_text(raw: object) -> str:
    if isinstance(raw, str):
        return raw
    try:
        return json.dumps(raw, ensure_ascii=False, default=str, sort_keys=True)
    except (TypeError, ValueError):
        return repr(raw)


def quarantined(agency_id: int | None = None, status: str = "open", limit: int = 100) -> list[QuarantinedRecord]:
    """Quarantined records, newest first."""
    statement = select(QuarantinedRecord).where(QuarantinedRecord.status == status)
    if agency_id is not None:
        statement = statement.where(QuarantinedRecord.agency_id == agency_id)
    return list(db.session.scalars(statement.order_by(QuarantinedRecord.id.desc()).limit(limit)))


def resolve_quarantined(record_ids: Iterable[int], status: str, now: datetime) -> int:
    """Mark quarantined records retried or dismissed; returns how many changed."""
    if status not in ("retried", "dismissed"):
        raise ValueError("A quarantined record can only be retried or dismissed.")
    result = db.session.execute(
        update(QuarantinedRecord)
        .where(QuarantinedRecord.id.in_(list(record_ids)), QuarantinedRecord.status == "open")
        .values(status=status, resolved_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.flush()
    return result.rowcount
