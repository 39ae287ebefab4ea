"""Payment history: payments are always read *through* the agency.

A payment appears only if it has a line of the agency, and only that agency's lines and amounts
are ever read for it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import (
    Select,
    exists,
    func,
    literal,
    or_,
    select,
    tuple_,
)

from app.accounts.models import User
from app.agencies.models import Agency
from app.audit.models import AuditEntry
from app.db import UTCDateTime
from app.debts.models import Debt, Debtor
from app.domain.withholdings import DEFAULT_KEY, LineSplit, Withholding, split_line, withholdings_for_kind
from app.erp_writeback.handlers import TOPIC_ERP_PAYMENT_ACK, TOPIC_ERP_REFUND_ACK, TOPIC_ERP_SALE_ACK
from app.extensions import db
from app.outbox.models import OutboxMessage
from app.payments.models import Payment, PaymentLine, ProviderCharge, Refund
from app.payments.splits import stored_line_splits
from app.receipts.handlers import TOPIC_RECEIPT_EMAIL

# -- payment history -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentFilters:
    """What the history (and its export) is narrowed to; None means "any"."""

    #: Local dates in the agency's time zone, both inclusive.
    date_from: date | None = None
    date_to: date | None = None
    status: str | None = None
    category: str | None = None
    kind: str | None = None
    #: minor units; compared with the agency's subtotal of the payment, both inclusive.
    amount_min_minor: int | None = None
    amount_max_minor: int | None = None
    #: A tax ID (digits, an EL/GR prefix allowed) or part of the payer's name.
    payer: str | None = None
    #: Compact RF reference of one of the agency's debts in the payment.
    rf_reference: str | None = None
    #: The provider's reference of the charge, or the portal's receipt number.
    reference: str | None = None
    channel: str | None = None


def _agency_subtotal(agency_id: int):
    return (
        select(func.sum(PaymentLine.amount_minor))
        .where(PaymentLine.payment_id == Payment.id, PaymentLine.agency_id == agency_id)
        .correlate(Payment)
        .scalar_subquery()
    )


def _local_midnight_utc(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def filtered_payments(agency: Agency, filters: PaymentFilters) -> Select:
    """Payments with a line of the agency that match the filters, with the agency's subtotal."""
    subtotal = _agency_subtotal(agency.id)
    line_conditions = [PaymentLine.payment_id == Payment.id, PaymentLine.agency_id == agency.id]
    needs_debt = filters.category or filters.kind or filters.rf_reference or filters.payer
    if filters.category:
        line_conditions.append(Debt.category == filters.category)
    if filters.kind:
        line_conditions.append(Debt.kind == filters.kind)
    if filters.rf_reference:
        line_conditions.append(Debt.rf_reference == filters.rf_reference)
    if filters.payer:
        payer = filters.payer.strip()
        tax_id = re.sub(r"^(EL|GR)", "", re.sub(r"\s", "", payer.upper()))
        if tax_id.isdigit():
            line_conditions.append(Debtor.tax_id == tax_id)
        else:
            line_conditions.append(Debtor.name.ilike(f"%{_escape_like(payer)}%", escape="\\"))
    lines = select(PaymentLine.id).where(*line_conditions)
    if needs_debt:
        lines = lines.join(Debt, Debt.id == PaymentLine.debt_id)
    if filters.payer:
        lines = lines.join(Debtor, Debtor.id == Debt.debtor_id)

    statement = select(Payment, subtotal.label("agency_amount_minor")).where(exists(lines.correlate(Payment)))
    zone = ZoneInfo(agency.timezone)
    if filters.date_from:
        statement = statement.where(
            Payment.created_at >= literal(_local_midnight_utc(filters.date_from, zone), UTCDateTime())
        )
    if filters.date_to:
        end = _local_midnight_utc(filters.date_to + timedelta(days=1), zone)
        statement = statement.where(Payment.created_at < literal(end, UTCDateTime()))
    if filters.status:
        statement = statement.where(Payment.status == filters.status)
    if filters.channel:
        statement = statement.where(Payment.channel == filters.channel)
    if filters.reference:
        reference = filters.reference.strip()
        statement = statement.where(
            or_(Payment.reference == reference.upper(), Payment.provider_reference == reference)
        )
    if filters.amount_min_minor is not None:
        statement = statement.where(subtotal >= filters.amount_min_minor)
    if filters.amount_max_minor is not None:
        statement = statement.where(subtotal <= filters.amount_max_minor)
    return statement


