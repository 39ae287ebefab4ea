"""The first full sync: upsert by external id, skip bad records, never lose a payment."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date

from sqlalchemy import func, select

from app.debts.models import Debt
from app.extensions import db
from app.sync.services import sync_agency
from erp_connectors.base import DebtRecord, InstallmentRecord, RecordError
from erp_connectors.demo import DemoERP
from tests.factories import AgencyFactory

#: Valid Greek AFMs (check digit by stdnum.gr.vat).
AFM = "147382606"
OTHER_AFM = "159024173"


@dataclass
class ListConnector:
    """An ERP connector over a fixed list: the protocol's simplest real implementation."""

    records: list[DebtRecord | RecordError]

    def check(self) -> None:
        """Always reachable."""

    def iter_debts(self) -> Iterator[DebtRecord | RecordError]:
        yield from self.records


def record(external_id: str = "A-1", **changes: object) -> DebtRecord:
    base = DebtRecord(
        external_id=external_id,
        tax_id=AFM,
        tax_country="GR",
        debtor_name="Μαρία Παπαδοπούλου",
        category="certified",
        kind="property_fee",
        description="Property fee 2025",
        principal_minor=12000,
        paid_minor=0,
        currency="EUR",
        due_date=date(2026, 1, 31),
    )
    return replace(base, **changes)


def debt(agency_id: int, external_id: str) -> Debt:
    return db.session.scalars(
        select(Debt).where(Debt.agency_id == agency_id, Debt.external_id == external_id)
    ).one()


def test_first_sync_creates_and_a_repeat_changes_nothing(db_session: None) -> None:
    agency = AgencyFactory(code="eastcoast")
    first = sync_agency(agency, DemoERP("eastcoast", as_of=date(2026, 3, 1)))
    count = db.session.scalar(select(func.count()).select_from(Debt).where(Debt.agency_id == agency.id))
    assert first.created == count > 20
    again = sync_agency(agency, DemoERP("eastcoast", as_of=date(2026, 3, 1)))
    assert (again.created, again.updated, again.unchanged) == (0, 0, count)
    assert db.session.scalar(select(func.count()).select_from(Debt)) == count


def test_changed_record_is_updated_in_place(db_session: None) -> None:
    agency = AgencyFactory()
    sync_agency(agency, ListConnector([record(principal_minor=12000)]))
    result = sync_agency(agency, ListConnector([record(principal_minor=15050, description="Corrected")]))
    assert (result.created, result.updated) == (0, 1)
    row = debt(agency.id, "A-1")
    assert (row.principal_minor, row.description) == (15050, "Corrected")


def test_debt_paid_at_the_counter_is_closed(db_session: None) -> None:
    agency = AgencyFactory()
    sync_agency(agency, ListConnector([record()]))
    sync_agency(agency, ListConnector([record(status="paid", paid_minor=12000)]))
    row = debt(agency.id, "A-1")
    assert (row.status, row.paid_minor) == ("paid", 12000)


def test_an_erp_behind_our_online_payment_never_lowers_the_paid_amount(db_session: None) -> None:
    agency = AgencyFactory()
    sync_agency(agency, ListConnector([record()]))
    row = debt(agency.id, "A-1")
    row.paid_minor, row.status = 12000, "paid"  # paid online; the ERP has not heard yet
    db.session.commit()
    sync_agency(agency, ListConnector([record(paid_minor=0)]))
    row = debt(agency.id, "A-1")
    assert (row.status, row.paid_minor) == ("paid", 12000)


def test_bad_records_are_skipped_with_a_reason_and_good_ones_kept(db_session: None) -> None:
    agency = AgencyFactory()
    connector = ListConnector(
        [
            record("GOOD-1"),
            record("BAD-AFM", tax_id="123456789"),
            record("BAD-AMOUNT", principal_minor=-5),
            RecordError("amount 'abc' is not a number", {"id": "BAD-RAW", "amount": "abc"}),
            record("GOOD-2", tax_id=OTHER_AFM),
            record("GOOD-1"),  # the same external id twice in one batch
        ]
    )
    result = sync_agency(agency, connector)
    assert (result.created, result.rejected) == (2, 4)
    assert any("abc" in problem for problem in result.problems)
    assert any("twice" in problem for problem in result.problems)
    kept = set(db.session.scalars(select(Debt.external_id).where(Debt.agency_id == agency.id)))
    assert kept == {"GOOD-1", "GOOD-2"}


def test_installments_are_synced_and_rf_assigned(db_session: None) -> None:
    agency = AgencyFactory(code="testtown")
    schedule = (
        InstallmentRecord(1, date(2026, 1, 31), 4000),
        InstallmentRecord(2, date(2026, 2, 28), 4000),
        InstallmentRecord(3, date(2026, 3, 31), 4000),
    )
    sync_agency(agency, ListConnector([record("S-1", category="settled", installments=schedule)]))
    row = debt(agency.id, "S-1")
    assert [(i.number, i.amount_minor, i.status) for i in row.installments] == [
        (1, 4000, "open"),
        (2, 4000, "open"),
        (3, 4000, "open"),
    ]
    assert row.rf_reference.startswith("RF") and "TESTTO" in row.rf_reference
