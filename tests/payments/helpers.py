"""Steps the payment tests share: the ledger check, run at the end of a test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy import select

from app.agencies.models import Agency
from app.extensions import db
from app.payments.splits import LedgerCheck, verify_ledger

#: Wide enough for every test's payments and refunds.
ALL_DAYS = (date(2000, 1, 1), date(2100, 12, 31))


def assert_ledger_adds_up(
    *agencies: Agency, date_from: date = ALL_DAYS[0], date_to: date = ALL_DAYS[1]
) -> list[LedgerCheck]:
    """Fail the test, with every discrepancy, unless the agencies' split entries add up (default: all of them)."""
    chosen = list(agencies) or list(db.session.scalars(select(Agency).order_by(Agency.id)))
    checks = [verify_ledger(agency, date_from, date_to) for agency in chosen]
    problems = [f"{check.agency_code}: {problem}" for check in checks for problem in check.problems]
    assert not problems, "The ledger does not add up:\n" + "\n".join(problems)
    return checks


def check_ledger_after_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """The body of an autouse fixture: after a test that used the database, the ledger adds up.

    A test that damages the ledger to see the check find it asks for ``ledger_damaged_on_purpose``.
    """
    if "db_session" not in request.fixturenames or "ledger_damaged_on_purpose" in request.fixturenames:
        yield
        return
    request.getfixturevalue("db_session")  # set up first, so it is torn down after this check
    yield
    db.session.rollback()  # what the test left uncommitted (or a failed statement) does not count
    assert_ledger_adds_up()
