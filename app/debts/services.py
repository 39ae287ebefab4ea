"""The debt register's queries: what a citizen owes today, item by item, with live surcharges."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, bindparam, select, tuple_
from sqlalchemy.orm import joinedload, lazyload
from sqlalchemy.orm.attributes import set_committed_value

from app.accounts.models import TaxIdLink
from app.agencies.models import Agency
from app.debts.models import Debt, Debtor, Installment
from app.domain.surcharges import SurchargeResult, add_months, compute_surcharge
from app.extensions import db

#: Why an item cannot be selected; the views turn these into sentences.
BLOCK_NOT_ONLINE = "not_online"
BLOCK_IN_PROGRESS = "in_progress"


@dataclass(frozen=True)
class PayableItem:
    """One thing a citizen can pay on its own: a debt, or one installment of a settled debt."""

    key: str
    agency: Agency
    debt: Debt
    installment: Installment | None
    #: minor units still owed on the principal.
    principal_minor: int
    due_date: date
    surcharge: SurchargeResult
    #: None when selectable; else one of the BLOCK_* codes.
    blocked: str | None

    @property
    def total_minor(self) -> int:
        """minor units due today: principal plus surcharge."""
        return self.principal_minor + self.surcharge.amount_minor

    @property
    def overdue(self) -> bool:
        """Whether the due date has passed (in the agency's day)."""
        return self.surcharge.days_late > 0


@dataclass(frozen=True)
class AgencyDebts:
    """One agency's items on the dashboard."""

    agency: Agency
    items: list[PayableItem]

    @property
    def total_minor(self) -> int:
        """minor units due today for every item of this agency."""
        return sum(item.total_minor for item in self.items)


def agency_today(agency: Agency, now: datetime) -> date:
    """The calendar day it is at the agency at the instant ``now``."""
    return now.astimezone(ZoneInfo(agency.timezone)).date()


def item_key(debt: Debt, installment: Installment | None) -> str:
    """The form value that names an item: ``d<debt id>`` or ``i<installment id>``."""
    return f"i{installment.id}" if installment is not None else f"d{debt.id}"


def items_of_debt(debt: Debt, now: datetime, *, today: date | None = None) -> list[PayableItem]:
    """The open items of a debt at ``now``: the debt itself, or each open installment.

    ``today`` is the agency's day at ``now``, when the caller already knows it (a page of debts
    works it out once per agency, not once per debt).
    """
    agency = debt.agency
    if today is None:
        today = agency_today(agency, now)
    policy = agency.policy  # parsed once per agency row (Agency.policy caches it)
    online = agency.pays_online(debt.category, debt.kind)
    items: list[PayableItem] = []
    targets: list[tuple[Installment | None, int, date, int | None]]
    if debt.category == "settled" and debt.installments:
        targets = [
            (inst, inst.unpaid_minor, inst.due_date, inst.pending_payment_id)
            for inst in debt.installments
            if inst.status == "open" and inst.unpaid_minor > 0
        ]
    else:
        targets = [(None, debt.unpaid_minor, debt.due_date, debt.pending_payment_id)]
    for installment, principal, due, pending in targets:
        if principal <= 0:
            continue
        surcharge = compute_surcharge(policy, principal_minor=principal, due_date=due, on=today, category=debt.category)
        blocked = None
        if not online:
            blocked = BLOCK_NOT_ONLINE
        elif pending is not None:
            blocked = BLOCK_IN_PROGRESS
        items.append(
            PayableItem(
                key=item_key(debt, installment),
                agency=agency,
                debt=debt,
                installment=installment,
                principal_minor=principal,
                due_date=due,
                surcharge=surcharge,
                blocked=blocked,
            )
        )
    return items


def _open_debts_of_user(user_id: int) -> Sequence[Debt]:
    """Open debts of every tax ID the user has proven, oldest due first."""
    return db.session.scalars(_open_debts_statement(), {"user_id": user_id}).unique().all()


@cache
def _open_debts_statement() -> Select:
    # Built once, with the user as a parameter: building it cost about as much as running it.
    proven = select(TaxIdLink.country, TaxIdLink.tax_id).where(
        TaxIdLink.user_id == bindparam("user_id"), TaxIdLink.verified_at.is_not(None)
    )
    return (
        select(Debt)
        .join(Debtor, Debt.debtor_id == Debtor.id)
        .where(
            tuple_(Debtor.country, Debtor.tax_id).in_(proven),
            Debt.status == "open",
            Debt.paid_minor < Debt.principal_minor,
        )
        # One statement: the installments joined in, and the agency not joined again; it is
        # taken from the session, where the refresh (refresh_user_debts) has just loaded it, and
        # read by primary key only if it is not there.
        .options(joinedload(Debt.installments), lazyload(Debt.agency))
        .order_by(Debt.agency_id, Debt.due_date, Debt.id)
    )


def open_items_for_user(user_id: int, now: datetime) -> list[AgencyDebts]:
    """Every open item of the user's proven tax IDs, grouped by agency."""
    groups: dict[int, AgencyDebts] = {}
    todays: dict[int, date] = {}
    for debt in _open_debts_of_user(user_id):
        group = groups.get(debt.agency_id)
        if group is None:
            group = groups[debt.agency_id] = AgencyDebts(agency=debt.agency, items=[])
            todays[debt.agency_id] = agency_today(debt.agency, now)
        else:
            # The agency row is the group's: given to the debt as loaded, no lazy-load look-up.
            set_committed_value(debt, "agency", group.agency)
        group.items.extend(items_of_debt(debt, now, today=todays[debt.agency_id]))
    return [group for group in groups.values() if group.items]


@dataclass(frozen=True)
class Summary:
    """The totals at the top of the dashboard, in one currency."""

    currency: str
    #: minor units due today across every listed item.
    total_due_minor: int
    overdue_count: int
    #: minor units due today on overdue items.
    overdue_minor: int
    #: minor units of surcharge that paying everything today avoids, compared with a month later.
    saved_by_paying_now_minor: int


def surcharge_next_month(item: PayableItem, now: datetime, *, later: date | None = None) -> int:
    """minor units of surcharge the item would carry if paid one month from today.

    ``later`` is that day at the item's agency, when the caller already knows it.
    """
    if later is None:
        later = add_months(agency_today(item.agency, now), 1)
    return compute_surcharge(
        item.agency.policy,
        principal_minor=item.principal_minor,
        due_date=item.due_date,
        on=later,
        category=item.debt.category,
    ).amount_minor


def summarise(groups: list[AgencyDebts], now: datetime) -> list[Summary]:
    """Total due, overdue, and what paying today saves versus next month, per currency."""
    by_currency: dict[str, list[PayableItem]] = {}
    for group in groups:
        for item in group.items:
            by_currency.setdefault(item.debt.currency, []).append(item)
    # A month from the agency's today, worked out once per agency rather than once per item.
    later = {group.agency.id: add_months(agency_today(group.agency, now), 1) for group in groups}
    summaries = []
    for currency, items in sorted(by_currency.items()):
        overdue = [item for item in items if item.overdue]
        summaries.append(
            Summary(
                currency=currency,
                total_due_minor=sum(item.total_minor for item in items),
                overdue_count=len(overdue),
                overdue_minor=sum(item.total_minor for item in overdue),
                saved_by_paying_now_minor=sum(
                    surcharge_next_month(item, now, later=later[item.agency.id]) - item.surcharge.amount_minor
                    for item in items
                ),
            )
        )
    return summaries


def find_user_items(user_id: int, keys: Iterable[str], now: datetime) -> dict[str, PayableItem]:
    """The user's open items named by ``keys``; keys of other people's debts are simply absent."""
    wanted = set(keys)
    found: dict[str, PayableItem] = {}
    for group in open_items_for_user(user_id, now):
        for item in group.items:
            if item.key in wanted:
                found[item.key] = item
    return found


def earlier_open_installments(item: PayableItem) -> list[Installment]:
    """Open installments of the same arrangement that fall before this one."""
    if item.installment is None:
        return []
    return [
        inst
        for inst in item.debt.installments
        if inst.number < item.installment.number and inst.status == "open" and inst.unpaid_minor > 0
    ]


def debtor_has_debt(user_id: int, debt_id: int) -> bool:
    """Whether the debt belongs to a tax ID the user has proven."""
    statement = (
        select(Debt.id)
        .join(Debtor, Debt.debtor_id == Debtor.id)
        .join(
            TaxIdLink,
            and_(TaxIdLink.country == Debtor.country, TaxIdLink.tax_id == Debtor.tax_id),
        )
        .where(Debt.id == debt_id, TaxIdLink.user_id == user_id, TaxIdLink.verified_at.is_not(None))
    )
    return db.session.scalar(statement) is not None
