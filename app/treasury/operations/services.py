"""An agency's integration as its treasury sees it: sync runs, quarantined ERP records, write-back.

Everything is read through the agency: an id of another agency's run, record or message is
"not found" (LookupError), never shown. Each action is one business transaction that carries its
audit entry: dismissing a record, retrying the quarantine (after the ERP was read again), queueing
a dead write-back message again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from sqlalchemy import Select, case, func, select, update

from app.agencies.models import Agency
from app.audit.services import record
from app.extensions import db
from app.i18n import gettext
from app.outbox.models import OutboxMessage
from app.outbox.services import OutboxError, requeue_dead_message
from app.sync.connectors import pulls_from_erp
from app.sync.engine import sync_agency
from app.sync.models import QuarantinedRecord, SyncRun
from app.sync.runs import SyncBusy
from erp_connectors.base import ERPConnector

log = logging.getLogger("civicpay.treasury")

#: Rows on one page of the operations lists.
PAGE_SIZE = 50
#: What the quarantine page can show: records of one status, or all of them.
QUARANTINE_VIEWS = ("open", "dismissed", "retried", "all")
#: The write-back states the treasury shows: "pending" has not been tried yet, "waiting" failed
#: and will be tried again by the worker, "dead" gave up (a person may retry it), "delivered".
OUTBOX_STATES = ("pending", "waiting", "dead", "delivered")
#: Longest dismissal reason kept.
MAX_REASON_LENGTH = 500

Row = TypeVar("Row")


class OperationRefused(Exception):
    """An action that cannot be done now; the message is a sentence for the person who tried."""


@dataclass(frozen=True)
class Page(Generic[Row]):
    """Rows newest first, and the id to read older rows from (``?before=``) if there are any."""

    rows: list[Row]
    older: int | None


def _page(statement: Select, id_column, before: int | None, page_size: int) -> Page:
    """A page by keyset on the id, newest first; no OFFSET."""
    if before is not None:
        statement = statement.where(id_column < before)
    rows = list(db.session.scalars(statement.order_by(id_column.desc()).limit(page_size + 1)))
    older = rows[page_size - 1].id if len(rows) > page_size else None
    return Page(rows[:page_size], older)


# -- sync runs ---------------------------------------------------------------------------------------


def sync_runs(agency: Agency, *, before: int | None = None, page_size: int = PAGE_SIZE) -> Page[SyncRun]:
    """The agency's sync runs, newest first."""
    return _page(select(SyncRun).where(SyncRun.agency_id == agency.id), SyncRun.id, before, page_size)


# -- quarantine --------------------------------------------------------------------------------------


def quarantine(
    agency: Agency, view: str = "open", *, before: int | None = None, page_size: int = PAGE_SIZE
) -> Page[QuarantinedRecord]:
    """The agency's quarantined records of one status (``view``, see QUARANTINE_VIEWS), newest first."""
    if view not in QUARANTINE_VIEWS:
        raise ValueError(f"{view!r} is not one of {', '.join(QUARANTINE_VIEWS)}.")
    statement = select(QuarantinedRecord).where(QuarantinedRecord.agency_id == agency.id)
    if view != "all":
        statement = statement.where(QuarantinedRecord.status == view)
    return _page(statement, QuarantinedRecord.id, before, page_size)


def open_quarantine_count(agency: Agency) -> int:
    """How many of the agency's quarantined records wait for someone."""
    return (
        db.session.scalar(
            select(func.count())
            .select_from(QuarantinedRecord)
            .where(QuarantinedRecord.agency_id == agency.id, QuarantinedRecord.status == "open")
        )
        or 0
    )


def quarantined_record(agency: Agency, record_id: int) -> QuarantinedRecord:
    """One of the agency's quarantined records; LookupError if the agency has none with this id."""
    found = db.session.scalar(
        select(QuarantinedRecord).where(QuarantinedRecord.id == record_id, QuarantinedRecord.agency_id == agency.id)
    )
    if found is None:
        raise LookupError(record_id)
    return found


def readable_payload(raw: str) -> str:
    """The payload as received, indented if it is JSON (the template escapes it)."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(parsed, dict | list):
        return raw
    return json.dumps(parsed, ensure_ascii=False, indent=2, sort_keys=True)


def _resolve(
    agency: Agency, record_ids: list[int], status: str, now: datetime, user_id: int | None, reason: str | None
) -> int:
    """The one place the treasury closes quarantined records: open → retried or dismissed."""
    if status not in ("retried", "dismissed") or not record_ids:
        raise ValueError("A quarantined record can only be retried or dismissed.")
    return db.session.execute(
        update(QuarantinedRecord)
        .where(
            QuarantinedRecord.id.in_(record_ids),
            QuarantinedRecord.agency_id == agency.id,
            QuarantinedRecord.status == "open",  # compare-and-set: two clicks close it once
        )
        .values(status=status, resolved_at=now, resolved_by_id=user_id, dismissed_reason=reason)
        .execution_options(synchronize_session=False)
    ).rowcount


def dismiss_quarantined(
    agency: Agency, record_id: int, reason: str, *, user_id: int | None, now: datetime
) -> QuarantinedRecord:
    """Dismiss one open record with the reason given; LookupError if not the agency's."""
    reason = " ".join(reason.split())[:MAX_REASON_LENGTH]
    if not reason:
        raise OperationRefused(gettext("Say why the record needs no action."))
    found = quarantined_record(agency, record_id)
    if not _resolve(agency, [found.id], "dismissed", now, user_id, reason):
        db.session.rollback()
        raise OperationRefused(gettext("This record was already retried or dismissed; nothing was changed."))
    record(
        "sync.quarantine_dismiss",
        agency_id=agency.id,
        subject=found.external_id or f"#{found.id}",
        details={"record": found.id, "reason": reason},
        actor_user_id=user_id,
    )
    db.session.flush()
    db.session.refresh(found)
    log.info("quarantined record %s of %s dismissed by user %s", found.id, agency.code, user_id)
    return found


