"""Writing the audit log, and reading it back for the treasury: search, pages by keyset, CSV."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from flask import has_request_context, request
from sqlalchemy import Select, func, literal, select, tuple_
from sqlalchemy.orm import Session

from app.audit.models import AuditEntry
from app.db import UTCDateTime, utcnow
from app.extensions import db

#: Entries on one page of the audit log.
PAGE_SIZE = 50
#: Entries read per query while exporting.
EXPORT_BATCH_SIZE = 1000


#: Read the entries of every agency and those of none (the platform's audit page).
EVERY_AGENCY: Literal["all"] = "all"
#: Whose entries to read: one agency's (its id), those of no agency (None), or EVERY_AGENCY.
AgencyScope = int | None | Literal["all"]


class AuditLogIsAppendOnly(RuntimeError):
    """Something tried to change or delete an audit entry."""


def _current_actor_id() -> int | None:
    if not has_request_context():
        return None
    from flask_login import current_user

    if current_user and current_user.is_authenticated:
        return current_user.id
    return None


def record(
    action: str,
    *,
    agency_id: int | None,
    subject: str | None,
    details: dict[str, Any] | None = None,
    actor_user_id: int | None = None,
    session: Session | None = None,
) -> AuditEntry:
    """Add an audit entry to the session: it is committed (or rolled back) with the caller's work.

    The actor and the client address come from the request when there is one and no actor is given.
    """
    entry = AuditEntry(
        at=utcnow(),
        actor_user_id=actor_user_id if actor_user_id is not None else _current_actor_id(),
        agency_id=agency_id,
        action=action,
        subject=subject,
        details=details or {},
        ip_address=request.remote_addr if has_request_context() else None,
    )
    (session or db.session).add(entry)
    return entry


# -- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilters:
    """The audit page's search: local dates (inclusive), an action (or its prefix "staff."), a subject."""

    date_from: date | None = None
    date_to: date | None = None
    action: str | None = None
    subject: str | None = None


@dataclass(frozen=True)
class AuditPosition:
    """A place in the log: the (at, id) of an entry, newest first; written "micros.id" in URLs."""

    at: datetime
    entry_id: int

    _EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

    def encode(self) -> str:
        """The position as a URL value."""
        return f"{(self.at - self._EPOCH) // timedelta(microseconds=1)}.{self.entry_id}"

    @classmethod
    def decode(cls, text: str | None) -> AuditPosition | None:
        """Read a URL value; None for anything malformed."""
        match = re.fullmatch(r"(\d{1,19})\.(\d{1,19})", text or "")
        if not match:
            return None
        try:
            at = cls._EPOCH + timedelta(microseconds=int(match.group(1)))
        except OverflowError:
            return None
        return cls(at, int(match.group(2)))


@dataclass(frozen=True)
class AuditRow:
    """An entry with the e-mail address of its actor (None for the system)."""

    entry: AuditEntry
    actor_email: str | None


@dataclass(frozen=True)
class AuditPage:
    """A page of entries, newest first, and the position of the next (older) page if any."""

    rows: list[AuditRow]
    older: AuditPosition | None


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filtered(agency_id: AgencyScope, timezone: str, filters: AuditFilters) -> Select:
    from app.accounts.models import User

    statement = select(AuditEntry, User.email).outerjoin(User, User.id == AuditEntry.actor_user_id)
    if agency_id is None:
        statement = statement.where(AuditEntry.agency_id.is_(None))
    elif agency_id != EVERY_AGENCY:
        statement = statement.where(AuditEntry.agency_id == agency_id)
    zone = ZoneInfo(timezone)
    if filters.date_from:
        statement = statement.where(AuditEntry.at >= literal(_local_midnight(filters.date_from, zone), UTCDateTime()))
    if filters.date_to:
        end = _local_midnight(filters.date_to + timedelta(days=1), zone)
        statement = statement.where(AuditEntry.at < literal(end, UTCDateTime()))
    if filters.action:
        if filters.action.endswith("."):
            statement = statement.where(AuditEntry.action.startswith(filters.action, autoescape=True))
        else:
            statement = statement.where(AuditEntry.action == filters.action)
    if filters.subject:
        pattern = f"%{_escape_like(filters.subject.strip().lower())}%"
        statement = statement.where(func.lower(AuditEntry.subject).like(pattern, escape="\\"))
    return statement


def _inert(text: str) -> str:
    """Text a spreadsheet will not run as a formula (OWASP's CSV injection advice)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def audit_page(
    agency_id: AgencyScope,
    timezone: str,
    filters: AuditFilters,
    *,
    before: AuditPosition | None = None,
    page_size: int = PAGE_SIZE,
) -> AuditPage:
    """A page of the agency's audit log (or the platform's, see AgencyScope), newest first, by keyset on (at, id)."""
    statement = _filtered(agency_id, timezone, filters)
    if before is not None:
        statement = statement.where(
            tuple_(AuditEntry.at, AuditEntry.id) < tuple_(literal(before.at, UTCDateTime()), literal(before.entry_id))
        )
    found = db.session.execute(
        statement.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(page_size + 1)
    ).all()
    rows = [AuditRow(entry, email) for entry, email in found[:page_size]]
    older = None
    if len(found) > page_size:
        last = rows[-1].entry
        older = AuditPosition(last.at, last.id)
    return AuditPage(rows, older)


def export_audit_csv(
    agency_id: AgencyScope,
    timezone: str,
    filters: AuditFilters,
    header: list[str],
    *,
    semicolon: bool = False,
    agency_codes: dict[int, str] | None = None,
) -> Iterator[str]:
    """The filtered log as CSV chunks (UTF-8 BOM first), read in batches by keyset.

    With ``agency_codes`` (the platform's export) each row has the agency's code after the date.
    """
    import json

    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";" if semicolon else ",", lineterminator="\r\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(header)
    yield "\ufeff" + flush()
    zone = ZoneInfo(timezone)
    position: AuditPosition | None = None
    while True:
        page = audit_page(agency_id, timezone, filters, before=position, page_size=EXPORT_BATCH_SIZE)
        for row in page.rows:
            entry = row.entry
            agency = [] if agency_codes is None else [agency_codes.get(entry.agency_id, "") if entry.agency_id else ""]
            writer.writerow(
                [
                    entry.at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
                    *agency,
                    _inert(row.actor_email or ""),
                    entry.action,
                    _inert(entry.subject or ""),
                    _inert(json.dumps(entry.details, ensure_ascii=False, sort_keys=True)),
                    entry.ip_address or "",
                ]
            )
        yield flush()
        if page.older is None:
            return
        position = page.older
