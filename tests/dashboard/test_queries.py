"""The dashboard reads what it shows in a fixed number of SQL statements, whatever it shows.

Four: the signed-in user, the agencies with their refresh state, the debts with their
installments, and whether the user is treasury staff (the header's link).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import date

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.factories import PASSWORD, AgencyFactory, DebtFactory, DebtorFactory, InstallmentFactory, UserFactory, link
from tests.helpers import log_in, page_text

MOST_STATEMENTS = 4


def citizen_owing_at(agencies: int, debts_per_agency: int) -> str:
    """A citizen with debts (one an arrangement in installments) at ``agencies`` agencies; their e-mail."""
    user = UserFactory()
    debtor = DebtorFactory()
    link(user, debtor)
    for number in range(agencies):
        agency = AgencyFactory(surcharge_policy={"grace_days": number})
        for debt_number in range(debts_per_agency):
            DebtFactory(agency=agency, debtor=debtor, due_date=date(2025, 12, 1 + debt_number))
        arrangement = DebtFactory(agency=agency, debtor=debtor, category="settled", kind="water_bill")
        for part in (1, 2, 3):
            InstallmentFactory(debt=arrangement, number=part, due_date=date(2026, part, 28))
    return user.email


@pytest.mark.parametrize(("agencies", "debts_per_agency"), [(1, 1), (1, 12), (5, 1), (5, 12)])
def test_the_dashboard_takes_at_most_four_statements(
    client: FlaskClient,
    count_statements: Callable[[], AbstractContextManager[list[str]]],
    agencies: int,
    debts_per_agency: int,
) -> None:
    log_in(client, citizen_owing_at(agencies, debts_per_agency), PASSWORD)
    with count_statements() as statements:
        response = client.get("/debts")
    assert response.status_code == 200
    # Every debt is shown: the arrangement's three installments and each plain debt.
    assert page_text(response).count('name="item"') == agencies * (debts_per_agency + 3)
    assert len(statements) <= MOST_STATEMENTS, "\n\n".join(statements)


def test_the_count_grows_with_nothing_on_the_page(
    app: Flask, client: FlaskClient, count_statements: Callable[[], AbstractContextManager[list[str]]]
) -> None:
    other = app.test_client()
    log_in(client, citizen_owing_at(1, 1), PASSWORD)
    log_in(other, citizen_owing_at(5, 12), PASSWORD)
    with count_statements() as few:
        client.get("/debts")
    with count_statements() as many:
        other.get("/debts")
    assert len(few) == len(many)


def test_the_counter_sees_every_query(
    client: FlaskClient, count_statements: Callable[[], AbstractContextManager[list[str]]]
) -> None:
    """The fixture itself: a page that reads more is counted as reading more."""
    log_in(client, citizen_owing_at(1, 1), PASSWORD)
    with count_statements() as dashboard:
        client.get("/debts")
    with count_statements() as dashboard_and_history:
        client.get("/debts")
        client.get("/payments")
    assert len(dashboard_and_history) > len(dashboard) > 0
