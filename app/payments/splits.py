"""The withholdings ledger: each payment line's split, fixed when paid, and its reversal by refunds.

When a payment succeeds, each line is split once by the domain's ``split_line``, with the
withholding settings its agency has at that moment, and stored as ``SplitEntry`` rows in the
payment's own transaction (a listener of ``payment.succeeded``). A refund writes negative entries
against the parts of the agency's lines of that payment, in proportion to what each still holds
(``reverse_in_proportion``: largest remainder, exact to the minor unit), in the refund's own
transaction (a listener of ``refund.made``). The daily totals (``SplitDayTotal``) are added to in
the same transaction, so the settlement report reads them and never recomputes a split.

``verify_ledger`` proves, for an agency and a range of its local days, that the entries add up:
to each line, to minus each refund, to the gross collected less the refunds per kind and in
total, and to the daily totals per beneficiary; and that no part was ever reversed below zero.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, select
from sqlalchemy.dialects import postgresql, sqlite

from app import events
from app.agencies.models import Agency
from app.catalog.models import CatalogItem
from app.debts.models import Debt
from app.domain.withholdings import (
    InvalidWithholding,
    LineSplit,
    Share,
    Withholding,
    reverse_in_proportion,
    split_line,
    withholdings_for_kind,
)
from app.extensions import db
from app.payments.models import Payment, PaymentLine, Refund, SplitDayTotal, SplitEntry

log = logging.getLogger("civicpay.payments.splits")

#: Payment statuses whose lines are money received (a refund is booked on its own day).
RECEIVED_STATUSES = ("succeeded", "partially_refunded", "refunded")
#: The beneficiary of the agency's own part of a line.
AGENCY_PART = ""


def register() -> None:
    """Book each succeeded payment's split and each refund's reversal, in their own transactions."""
    events.payment_succeeded.connect(_on_payment_succeeded, weak=False)
    events.refund_made.connect(_on_refund_made, weak=False)


def _on_payment_succeeded(payment: Payment, **_data: object) -> None:
    book_payment_splits(payment)


def _on_refund_made(refund: Refund, **_data: object) -> None:
    book_refund_reversal(refund)


def local_day(moment: datetime, agency: Agency) -> date:
    """The agency's local day of a UTC moment."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(agency.timezone)).date()


def line_kind(line: PaymentLine) -> str:
    """A line's kind: its debt's, or the kind of the catalog item sold ("ticket", "donation")."""
    if line.debt_id is not None:
        debt = line.debt or db.session.get(Debt, line.debt_id)
        return debt.kind if debt is not None else "unknown"
    item = line.item or (db.session.get(CatalogItem, line.item_id) if line.item_id else None)
    return item.kind if item is not None else "unknown"


_DayKey = tuple[int, date, str, str]  # agency id, day, kind, beneficiary


@dataclass
class _DayChange:
    currency: str
    lines: int = 0
    collected_minor: int = 0
    reversed_minor: int = 0


def book_payment_splits(payment: Payment) -> list[SplitEntry]:
    """Store the split of each of the payment's lines, at the withholding rates in force now.

    Runs in the payment's transaction. Safe to call twice: a payment already booked is left as is.
    """
    already = db.session.scalar(
        select(func.count())
        .select_from(SplitEntry)
        .where(SplitEntry.payment_id == payment.id, SplitEntry.refund_id.is_(None))
    )
    if already:
        return []
    booked_at = payment.completed_at or payment.created_at
    agencies: dict[int, Agency] = {}
    entries: list[SplitEntry] = []
    totals: dict[_DayKey, _DayChange] = {}
    for line in sorted(payment.lines, key=lambda line: line.id):
        agency = agencies.get(line.agency_id) or db.session.get(Agency, line.agency_id)
        assert agency is not None
        agencies[agency.id] = agency
        kind = line_kind(line)
        day = local_day(booked_at, agency)
        try:
            withholdings = withholdings_for_kind(agency.withholdings, kind)
        except InvalidWithholding:
            # Never refuse here: the card was charged. The line is booked whole to the agency and
            # the error logged, for a person to correct the settings and the split.
            log.exception(
                "agency %s: withholdings of %s cannot be read; line %s booked whole", agency.code, kind, line.id
            )
            withholdings = []
        split = split_line(line.amount_minor, payment.currency, withholdings)
        parts: list[tuple[str, str | None, int | None, int]] = [
            (share.name, None if share.withholding.percent is None else str(share.withholding.percent),
             share.withholding.fixed_minor, share.amount_minor)
            for share in split.shares
        ]  # fmt: skip
        parts.append((AGENCY_PART, None, None, split.remainder_minor))
        for position, (beneficiary, percent, fixed_minor, amount_minor) in enumerate(parts):
            entries.append(
                SplitEntry(
                    agency_id=agency.id,
                    payment_id=payment.id,
                    payment_line_id=line.id,
                    refund_id=None,
                    kind=kind,
                    position=position,
                    beneficiary=beneficiary,
                    percent=percent,
                    fixed_minor=fixed_minor,
                    amount_minor=amount_minor,
                    currency=payment.currency,
                    booked_at=booked_at,
                    day=day,
                )  # fmt: skip
            )
            change = totals.setdefault((agency.id, day, kind, beneficiary), _DayChange(payment.currency))
            change.collected_minor += amount_minor
            if beneficiary == AGENCY_PART:
                change.lines += 1
    db.session.add_all(entries)
    _add_to_day_totals(totals)
    db.session.flush()
    return entries


