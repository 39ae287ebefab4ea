"""Fixtures for guest payments: a frozen morning, and a debt a guest can pay (steps in steps.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
import time_machine
from flask.testing import FlaskClient

from app.debts.models import Debt
from tests.factories import DebtFactory, DebtorFactory
from tests.guest.steps import DEBTOR_NAME, MORNING, TAX_ID


@pytest.fixture(autouse=True)
def morning() -> Iterator[time_machine.Traveller]:
    """Freeze the clock before any request: a CSRF token from the future would be refused."""
    with time_machine.travel(MORNING, tick=False) as traveller:
        yield traveller


@pytest.fixture()
def property_fee(client: FlaskClient) -> Debt:
    """120,00 € due on 31 January: on 1 March it carries 2 × 0.73 % = 1,75 € of surcharge."""
    debtor = DebtorFactory(tax_id=TAX_ID, name=DEBTOR_NAME)
    DebtFactory(debtor=debtor, description="Another debt of the same person", principal_minor=5000)
    return DebtFactory(
        debtor=debtor, description="Property fee, 14 Aegean Street", principal_minor=12000, due_date=date(2026, 1, 31)
    )
