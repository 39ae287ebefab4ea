"""Treasury reports: the daily settlement of an agency and the adoption of online payment.

Both read only the agency's own payment lines. Days and months are the agency's local ones.
Amounts are summed as integers of minor units, so a report's rows add up to its totals exactly.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import select

from app.agencies.models import Agency
from app.debts.models import Debt
from app.domain.money import Money
from app.extensions import db
from app.payments.models import Payment, PaymentLine, SplitDayTotal
from app.payments.splits import AGENCY_PART

#: The longest settlement report, in days: a year and a day covers any calendar year.
MAX_SETTLEMENT_DAYS = 366


# -- settlement ------------------------------------------------------------------------------------


@dataclass
class SettlementFigures:
    """Counts and sums in minor units; fees are not known to the portal (None)."""

    lines: int = 0
    gross_minor: int = 0
    refunds_minor: int = 0
    fees_minor: int | None = None
    #: minor units per beneficiary: the revenue withholdings taken from the day's gross, less
    #: what the day's refunds reversed of them.
    withheld: dict[str, int] = field(default_factory=dict)

    @property
    def withheld_minor(self) -> int:
        """minor units: every beneficiary's withholdings together."""
        return sum(self.withheld.values())

    @property
    def agency_part_minor(self) -> int:
        """The net less the withholdings: what of the money kept is the agency's own."""
        return self.net_minor - self.withheld_minor

    @property
    def net_minor(self) -> int:
        """Gross less refunds (fees unknown, so not deducted)."""
        return self.gross_minor - self.refunds_minor

    def add(self, other: SettlementFigures) -> None:
        """Add another row's figures to these."""
        self.lines += other.lines
        self.gross_minor += other.gross_minor
        self.refunds_minor += other.refunds_minor
        for name, amount_minor in other.withheld.items():
            self.withheld[name] = self.withheld.get(name, 0) + amount_minor


@dataclass(frozen=True)
class SettlementRow:
    """One local day and one kind of debt."""

    day: date
    kind: str
    figures: SettlementFigures


@dataclass
class SettlementReport:
    """Rows by day then kind, subtotals per kind, and the grand total."""

    date_from: date
    date_to: date
    rows: list[SettlementRow] = field(default_factory=list)
    by_kind: dict[str, SettlementFigures] = field(default_factory=dict)
    total: SettlementFigures = field(default_factory=SettlementFigures)
    #: The withholdings' beneficiaries of the rows, sorted: one column each.
    beneficiaries: list[str] = field(default_factory=list)


def settlement_report(agency: Agency, date_from: date, date_to: date) -> SettlementReport:
    """The agency's received payment lines and its refunds per local day and kind, inclusive dates.

    Read from the withholdings ledger's daily totals (``app.payments.splits``): each payment line
    was split into its withholdings and the agency's part when it was paid, at the rates then in
    force, and each refund reversed those parts in proportion on the refund's own day. So a
    change of settings never rewrites a past day, and a day's withholdings are net of its refunds.
    A payment counts on the local day it completed (when the money moved), a refund on the day it
    completed; a refunded payment still counts in gross on its own day.
    """
    if date_to < date_from:
        raise ValueError("The end date is before the start date.")
    cells: dict[tuple[date, str], SettlementFigures] = defaultdict(SettlementFigures)
    beneficiaries: set[str] = set()
    for day, kind, beneficiary, lines, collected_minor, reversed_minor in db.session.execute(
        select(
            SplitDayTotal.day,
            SplitDayTotal.kind,
            SplitDayTotal.beneficiary,
            SplitDayTotal.lines,
            SplitDayTotal.collected_minor,
            SplitDayTotal.reversed_minor,
        ).where(SplitDayTotal.agency_id == agency.id, SplitDayTotal.day >= date_from, SplitDayTotal.day <= date_to)
    ):
        figures = cells[(day, kind)]
        figures.lines += lines
        figures.gross_minor += collected_minor
        figures.refunds_minor += reversed_minor
        if beneficiary != AGENCY_PART:
            beneficiaries.add(beneficiary)
            figures.withheld[beneficiary] = figures.withheld.get(beneficiary, 0) + collected_minor - reversed_minor
    report = SettlementReport(date_from, date_to, beneficiaries=sorted(beneficiaries))
    for (day, kind), figures in sorted(cells.items()):
        report.rows.append(SettlementRow(day, kind, figures))
        report.by_kind.setdefault(kind, SettlementFigures()).add(figures)
        report.total.add(figures)
    report.by_kind = dict(sorted(report.by_kind.items()))
    return report