@dataclass(frozen=True)
class QuarantineRetry:
    """A retry: the records that were open, and the full sync that read the ERP again."""

    records: int
    run: SyncRun


def retry_quarantine(
    agency: Agency, *, user_id: int | None, now: datetime, connector: ERPConnector | None = None
) -> QuarantineRetry:
    """Read the agency's ERP again in full; the records that were open are then marked retried.

    The sync services' retry (``retry_quarantined``) marks the records first and then syncs; here
    the sync comes first, so that an ERP that cannot be read (or a sync already running) leaves
    the records open rather than marked retried with nothing retried. Records the ERP has fixed
    come in; records still bad are quarantined anew by the run, with today's reason.
    """
    if not pulls_from_erp(agency):
        raise OperationRefused(
            gettext(
                "This agency's ERP sends its debts to Civic Pay, so there is nothing to read again: "
                "the records are taken when the ERP sends them again, corrected."
            )
        )
    record_ids = list(
        db.session.scalars(
            select(QuarantinedRecord.id).where(
                QuarantinedRecord.agency_id == agency.id, QuarantinedRecord.status == "open"
            )
        )
    )
    if not record_ids:
        raise OperationRefused(gettext("There are no open quarantined records to retry."))
    try:
        run = sync_agency(agency, connector, full=True, now=now)
    except SyncBusy:
        _record_retry(agency, len(record_ids), user_id, outcome="busy")
        raise OperationRefused(
            gettext("A sync of this agency is running now. Try again when it has finished; the records stay open.")
        ) from None
    except Exception as error:
        log.warning("retrying the quarantine of %s: the sync failed: %s", agency.code, error)
        _record_retry(agency, len(record_ids), user_id, outcome="failed")
        raise OperationRefused(
            gettext("The ERP could not be read, so the records stay open. The sync runs page shows the error.")
        ) from None
    retried = _resolve(agency, record_ids, "retried", now, user_id, None)
    _record_retry(agency, retried, user_id, outcome=run.status, run=run)
    log.info("quarantine of %s retried by user %s: %d records, run %s", agency.code, user_id, retried, run.id)
    return QuarantineRetry(retried, run)


def _record_retry(
    agency: Agency, records: int, user_id: int | None, *, outcome: str, run: SyncRun | None = None
) -> None:
    details: dict[str, object] = {"records": records, "outcome": outcome}
    if run is not None:
        details |= {"run": run.id, "created": run.created, "updated": run.updated, "quarantined": run.quarantined}
    record("sync.quarantine_retry", agency_id=agency.id, subject=agency.code, details=details, actor_user_id=user_id)
    db.session.flush()


# -- write-back (outbox) ----------------------------------------------------------------------------


def message_state(message: OutboxMessage) -> str:
    """The message's state as OUTBOX_STATES names it (a failed pending message is "waiting")."""
    if message.status == "pending" and message.attempts > 0:
        return "waiting"
    return message.status


def _state_condition(state: str):
    if state == "pending":
        return (OutboxMessage.status == "pending") & (OutboxMessage.attempts == 0)
    if state == "waiting":
        return (OutboxMessage.status == "pending") & (OutboxMessage.attempts > 0)
    if state in ("dead", "delivered"):
        return OutboxMessage.status == state
    raise ValueError(f"{state!r} is not one of {', '.join(OUTBOX_STATES)}.")


def outbox_messages(
    agency: Agency, state: str | None = None, *, before: int | None = None, page_size: int = PAGE_SIZE
) -> Page[OutboxMessage]:
    """The agency's write-back messages (of one state, or all), newest first."""
    statement = select(OutboxMessage).where(OutboxMessage.agency_id == agency.id)
    if state is not None:
        statement = statement.where(_state_condition(state))
    return _page(statement, OutboxMessage.id, before, page_size)


def outbox_counts(agency: Agency) -> dict[str, int]:
    """How many of the agency's messages are in each state."""
    counts = dict.fromkeys(OUTBOX_STATES, 0)
    rows = db.session.execute(
        select(OutboxMessage.status, func.count(), func.sum(case((OutboxMessage.attempts > 0, 1), else_=0)))
        .where(OutboxMessage.agency_id == agency.id)
        .group_by(OutboxMessage.status)
    )
    for status, count, tried in rows:
        if status == "pending":
            counts["pending"], counts["waiting"] = count - (tried or 0), tried or 0
        else:
            counts[status] = count
    return counts


def retry_dead_letter(agency: Agency, message_id: int, *, user_id: int | None, now: datetime) -> OutboxMessage:
    """Queue one of the agency's dead messages again, due now; LookupError if not the agency's."""
    try:
        message = requeue_dead_message(message_id, agency.id, now)
    except LookupError:
        db.session.rollback()
        raise
    except OutboxError:
        db.session.rollback()
        raise OperationRefused(
            gettext("This message is not dead any more (it was retried already, or delivered); nothing was changed.")
        ) from None
    record(
        "outbox.retry",
        agency_id=agency.id,
        subject=message.key,
        details={"message": message.id, "topic": message.topic, "attempts": message.attempts},
        actor_user_id=user_id,
    )
    db.session.flush()
    return message