@dataclass(frozen=True)
class Cursor:
    """A position in the history: the (created_at, id) of a payment, newest first."""

    created_at: datetime
    payment_id: int

    _EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

    def encode(self) -> str:
        """The cursor as a URL value: microseconds since 1970, a dot, the payment id."""
        micros = (self.created_at - self._EPOCH) // timedelta(microseconds=1)
        return f"{micros}.{self.payment_id}"

    @classmethod
    def decode(cls, text: str | None) -> Cursor | None:
        """Read a URL cursor; None for anything malformed."""
        match = re.fullmatch(r"(\d{1,19})\.(\d{1,19})", text or "")
        if not match:
            return None
        try:
            created_at = cls._EPOCH + timedelta(microseconds=int(match.group(1)))
        except OverflowError:
            return None
        return cls(created_at, int(match.group(2)))

    def key(self):
        return tuple_(literal(self.created_at, UTCDateTime()), literal(self.payment_id))


@dataclass(frozen=True)
class HistoryRow:
    """One payment as the agency sees it: never another agency's amount."""

    payment: Payment
    #: minor units: the sum of this agency's lines of the payment.
    agency_amount_minor: int


@dataclass(frozen=True)
class HistoryPage:
    """One page of the history, with cursors to the pages either side (None at the ends)."""

    rows: list[HistoryRow]
    older: Cursor | None
    newer: Cursor | None


def payment_history(
    agency: Agency,
    filters: PaymentFilters,
    *,
    before: Cursor | None = None,
    after: Cursor | None = None,
    page_size: int | None = None,
) -> HistoryPage:
    """A page of the agency's payments, newest first, by keyset on (created_at, id); no OFFSET.

    ``before`` gives the page of payments older than that cursor; ``after`` the page of payments
    newer than it (read oldest first, then turned round); neither gives the newest page.
    """
    size = page_size or current_app.config["TREASURY_PAGE_SIZE"]
    position = tuple_(Payment.created_at, Payment.id)
    statement = filtered_payments(agency, filters)
    if after is not None:
        statement = statement.where(position > after.key()).order_by(Payment.created_at.asc(), Payment.id.asc())
    else:
        if before is not None:
            statement = statement.where(position < before.key())
        statement = statement.order_by(Payment.created_at.desc(), Payment.id.desc())
    found = db.session.execute(statement.limit(size + 1)).all()
    more = len(found) > size
    rows = [HistoryRow(payment, amount or 0) for payment, amount in found[:size]]
    if after is not None:
        rows.reverse()
    if not rows:
        return HistoryPage([], None, None)
    first, last = rows[0].payment, rows[-1].payment
    has_older = more if after is None else True
    has_newer = (before is not None) if after is None else more
    return HistoryPage(
        rows,
        older=Cursor(last.created_at, last.id) if has_older else None,
        newer=Cursor(first.created_at, first.id) if has_newer else None,
    )


def filter_choices(agency: Agency) -> dict[str, list[str]]:
    """Values the agency's filters can offer: statuses, channels, categories and kinds in use."""
    from app.debts.models import CATEGORIES
    from app.payments.models import PAYMENT_STATUSES

    kinds = db.session.scalars(
        select(Debt.kind).where(Debt.agency_id == agency.id).distinct().order_by(Debt.kind)
    ).all()
    return {
        "statuses": list(PAYMENT_STATUSES),
        "channels": ["account", "guest", "autopay", "api"],
        "categories": list(CATEGORIES),
        "kinds": list(kinds),
    }