def settlement_csv(
    report: SettlementReport, currency: str, header: list[str], total_label: str, *, semicolon: bool = False
) -> Iterator[str]:
    """The report as CSV: a UTF-8 BOM and header, a row per day and kind, then the total.

    ``header`` names the columns: date, kind, lines, gross, one per beneficiary of
    ``report.beneficiaries``, the agency's part, refunds, fees, net, currency.
    """
    delimiter, decimal_mark = (";", ",") if semicolon else (",", ".")
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")

    def amount(minor: int) -> str:
        return str(Money(minor, currency).to_decimal()).replace(".", decimal_mark)

    def figures_row(first: str, kind: str, figures: SettlementFigures) -> list[str]:
        return [
            first,
            kind,
            str(figures.lines),
            amount(figures.gross_minor),
            *(amount(figures.withheld.get(name, 0)) for name in report.beneficiaries),
            amount(figures.agency_part_minor),
            amount(figures.refunds_minor),
            "",  # fees: not known to the portal
            amount(figures.net_minor),
            currency,
        ]

    writer.writerow(header)
    for row in report.rows:
        writer.writerow(figures_row(row.day.isoformat(), row.kind, row.figures))
    writer.writerow(figures_row(total_label, "", report.total))
    yield "\ufeff" + buffer.getvalue()


# -- adoption ------------------------------------------------------------------------------------------


@dataclass
class AdoptionFigures:
    """Payable debts and how many (and how much of them) were paid online, by channel."""

    debts: int = 0
    #: minor units: principal of the payable debts.
    principal_minor: int = 0
    debts_online: int = 0
    #: minor units: principal paid online (lines of succeeded payments).
    online_minor: int = 0
    #: Debts by the channel of their first online payment: "guest", "account", "other".
    debts_by_channel: dict[str, int] = field(default_factory=lambda: {"guest": 0, "account": 0, "other": 0})
    online_minor_by_channel: dict[str, int] = field(default_factory=lambda: {"guest": 0, "account": 0, "other": 0})

    @staticmethod
    def _percent(part: int, whole: int) -> Decimal:
        if not whole:
            return Decimal("0.0")
        return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)

    @property
    def count_share(self) -> Decimal:
        """Per cent of the payable debts paid online, one decimal."""
        return self._percent(self.debts_online, self.debts)

    @property
    def amount_share(self) -> Decimal:
        """Per cent of the payable principal paid online, one decimal."""
        return self._percent(self.online_minor, self.principal_minor)

    def channel_share(self, channel: str) -> Decimal:
        """Per cent of the payable debts first paid online through ``channel``."""
        return self._percent(self.debts_by_channel[channel], self.debts)


@dataclass(frozen=True)
class AdoptionReport:
    """Adoption per month (the month debts fell due) and per kind, over the same months."""

    months: list[tuple[date, AdoptionFigures]]
    kinds: list[tuple[str, AdoptionFigures]]
    total: AdoptionFigures


def _channel_group(channel: str) -> str:
    return channel if channel in ("guest", "account") else "other"


def adoption_report(agency: Agency, today: date, months: int = 12) -> AdoptionReport:
    """Of the agency's debts payable online that fell due in the last ``months`` months (to ``today``),
    the share paid online, by count and by principal, by month and kind, guests versus accounts."""
    first_month = date(today.year, today.month, 1)
    for _ in range(months - 1):
        first_month = (first_month - timedelta(days=1)).replace(day=1)
    debts = db.session.execute(
        select(Debt.id, Debt.category, Debt.kind, Debt.principal_minor, Debt.due_date).where(
            Debt.agency_id == agency.id, Debt.due_date >= first_month, Debt.due_date <= today
        )
    ).all()
    payable = {row.id: row for row in debts if agency.pays_online(row.category, row.kind)}
    lines = db.session.execute(
        select(PaymentLine.debt_id, PaymentLine.principal_minor, Payment.channel)
        .join(Payment, Payment.id == PaymentLine.payment_id)
        .join(Debt, Debt.id == PaymentLine.debt_id)
        .where(
            PaymentLine.agency_id == agency.id,
            # A fully refunded payment did not pay the debt in the end.
            Payment.status.in_(("succeeded", "partially_refunded")),
            Debt.due_date >= first_month,
            Debt.due_date <= today,
        )
        .order_by(Payment.created_at, Payment.id, PaymentLine.id)
    ).all()
    paid: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for debt_id, principal_minor, channel in lines:
        if debt_id in payable:
            paid[debt_id].append((principal_minor, _channel_group(channel)))

    by_month: dict[date, AdoptionFigures] = {}
    month = first_month
    while month <= today:
        by_month[month] = AdoptionFigures()
        month = (month + timedelta(days=32)).replace(day=1)
    by_kind: dict[str, AdoptionFigures] = defaultdict(AdoptionFigures)
    total = AdoptionFigures()
    for debt in payable.values():
        month_figures = by_month[debt.due_date.replace(day=1)]
        for figures in (month_figures, by_kind[debt.kind], total):
            figures.debts += 1
            figures.principal_minor += debt.principal_minor
            payments = paid.get(debt.id)
            if payments:
                figures.debts_online += 1
                figures.debts_by_channel[payments[0][1]] += 1
                for principal_minor, channel in payments:
                    figures.online_minor += principal_minor
                    figures.online_minor_by_channel[channel] += principal_minor
    return AdoptionReport(list(by_month.items()), sorted(by_kind.items()), total)
