"""What a citizen sees: only proven tax IDs, each item with the surcharge of the agency's day."""

from __future__ import annotations

from datetime import UTC, date, datetime

import time_machine

from app.agencies.models import Agency
from app.debts.services import BLOCK_NOT_ONLINE, agency_today, open_items_for_user
from tests.factories import AgencyFactory, DebtFactory, DebtorFactory, InstallmentFactory, UserFactory, link


def test_a_user_sees_only_debts_of_proven_tax_ids(db_session: None) -> None:
    mine, theirs, unproven = DebtorFactory(), DebtorFactory(), DebtorFactory()
    user, other = UserFactory(), UserFactory()
    link(user, mine)
    link(user, unproven, verified=False)
    link(other, theirs)
    my_debt = DebtFactory(debtor=mine, description="Mine")
    DebtFactory(debtor=theirs, description="Theirs")
    DebtFactory(debtor=unproven, description="Unproven")
    DebtFactory(debtor=mine, description="Paid already", paid_minor=12000, status="paid")

    groups = open_items_for_user(user.id, datetime(2026, 3, 1, 10, tzinfo=UTC))
    seen = [item.debt.description for group in groups for item in group.items]
    assert seen == ["Mine"]
    assert groups[0].items[0].key == f"d{my_debt.id}"


@time_machine.travel(datetime(2026, 3, 1, 10, tzinfo=UTC), tick=False)
def test_items_carry_todays_surcharge(db_session: None) -> None:
    debtor, user = DebtorFactory(), UserFactory()
    link(user, debtor)
    DebtFactory(debtor=debtor, principal_minor=12000, due_date=date(2026, 1, 31))
    [group] = open_items_for_user(user.id, datetime.now(UTC))
    [item] = group.items
    # 31 Jan → 1 Mar is 1 month and 1 day: 2 months × 0.73 % × 120,00 € = 1,752 € → 1,75 €
    assert (item.principal_minor, item.surcharge.amount_minor, item.total_minor) == (12000, 175, 12175)
    assert item.overdue


def test_today_is_the_agencys_local_day() -> None:
    """22:30 UTC on 31 January is already 1 February in Athens: one day (one month) late."""
    agency = Agency(timezone="Europe/Athens")  # not stored: the rule needs no database
    assert agency_today(agency, datetime(2026, 1, 31, 22, 30, tzinfo=UTC)) == date(2026, 2, 1)
    assert agency_today(agency, datetime(2026, 1, 31, 21, 59, tzinfo=UTC)) == date(2026, 1, 31)


def test_late_evening_utc_counts_as_next_day_in_athens(db_session: None) -> None:
    debtor, user = DebtorFactory(), UserFactory()
    link(user, debtor)
    DebtFactory(debtor=debtor, principal_minor=12000, due_date=date(2026, 1, 31))
    before = open_items_for_user(user.id, datetime(2026, 1, 31, 21, 59, tzinfo=UTC))[0].items[0]
    after = open_items_for_user(user.id, datetime(2026, 1, 31, 22, 0, tzinfo=UTC))[0].items[0]
    assert before.surcharge.amount_minor == 0
    assert after.surcharge.amount_minor == 88  # 1 month × 0.73 % × 120,00 € = 0,876 € → 0,88 €


def test_settled_debts_list_each_open_installment(db_session: None) -> None:
    debtor, user = DebtorFactory(), UserFactory()
    link(user, debtor)
    settled = DebtFactory(debtor=debtor, category="settled", principal_minor=12000, paid_minor=4000)
    InstallmentFactory(debt=settled, number=1, amount_minor=4000, paid_minor=4000, status="paid")
    second = InstallmentFactory(debt=settled, number=2, amount_minor=4000, due_date=date(2026, 2, 28))
    third = InstallmentFactory(debt=settled, number=3, amount_minor=4000, due_date=date(2026, 3, 31))
    [group] = open_items_for_user(user.id, datetime(2026, 3, 1, 10, tzinfo=UTC))
    assert [item.key for item in group.items] == [f"i{second.id}", f"i{third.id}"]
    assert [item.surcharge.amount_minor for item in group.items] == [29, 0]  # 40 € × 0.73 % = 0,292 €


def test_categories_the_agency_keeps_offline_are_not_selectable(db_session: None) -> None:
    agency = AgencyFactory(online_categories=["certified"])
    debtor, user = DebtorFactory(), UserFactory()
    link(user, debtor)
    DebtFactory(agency=agency, debtor=debtor, category="uncertified", description="Offline bill")
    DebtFactory(agency=agency, debtor=debtor, category="certified", description="Online debt")
    [group] = open_items_for_user(user.id, datetime(2026, 3, 1, 10, tzinfo=UTC))
    blocked = {item.debt.description: item.blocked for item in group.items}
    assert blocked == {"Offline bill": BLOCK_NOT_ONLINE, "Online debt": None}


def test_summary_totals_and_what_paying_today_saves(db_session: None) -> None:
    from app.dashboard.services import dashboard_for_user

    debtor, user = DebtorFactory(), UserFactory()
    link(user, debtor)
    DebtFactory(debtor=debtor, principal_minor=12000, due_date=date(2026, 1, 31))  # overdue
    DebtFactory(debtor=debtor, principal_minor=5000, due_date=date(2026, 3, 20))  # due this month
    DebtFactory(debtor=debtor, principal_minor=3000, due_date=date(2026, 6, 30), category="uncertified")
    dashboard = dashboard_for_user(user.id, datetime(2026, 3, 1, 10, tzinfo=UTC))
    [summary] = dashboard.summaries
    # Today: 120 € × 2 months × 0.73 % = 1,75 €. On 1 April: 3 months → 2,63 € (+0,88), and the
    # 50 € debt is then 12 days late → 1 month → 0,37 €; the uncertified bill never carries any.
    assert (summary.total_due_minor, summary.overdue_count, summary.overdue_minor) == (
        12000 + 175 + 5000 + 3000,
        1,
        12175,
    )
    assert summary.saved_by_paying_now_minor == (263 - 175) + 37


def test_dashboard_filters_by_category_and_kind(db_session: None) -> None:
    from app.dashboard.services import dashboard_for_user

    debtor, user = DebtorFactory(), UserFactory()
    link(user, debtor)
    DebtFactory(debtor=debtor, kind="water_bill", category="uncertified", description="Water")
    DebtFactory(debtor=debtor, kind="traffic_fine", description="Fine")
    now = datetime(2026, 3, 1, 10, tzinfo=UTC)
    everything = dashboard_for_user(user.id, now)
    assert (everything.categories, everything.kinds) == (["certified", "uncertified"], ["traffic_fine", "water_bill"])
    fines = dashboard_for_user(user.id, now, kind="traffic_fine")
    assert [item.debt.description for group in fines.groups for item in group.items] == ["Fine"]
    assert fines.summaries[0].total_due_minor == 12000 + 175
    bills = dashboard_for_user(user.id, now, category="uncertified")
    assert [item.debt.description for group in bills.groups for item in group.items] == ["Water"]