def stored_line_splits(line_ids: Iterable[int]) -> dict[int, LineSplit]:
    """The splits booked for these lines when their payment succeeded (lines not booked are left out)."""
    ids = list(line_ids)
    if not ids:
        return {}
    entries: dict[int, list[SplitEntry]] = defaultdict(list)
    for entry in db.session.scalars(
        select(SplitEntry)
        .where(SplitEntry.payment_line_id.in_(ids), SplitEntry.refund_id.is_(None))
        .order_by(SplitEntry.payment_line_id, SplitEntry.position)
    ):
        entries[entry.payment_line_id].append(entry)
    splits = {}
    for line_id, parts in entries.items():
        shares = tuple(
            Share(
                Withholding(
                    part.beneficiary,
                    percent=None if part.percent is None else Decimal(part.percent),
                    fixed_minor=part.fixed_minor,
                ),
                part.amount_minor,
            )
            for part in parts
            if part.beneficiary != AGENCY_PART
        )
        remainder = sum(part.amount_minor for part in parts if part.beneficiary == AGENCY_PART)
        total = sum(part.amount_minor for part in parts)
        splits[line_id] = LineSplit(total, parts[0].currency, shares, remainder)
    return splits


def book_refund_reversal(refund: Refund) -> list[SplitEntry]:
    """Reverse the refunded parts of the agency's lines of the payment, in proportion, exactly.

    Runs in the refund's transaction. Safe to call twice: a refund already booked is left as is.
    """
    already = db.session.scalar(select(func.count()).select_from(SplitEntry).where(SplitEntry.refund_id == refund.id))
    if already:
        return []
    cells = _held_parts(refund.payment_id, refund.agency_id)
    if not cells:
        # A payment from before the ledger that the back-fill missed: book it now, at today's rates.
        payment = db.session.get(Payment, refund.payment_id)
        assert payment is not None
        log.warning("payment %s had no split entries; booked now at today's rates", payment.reference)
        book_payment_splits(payment)
        cells = _held_parts(refund.payment_id, refund.agency_id)
    held = [cell.held_minor for cell in cells]
    reversible = refund.amount_minor
    if reversible > sum(held):
        # Never refuse here: the money already went back, and the refund's record must stand.
        # What cannot be reversed is left for verify_ledger to report, and a person to look at.
        log.error(
            "refund %s of %d is more than the %d its payment's parts hold; reversed what they hold",
            refund.reference, refund.amount_minor, sum(held),
        )  # fmt: skip
        reversible = sum(held)
    agency = db.session.get(Agency, refund.agency_id)
    assert agency is not None
    booked_at = refund.completed_at or refund.created_at
    day = local_day(booked_at, agency)
    entries: list[SplitEntry] = []
    totals: dict[_DayKey, _DayChange] = {}
    for cell, taken in zip(cells, reverse_in_proportion(reversible, held), strict=True):
        if not taken:
            continue
        entries.append(
            SplitEntry(
                agency_id=agency.id,
                payment_id=refund.payment_id,
                payment_line_id=cell.payment_line_id,
                refund_id=refund.id,
                kind=cell.kind,
                position=cell.position,
                beneficiary=cell.beneficiary,
                percent=None,
                fixed_minor=None,
                amount_minor=-taken,
                currency=refund.currency,
                booked_at=booked_at,
                day=day,
            )  # fmt: skip
        )
        change = totals.setdefault((agency.id, day, cell.kind, cell.beneficiary), _DayChange(refund.currency))
        change.reversed_minor += taken
    db.session.add_all(entries)
    _add_to_day_totals(totals)
    db.session.flush()
    return entries


