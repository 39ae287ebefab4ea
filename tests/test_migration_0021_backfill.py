"""Migration 0021 back-fills the withholdings ledger: past payments split at the settings of the day
it runs, past refunds reversed in order, the daily totals summed; the ledger check then holds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import text

from app import create_app, migrate
from app.db import make_engine
from tests.databases import BACKEND, fresh_postgres_database, fresh_sqlite_database, postgres_server

WITHHOLDINGS = {
    "default": [{"name": "Fund", "percent": "2"}],
    "traffic_fine": [{"name": "Stamp", "fixed_minor": 50}, {"name": "Fund", "percent": "0.5"}],
}


@pytest.fixture()
def database_at_0020(tmp_path: Path) -> Iterator[str]:
    if BACKEND == "postgresql":
        with postgres_server() as server, fresh_postgres_database(server, "backfill") as url:
            migrate.upgrade(url, "0020")
            yield url
    else:
        with fresh_sqlite_database(tmp_path, "backfill") as url:
            migrate.upgrade(url, "0020")
            yield url


def _fill(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO agencies (code, name_el, name_en, currency, timezone, country, online_categories,"
                " surcharge_policy, installments_in_order, connector, created_at, withholdings)"
                " VALUES ('town', 'Δήμος', 'Town', 'EUR', 'Europe/Athens', 'GR', '[]', '{}', true, '{}',"
                " CURRENT_TIMESTAMP, :withholdings)"
            ),
            {"withholdings": json.dumps(WITHHOLDINGS)},
        )
        connection.execute(text("INSERT INTO debtors (country, tax_id, name) VALUES ('GR', '147382606', 'M')"))
        for number, kind in enumerate(["property_fee", "traffic_fine", "property_fee"], start=1):
            connection.execute(
                text(
                    "INSERT INTO debts (agency_id, external_id, debtor_id, category, kind, description, currency,"
                    " principal_minor, paid_minor, due_date, rf_reference, status, synced_at)"
                    " VALUES (1, :external, 1, 'certified', :kind, 'Debt', 'EUR', 10000, 0, '2026-01-31',"
                    " :rf, 'open', CURRENT_TIMESTAMP)"
                ),
                {"external": f"X-{number}", "kind": kind, "rf": f"RF0{number}"},
            )
        # 1: 100.00 + 43.21 (two kinds), partly refunded twice; 2: declined; 3: paid at 23:30 UTC
        # on 1 March, which is 2 March in Athens.
        payments = [
            (1, "partially_refunded", 14321, "2026-03-01 09:00:00"),
            (2, "failed", 5000, "2026-03-01 10:00:00"),
            (3, "succeeded", 2000, "2026-03-01 23:30:00"),
        ]
        for number, status, amount, at in payments:
            connection.execute(
                text(
                    "INSERT INTO payments (reference, status, currency, amount_minor, provider, channel,"
                    " created_at, completed_at) VALUES (:reference, :status, 'EUR', :amount, 'sandbox',"
                    " 'account', :at, :at)"
                ),
                {"reference": f"CP-{number}", "status": status, "amount": amount, "at": at},
            )
        lines = [(1, 1, 10000), (1, 2, 4321), (2, 1, 5000), (3, 3, 2000)]
        for payment_id, debt_id, amount in lines:
            connection.execute(
                text(
                    "INSERT INTO payment_lines (payment_id, agency_id, debt_id, principal_minor, surcharge_minor,"
                    " amount_minor, explanation) VALUES (:payment, 1, :debt, :amount, 0, :amount, '[]')"
                ),
                {"payment": payment_id, "debt": debt_id, "amount": amount},
            )
        refunds = [("CP-1-R1", 1000, "succeeded"), ("CP-1-R2", 500, "pending"), ("CP-1-R3", 321, "succeeded")]
        for reference, amount, status in refunds:
            connection.execute(
                text(
                    "INSERT INTO refunds (reference, payment_id, agency_id, amount_minor, currency, status, reason,"
                    " reopened_debts, created_at, completed_at) VALUES (:reference, 1, 1, :amount, 'EUR', :status,"
                    " 'Paid twice', false, '2026-03-03 09:00:00', '2026-03-03 09:00:00')"
                ),
                {"reference": reference, "amount": amount, "status": status},
            )
    engine.dispose()


def test_the_back_fill_splits_past_payments_and_reverses_past_refunds(database_at_0020: str) -> None:
    _fill(database_at_0020)
    migrate.upgrade(database_at_0020)
    engine = make_engine(database_at_0020)
    with engine.connect() as connection:
        by_line = dict(
            connection.execute(
                text(
                    "SELECT payment_line_id, sum(amount_minor) FROM split_entries WHERE refund_id IS NULL"
                    " GROUP BY payment_line_id"
                )
            ).all()
        )
        parts = connection.execute(
            text(
                "SELECT beneficiary, percent, fixed_minor, amount_minor FROM split_entries"
                " WHERE payment_line_id = 2 AND refund_id IS NULL ORDER BY position"
            )
        ).all()
        reversed_by_refund = dict(
            connection.execute(
                text(
                    "SELECT refund_id, sum(amount_minor) FROM split_entries WHERE refund_id IS NOT NULL GROUP BY refund_id"
                )
            ).all()
        )
        days = {
            str(day): lines
            for day, lines in connection.execute(
                text("SELECT day, sum(lines) FROM split_day_totals GROUP BY day ORDER BY day")
            ).all()
        }
    engine.dispose()
    assert by_line == {1: 10000, 2: 4321, 4: 2000}  # the declined payment's line is not split
    # The fine: 0.50 stamp, 0.5 % of 43.21 = 0.21605 → 0.22, the agency the rest.
    assert [tuple(part) for part in parts] == [
        ("Stamp", None, 50, 50),
        ("Fund", "0.5", None, 22),
        ("", None, None, 4249),
    ]
    assert reversed_by_refund == {1: -1000, 3: -321}  # the pending refund reverses nothing
    assert days == {"2026-03-01": 2, "2026-03-02": 1, "2026-03-03": 0}

    app = create_app({"ENV_NAME": "testing", "DATABASE_URL": database_at_0020, "LOG_LEVEL": "WARNING"})
    with app.app_context():
        from app.agencies.models import Agency
        from app.extensions import db
        from app.payments.splits import verify_ledger
        from app.treasury.reports.services import settlement_report

        agency = db.session.query(Agency).one()
        check = verify_ledger(agency, date(2026, 3, 1), date(2026, 3, 3))
        assert check.problems == []
        assert (check.lines, check.gross_minor, check.refunds_minor) == (3, 16321, 1321)
        report = settlement_report(agency, date(2026, 3, 1), date(2026, 3, 3))
        assert (report.total.gross_minor, report.total.refunds_minor) == (16321, 1321)
        assert report.total.withheld_minor + report.total.agency_part_minor == 16321 - 1321
        db.session.remove()
        db.engine_of(app).dispose()  # so the database can be dropped
