"""Quotes: server-computed, stored, expiring with the agency's day, refusing what is not payable."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from app.checkout.models import Quote
from app.checkout.services import CheckoutError, quote_debts
from app.extensions import db
from tests.factories import AgencyFactory, DebtFactory, DebtorFactory, InstallmentFactory, UserFactory, link

NOW = datetime(2026, 3, 1, 10, tzinfo=UTC)  # noon in Athens (UTC+2 in winter)


@pytest.fixture()
def citizen(db_session: None):
    debtor, user = DebtorFactory(), UserFactory()
    link(user, debtor)
    return user, debtor


def quotes_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Quote))


def test_quote_prices_each_line_and_expires_at_local_midnight(citizen) -> None:
    user, debtor = citizen
    east, west = AgencyFactory(), AgencyFactory()
    a = DebtFactory(agency=east, debtor=debtor, principal_minor=12000, due_date=date(2026, 1, 31))
    b = DebtFactory(agency=west, debtor=debtor, principal_minor=5000, due_date=date(2026, 4, 30))
    quote = quote_debts(user.id, [f"d{a.id}", f"d{b.id}"], NOW)
    assert [(line.principal_minor, line.surcharge_minor, line.amount_minor) for line in quote.lines] == [
        (12000, 175, 12175),  # 2 months × 0.73 % × 120 € = 1,752 € → 1,75 €
        (5000, 0, 5000),
    ]
    assert quote.total_minor == 17175
    assert quote.expires_at == datetime(2026, 3, 1, 22, 0, tzinfo=UTC)  # 2 March 00:00 in Athens
    assert quote.lines[0].explanation[0]["kind"] == "rate"


def test_quote_expires_at_the_earliest_agency_midnight(citizen) -> None:
    user, debtor = citizen
    athens = DebtFactory(agency=AgencyFactory(timezone="Europe/Athens"), debtor=debtor)
    lisbon = DebtFactory(agency=AgencyFactory(timezone="Europe/Lisbon"), debtor=debtor)
    quote = quote_debts(user.id, [f"d{lisbon.id}", f"d{athens.id}"], NOW)
    assert quote.expires_at == datetime(2026, 3, 1, 22, 0, tzinfo=UTC)


@pytest.mark.parametrize("keys", [[], [""], ["d999999"], ["x1"], ["i0"]])
def test_empty_or_tampered_selection_is_refused_and_stores_nothing(citizen, keys) -> None:
    user, _debtor = citizen
    with pytest.raises(CheckoutError):
        quote_debts(user.id, keys, NOW)
    assert quotes_count() == 0


def test_someone_elses_debt_cannot_be_quoted(citizen) -> None:
    user, _debtor = citizen
    strangers = DebtFactory(debtor=DebtorFactory())
    with pytest.raises(CheckoutError) as error:
        quote_debts(user.id, [f"d{strangers.id}"], NOW)
    assert error.value.code == "unknown"
    assert quotes_count() == 0


def test_a_paid_debt_cannot_be_quoted(citizen) -> None:
    user, debtor = citizen
    paid = DebtFactory(debtor=debtor, paid_minor=12000, status="paid")
    with pytest.raises(CheckoutError, match="unknown"):
        quote_debts(user.id, [f"d{paid.id}"], NOW)


def test_a_debt_being_paid_cannot_be_quoted_again(citizen) -> None:
    user, debtor = citizen
    first = DebtFactory(debtor=debtor)
    quote = quote_debts(user.id, [f"d{first.id}"], NOW)
    from app.checkout.payment_flow import start_payment
    from app.payments.providers import get_provider

    start_payment(user.id, quote.token, get_provider("sandbox"), NOW)
    with pytest.raises(CheckoutError) as error:
        quote_debts(user.id, [f"d{first.id}"], NOW)
    assert error.value.code == "in_progress"


def test_installments_in_order(citizen) -> None:
    user, debtor = citizen
    settled = DebtFactory(debtor=debtor, category="settled")
    one = InstallmentFactory(debt=settled, number=1)
    two = InstallmentFactory(debt=settled, number=2, due_date=date(2026, 2, 28))
    with pytest.raises(CheckoutError) as error:
        quote_debts(user.id, [f"i{two.id}"], NOW)
    assert (error.value.code, error.value.details["number"]) == ("installment_order", 1)
    quote = quote_debts(user.id, [f"i{two.id}", f"i{one.id}"], NOW)
    assert {line.installment_id for line in quote.lines} == {one.id, two.id}


def test_installments_any_order_when_the_agency_allows(citizen) -> None:
    user, debtor = citizen
    settled = DebtFactory(agency=AgencyFactory(installments_in_order=False), debtor=debtor, category="settled")
    InstallmentFactory(debt=settled, number=1)
    two = InstallmentFactory(debt=settled, number=2, due_date=date(2026, 2, 28))
    assert quote_debts(user.id, [f"i{two.id}"], NOW).total_minor == 5000 + 37  # 2 days late: 1 month


def test_debts_the_agency_keeps_offline_are_refused(citizen) -> None:
    user, debtor = citizen
    offline = DebtFactory(agency=AgencyFactory(online_kinds=["water_bill"]), debtor=debtor, kind="traffic_fine")
    with pytest.raises(CheckoutError, match="not_online"):
        quote_debts(user.id, [f"d{offline.id}"], NOW)