@dataclass(frozen=True)
class HeldPart:
    """One part of a line (a beneficiary's, or the agency's) and what of it is not refunded yet."""

    payment_line_id: int
    position: int
    kind: str
    beneficiary: str
    #: minor units, >= 0: the part less its reversals so far.
    held_minor: int


def _held_parts(payment_id: int, agency_id: int) -> list[HeldPart]:
    """The agency's parts of the payment's lines with what each still holds, by line then position."""
    rows = db.session.execute(
        select(
            SplitEntry.payment_line_id,
            SplitEntry.position,
            func.min(SplitEntry.kind),
            func.min(SplitEntry.beneficiary),
            func.sum(SplitEntry.amount_minor),
        )
        .where(SplitEntry.payment_id == payment_id, SplitEntry.agency_id == agency_id)
        .group_by(SplitEntry.payment_line_id, SplitEntry.position)
        .order_by(SplitEntry.payment_line_id, SplitEntry.position)
    ).all()
    return [
        HeldPart(line_id, position, kind, beneficiary, int(held)) for line_id, position, kind, beneficiary, held in rows
    ]


def _add_to_day_totals(totals: dict[_DayKey, _DayChange]) -> None:
    """Add the changes to the daily totals, creating rows as needed, in key order (no deadlock)."""
    if not totals:
        return
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for (agency_id, day, kind, beneficiary), change in sorted(totals.items()):
        statement = insert(SplitDayTotal).values(
            agency_id=agency_id, day=day, kind=kind, beneficiary=beneficiary, currency=change.currency,
            lines=change.lines, collected_minor=change.collected_minor, reversed_minor=change.reversed_minor,
        )  # fmt: skip
        db.session.execute(
            statement.on_conflict_do_update(
                index_elements=["agency_id", "day", "kind", "beneficiary"],
                set_={
                    "lines": SplitDayTotal.lines + statement.excluded.lines,
                    "collected_minor": SplitDayTotal.collected_minor + statement.excluded.collected_minor,
                    "reversed_minor": SplitDayTotal.reversed_minor + statement.excluded.reversed_minor,
                },
            )
        )


# -- the check ----------------------------------------------------------------------------------------


