"""Fixtures of the payment tests: a citizen with debts at two agencies, paying through localstripe."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.factories import PASSWORD, AgencyFactory, DebtFactory, DebtorFactory, UserFactory, link
from tests.helpers import log_in
from tests.payments.helpers import check_ledger_after_test


@pytest.fixture()
def citizen(client: FlaskClient, stripe_app: Flask) -> dict:
    """A citizen with one overdue debt at each of two agencies, logged in."""
    debtor, user = DebtorFactory(), UserFactory(language="en")
    link(user, debtor)
    north, south = AgencyFactory(code="north"), AgencyFactory(code="south")
    water = DebtFactory(agency=north, debtor=debtor, principal_minor=12000, due_date=date(2026, 1, 31))
    parking = DebtFactory(agency=south, debtor=debtor, principal_minor=4000, due_date=date(2026, 5, 31))
    ids = {"user": user.id, "debts": (water.id, parking.id), "agencies": (north.id, south.id)}
    log_in(client, user.email, PASSWORD)  # ends the session: keep plain ids, not objects
    return ids


@pytest.fixture(autouse=True)
def _ledger_adds_up(request: pytest.FixtureRequest) -> Iterator[None]:
    """At the end of every payment test that used the database: the withholdings ledger adds up."""
    yield from check_ledger_after_test(request)


@pytest.fixture()
def ledger_damaged_on_purpose() -> None:
    """Asked for by a test that damages the ledger to see the check find it: no check at its end."""