# -- one payment ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WriteBack:
    """The ERP write-back of a payment's lines for one agency."""

    #: "pending", "delivered", "dead", or "not_queued" (no message: e.g. the charge failed).
    status: str
    attempts: int = 0
    last_error: str | None = None
    delivered_at: datetime | None = None
    next_attempt_at: datetime | None = None


@dataclass(frozen=True)
class AgencyPayment:
    """A payment seen by one agency: its own lines and subtotal only."""

    payment: Payment
    lines: list[PaymentLine]
    amount_minor: int
    #: Write-back state per line id.
    write_back: dict[int, WriteBack] = field(default_factory=dict)
    #: Per line id: the line split into the agency's withholdings and what the agency keeps.
    withholdings: dict[int, LineSplit] = field(default_factory=dict)
    #: What happened to the payment, oldest first, as this agency may see it.
    timeline: list[TimelineEvent] = field(default_factory=list)


@dataclass(frozen=True)
class TimelineEvent:
    """One moment in a payment's life: ``kind`` names it for the page, ``details`` fill its sentence."""

    at: datetime
    kind: str
    details: dict[str, Any] = field(default_factory=dict)


def payment_timeline(agency: Agency, payment: Payment) -> list[TimelineEvent]:
    """The payment's story for the agency: started, its own card charge at the provider, each status
    change (by whom, or by the system: webhook, reconciler), refunds of its share, the ERP told, the
    receipt e-mailed. Another agency's charge, refunds and ERP messages are left out."""
    events = [TimelineEvent(payment.created_at, "started", {"channel": payment.channel, "provider": payment.provider})]
    for charge in db.session.scalars(
        select(ProviderCharge).where(ProviderCharge.payment_id == payment.id, ProviderCharge.agency_id == agency.id)
    ):
        events.append(
            TimelineEvent(charge.created_at, "charge_created", {"reference": charge.provider_reference or ""})
        )
        if charge.status in ("captured", "failed", "canceled") and charge.updated_at is not None:
            events.append(
                TimelineEvent(charge.updated_at, f"charge_{charge.status}", {"code": charge.failure_code or ""})
            )
    for entry, actor in db.session.execute(
        select(AuditEntry, User.full_name)
        .outerjoin(User, User.id == AuditEntry.actor_user_id)
        .where(
            AuditEntry.agency_id == agency.id,
            AuditEntry.subject == payment.reference,
            AuditEntry.action == "payment.status",
        )
        .order_by(AuditEntry.at, AuditEntry.id)
    ):
        events.append(TimelineEvent(entry.at, "status", {**entry.details, "actor": actor or ""}))
    refund_references = []
    for refund, requested_by in db.session.execute(
        select(Refund, User.full_name)
        .outerjoin(User, User.id == Refund.requested_by_user_id)
        .where(Refund.payment_id == payment.id, Refund.agency_id == agency.id)
        .order_by(Refund.id)
    ):
        refund_references.append(refund.reference)
        details = {"amount_minor": refund.amount_minor, "status": refund.status, "reference": refund.reference}
        events.append(TimelineEvent(refund.created_at, "refund", {**details, "actor": requested_by or ""}))
    keys = [f"{TOPIC_ERP_PAYMENT_ACK}:{payment.reference}:{agency.code}"]
    keys += [
        f"{TOPIC_ERP_SALE_ACK}:{payment.reference}:{line_id}"
        for line_id in db.session.scalars(
            select(PaymentLine.id).where(PaymentLine.payment_id == payment.id, PaymentLine.agency_id == agency.id)
        )
    ]
    keys += [f"{TOPIC_ERP_REFUND_ACK}:{reference}" for reference in refund_references]
    for message in db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.key.in_(keys), OutboxMessage.agency_id == agency.id)
    ):
        if message.status == "delivered" and message.delivered_at is not None:
            events.append(TimelineEvent(message.delivered_at, "erp_recorded", {"topic": message.topic}))
        elif message.status == "dead":
            events.append(TimelineEvent(message.next_attempt_at, "erp_failed", {"topic": message.topic}))
    receipt = db.session.scalar(
        select(OutboxMessage).where(OutboxMessage.key == f"{TOPIC_RECEIPT_EMAIL}:{payment.reference}")
    )
    if receipt is not None and receipt.status == "delivered" and receipt.delivered_at is not None:
        events.append(TimelineEvent(receipt.delivered_at, "receipt_sent"))
    return sorted(events, key=lambda event: event.at)