@dataclass
class LedgerCheck:
    """What ``verify_ledger`` compared, and every discrepancy it found, in sentences."""

    agency_code: str
    date_from: date
    date_to: date
    lines: int = 0
    refunds: int = 0
    #: minor units: the received lines' gross, and the succeeded refunds, booked in the range.
    gross_minor: int = 0
    refunds_minor: int = 0
    #: minor units: the entries' sum per beneficiary ("" the agency's own part).
    by_beneficiary: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether everything added up."""
        return not self.problems

    @property
    def entries_minor(self) -> int:
        """minor units: every entry in the range together."""
        return sum(self.by_beneficiary.values())


def verify_ledger(agency: Agency, date_from: date, date_to: date) -> LedgerCheck:
    """Prove that the agency's split entries of the local days add up; list each place they do not."""
    check = LedgerCheck(agency.code, date_from, date_to)
    in_range = (SplitEntry.agency_id == agency.id, SplitEntry.day >= date_from, SplitEntry.day <= date_to)

    # 1. Each received line of a payment booked in the range is split whole, once.
    lines = db.session.execute(
        select(PaymentLine.id, PaymentLine.amount_minor, Payment.reference, Payment.completed_at, Payment.created_at)
        .join(Payment, Payment.id == PaymentLine.payment_id)
        .where(PaymentLine.agency_id == agency.id, Payment.status.in_(RECEIVED_STATUSES))
    ).all()
    line_sums = dict(
        db.session.execute(
            select(SplitEntry.payment_line_id, func.sum(SplitEntry.amount_minor))
            .where(SplitEntry.agency_id == agency.id, SplitEntry.refund_id.is_(None))
            .group_by(SplitEntry.payment_line_id)
        ).all()
    )
    for line_id, amount_minor, reference, completed_at, created_at in lines:
        if not date_from <= local_day(completed_at or created_at, agency) <= date_to:
            continue
        check.lines += 1
        check.gross_minor += amount_minor
        booked = line_sums.get(line_id)
        if booked is None:
            check.problems.append(f"Line {line_id} of payment {reference} has no split entries.")
        elif booked != amount_minor:
            check.problems.append(
                f"The split of line {line_id} of payment {reference} adds up to {booked}, not {amount_minor}."
            )

    # 2. Each succeeded refund booked in the range is reversed whole.
    refund_sums = dict(
        db.session.execute(
            select(SplitEntry.refund_id, func.sum(SplitEntry.amount_minor))
            .where(SplitEntry.agency_id == agency.id, SplitEntry.refund_id.is_not(None))
            .group_by(SplitEntry.refund_id)
        ).all()
    )
    for refund_id, reference, amount_minor, completed_at, created_at in db.session.execute(
        select(Refund.id, Refund.reference, Refund.amount_minor, Refund.completed_at, Refund.created_at).where(
            Refund.agency_id == agency.id, Refund.status == "succeeded"
        )
    ):
        if not date_from <= local_day(completed_at or created_at, agency) <= date_to:
            continue
        check.refunds += 1
        check.refunds_minor += amount_minor
        reversed_minor = -(refund_sums.get(refund_id) or 0)
        if reversed_minor != amount_minor:
            check.problems.append(f"Refund {reference} of {amount_minor} reverses {reversed_minor}.")

    # 3. In total: the entries are the gross collected less the refunds.
    for beneficiary, amount_minor in db.session.execute(
        select(SplitEntry.beneficiary, func.sum(SplitEntry.amount_minor))
        .where(*in_range)
        .group_by(SplitEntry.beneficiary)
    ):
        check.by_beneficiary[beneficiary] = int(amount_minor)
    if check.entries_minor != check.gross_minor - check.refunds_minor:
        check.problems.append(
            f"The entries add up to {check.entries_minor}, but the gross less refunds is "
            f"{check.gross_minor - check.refunds_minor}."
        )

    # 4. Per day, kind and beneficiary: the daily totals are the entries.
    from_entries = {
        (day, kind, beneficiary): (int(lines or 0), int(collected or 0), int(reversed_minor or 0))
        for day, kind, beneficiary, lines, collected, reversed_minor in db.session.execute(
            select(
                SplitEntry.day,
                SplitEntry.kind,
                SplitEntry.beneficiary,
                func.sum(_count_line()),
                func.sum(_positive(SplitEntry.amount_minor)),
                -func.sum(_negative(SplitEntry.amount_minor)),
            )
            .where(*in_range)
            .group_by(SplitEntry.day, SplitEntry.kind, SplitEntry.beneficiary)
        )
    }
    from_totals = {
        (row.day, row.kind, row.beneficiary): (row.lines, row.collected_minor, row.reversed_minor)
        for row in db.session.scalars(
            select(SplitDayTotal).where(
                SplitDayTotal.agency_id == agency.id, SplitDayTotal.day >= date_from, SplitDayTotal.day <= date_to
            )
        )
    }
    for key in sorted(set(from_entries) | set(from_totals)):
        if from_entries.get(key, (0, 0, 0)) != from_totals.get(key, (0, 0, 0)):
            day, kind, beneficiary = key
            check.problems.append(
                f"The daily total of {beneficiary or 'the agency'} for {kind} on {day.isoformat()} is "
                f"{from_totals.get(key)}, but its entries give {from_entries.get(key)} (lines, collected, reversed)."
            )

    # 5. No part of a line was ever reversed below zero (whenever the refunds were made).
    for line_id, position, held in db.session.execute(
        select(SplitEntry.payment_line_id, SplitEntry.position, func.sum(SplitEntry.amount_minor))
        .where(SplitEntry.agency_id == agency.id)
        .group_by(SplitEntry.payment_line_id, SplitEntry.position)
        .having(func.sum(SplitEntry.amount_minor) < 0)
    ):
        check.problems.append(f"Part {position} of line {line_id} was reversed {-held} below zero.")
    return check


def _positive(amount):
    return case((amount > 0, amount), else_=0)


def _negative(amount):
    return case((amount < 0, amount), else_=0)


def _count_line():
    return case((and_(SplitEntry.refund_id.is_(None), SplitEntry.beneficiary == AGENCY_PART), 1), else_=0)


def agency_ids_with_entries() -> Iterable[int]:
    """The agencies that have split entries (for a check of every agency)."""
    return db.session.scalars(select(SplitEntry.agency_id).distinct())