def _line_kind(line: PaymentLine) -> str:
    """The kind a line's withholdings follow: its debt's kind, or the kind of the item sold."""
    if line.debt is not None:
        return line.debt.kind
    return line.item.kind if line.item is not None else ""


def agency_payment(agency: Agency, reference: str) -> AgencyPayment | None:
    """The payment with this receipt number as the agency sees it; None unless it has a line of it."""
    payment = db.session.scalar(
        select(Payment).where(
            Payment.reference == reference.strip().upper(),
            exists().where(PaymentLine.payment_id == Payment.id, PaymentLine.agency_id == agency.id),
        )
    )
    if payment is None:
        return None
    lines = list(
        db.session.scalars(
            select(PaymentLine)
            .where(PaymentLine.payment_id == payment.id, PaymentLine.agency_id == agency.id)
            .order_by(PaymentLine.id)
        )
    )
    message = db.session.scalar(
        select(OutboxMessage).where(
            OutboxMessage.key == f"{TOPIC_ERP_PAYMENT_ACK}:{payment.reference}:{agency.code}",
            OutboxMessage.agency_id == agency.id,
        )
    )
    write_back: dict[int, WriteBack] = {}
    acknowledged: set[str] = set()
    if message is not None:
        acknowledged = {str(line.get("line_id")) for line in message.payload.get("lines", [])}
    sales = {
        sale.key: sale
        for sale in db.session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.key.in_(
                    [
                        f"{TOPIC_ERP_SALE_ACK}:{payment.reference}:{line.id}"
                        for line in lines
                        if line.item_id is not None
                    ]
                ),
                OutboxMessage.agency_id == agency.id,
            )
        )
    }
    for line in lines:
        sale = sales.get(f"{TOPIC_ERP_SALE_ACK}:{payment.reference}:{line.id}")
        if sale is not None:  # an item sold is told to the ERP by a message of its own
            write_back[line.id] = WriteBack(
                sale.status, sale.attempts, sale.last_error, sale.delivered_at, sale.next_attempt_at
            )
        elif message is not None and f"{payment.reference}:{line.id}" in acknowledged:
            write_back[line.id] = WriteBack(
                message.status, message.attempts, message.last_error, message.delivered_at, message.next_attempt_at
            )
        else:
            write_back[line.id] = WriteBack("not_queued")
    split = line_splitter(agency)
    # The split booked when the payment succeeded; a payment not received (yet) shows what
    # today's rates would withhold. An item sold is withheld from by its kind, as a debt by its own.
    booked = stored_line_splits(line.id for line in lines)
    withholdings = {line.id: booked.get(line.id) or split(_line_kind(line), line.amount_minor) for line in lines}
    return AgencyPayment(
        payment,
        lines,
        sum(line.amount_minor for line in lines),
        write_back,
        withholdings,
        payment_timeline(agency, payment),
    )


def line_splitter(agency: Agency) -> Callable[[str | None, int], LineSplit]:
    """Split a line of a kind by the agency's withholdings, reading each kind's list once.

    A line without a kind (not a debt) takes the "default" list, as an unlisted kind does.
    """
    settings = dict(agency.withholdings or {})
    currency = agency.currency
    by_kind: dict[str | None, list[Withholding]] = {}

    def split(kind: str | None, amount_minor: int) -> LineSplit:
        if kind not in by_kind:
            by_kind[kind] = withholdings_for_kind(settings, DEFAULT_KEY if kind is None else kind)
        return split_line(amount_minor, currency, by_kind[kind])

    return split
