"""The sync engine: upsert by content hash, quarantine, closing, kill-safety, one run at a time, schedules."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from app.debts.models import Debt
from app.extensions import db
from app.sync import engine
from app.sync.engine import run_due_syncs, sync_agency
from app.sync.models import QuarantinedRecord, SyncRun
from app.sync.runs import SyncBusy, start_run
from erp_connectors.base import DebtRecord, InstallmentRecord, RecordError
from erp_connectors.demo import DemoERP
from tests.factories import AgencyFactory
from tests.sync.helpers import NOW, OTHER_AFM, ListConnector, debt, record, snapshot


def test_first_sync_creates_and_a_repeat_changes_nothing(db_session: None) -> None:
    agency = AgencyFactory(code="eastcoast")
    first = sync_agency(agency, DemoERP("eastcoast", as_of=date(2026, 3, 1)), now=NOW)
    count = db.session.scalar(select(func.count()).select_from(Debt).where(Debt.agency_id == agency.id))
    assert first.created == count > 20 and first.status == "succeeded"
    again = sync_agency(agency, DemoERP("eastcoast", as_of=date(2026, 3, 1)), now=NOW)
    assert (again.created, again.updated, again.unchanged, again.closed) == (0, 0, count, 0)
    assert db.session.scalar(select(func.count()).select_from(Debt)) == count


def test_changed_record_is_updated_in_place(db_session: None) -> None:
    agency = AgencyFactory()
    sync_agency(agency, ListConnector([record(principal_minor=12000)]), now=NOW)
    run = sync_agency(agency, ListConnector([record(principal_minor=15050, description="Corrected")]), now=NOW)
    assert (run.created, run.updated) == (0, 1)
    row = debt(agency.id, "A-1")
    assert (row.principal_minor, row.description) == (15050, "Corrected")


def test_debt_paid_at_the_counter_is_closed_with_reason_and_date(db_session: None) -> None:
    agency = AgencyFactory()
    sync_agency(agency, ListConnector([record()]), now=NOW)
    later = NOW + timedelta(days=2)
    run = sync_agency(agency, ListConnector([record(status="paid", paid_minor=12000)]), now=later)
    row = debt(agency.id, "A-1")
    assert (row.status, row.paid_minor, row.closed_reason, row.closed_at) == ("paid", 12000, "paid_at_agency", later)
    assert run.closed == 1


def test_an_erp_behind_our_online_payment_never_lowers_the_paid_amount(db_session: None) -> None:
    agency = AgencyFactory()
    sync_agency(agency, ListConnector([record()]), now=NOW)
    row = debt(agency.id, "A-1")
    row.paid_minor, row.status = 12000, "paid"  # paid online; the ERP has not heard yet
    db.session.commit()
    sync_agency(agency, ListConnector([record(paid_minor=0, description="Renamed")]), now=NOW)
    row = debt(agency.id, "A-1")
    assert (row.status, row.paid_minor, row.description) == ("paid", 12000, "Renamed")


def test_a_debt_being_paid_online_is_flagged_not_closed(db_session: None) -> None:
    from app.payments.models import Payment

    agency = AgencyFactory()
    sync_agency(agency, ListConnector([record()]), now=NOW)
    payment = Payment(reference="CP-TEST-0000-01", currency="EUR", amount_minor=12000, provider="sandbox")
    db.session.add(payment)
    db.session.flush()
    debt(agency.id, "A-1").pending_payment_id = payment.id
    db.session.commit()
    run = sync_agency(agency, ListConnector([record(status="paid", paid_minor=12000)]), now=NOW)
    row = debt(agency.id, "A-1")
    assert row.status == "open" and run.flagged == 1
    assert "online payment was in progress" in row.review_reason


def test_full_sync_closes_vanished_debts_incremental_does_not(db_session: None) -> None:
    agency = AgencyFactory()
    sync_agency(agency, ListConnector([record("A-1"), record("A-2")]), now=NOW)
    incremental = sync_agency(agency, ListConnector([record("A-1")]), full=False, now=NOW + timedelta(hours=1))
    assert incremental.kind == "incremental" and debt(agency.id, "A-2").status == "open"
    full = sync_agency(agency, ListConnector([record("A-1")]), now=NOW + timedelta(hours=2))
    row = debt(agency.id, "A-2")
    assert (row.status, row.closed_reason, full.closed) == ("cancelled", "vanished", 1)
    assert db.session.scalar(select(func.count()).select_from(Debt)) == 2  # never deleted


def test_a_vanished_debt_that_comes_back_reopens(db_session: None) -> None:
    agency = AgencyFactory()
    sync_agency(agency, ListConnector([record("A-1"), record("A-2")]), now=NOW)
    sync_agency(agency, ListConnector([record("A-1")]), now=NOW + timedelta(hours=1))
    assert debt(agency.id, "A-2").closed_reason == "vanished"
    sync_agency(agency, ListConnector([record("A-1"), record("A-2")]), now=NOW + timedelta(hours=2))
    row = debt(agency.id, "A-2")
    assert (row.status, row.closed_reason, row.closed_at) == ("open", None, None)


def test_incremental_asks_from_the_last_sync_with_an_overlap(db_session: None) -> None:
    agency = AgencyFactory()
    sync_agency(agency, ListConnector([record()]), now=NOW)
    connector = ListConnector([record()])
    sync_agency(agency, connector, full=False, now=NOW + timedelta(hours=1))
    assert connector.asked_since == [NOW - engine.INCREMENTAL_OVERLAP]


BAD_RECORDS = [
    pytest.param(record("X", principal_minor=-5), "negative", id="negative-amount"),
    pytest.param(
        RecordError("The amount 'abc' is not a number.", {"external_id": "X", "amount": "abc"}), "abc", id="non-numeric"
    ),
    pytest.param(record("X", category="disputed"), "category", id="unknown-category"),
    pytest.param(record("X", kind="Parking Fine!"), "kind", id="unknown-kind"),
    pytest.param(record("X", tax_id=""), "tax id is empty", id="missing-tax-id"),
    pytest.param(record("X", tax_id="123456789"), "check digit", id="invalid-tax-id"),
    pytest.param(record("X", rf_reference="RF00BADREF"), "RF", id="invalid-rf"),
    pytest.param(
        RecordError("The due date '31/02/2026' is not a date.", {"external_id": "X", "due": "31/02/2026"}),
        "31/02",
        id="unparsable-date",
    ),
    pytest.param(
        RecordError("Row 7 is not valid windows-1253 text.", "b'\\xff\\xfe'"), "windows-1253", id="wrong-encoding"
    ),
    pytest.param(record("X", currency="USD"), "currency", id="foreign-currency"),
]


@pytest.mark.parametrize(("bad", "reason_part"), BAD_RECORDS)
def test_each_bad_record_is_quarantined_with_reason_and_raw_and_good_ones_kept(
    db_session: None, bad: DebtRecord | RecordError, reason_part: str
) -> None:
    agency = AgencyFactory()
    run = sync_agency(agency, ListConnector([record("GOOD-1"), bad, record("GOOD-2", tax_id=OTHER_AFM)]), now=NOW)
    assert (run.created, run.quarantined) == (2, 1)
    [quarantined] = db.session.scalars(select(QuarantinedRecord)).all()
    assert reason_part.lower() in quarantined.reason.lower()
    assert quarantined.sync_run_id == run.id and quarantined.raw
    if isinstance(bad, RecordError) and isinstance(bad.raw, dict):
        assert json.loads(quarantined.raw) == bad.raw
    kept = set(db.session.scalars(select(Debt.external_id)))
    assert kept == {"GOOD-1", "GOOD-2"}


def test_duplicate_external_id_is_quarantined_even_across_batches(
    db_session: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "BATCH_SIZE", 2)
    agency = AgencyFactory()
    stream = [record("A-1"), record("A-2"), record("A-3"), record("A-1", principal_minor=1), record("A-3")]
    run = sync_agency(agency, ListConnector(stream), now=NOW)
    assert (run.created, run.quarantined) == (3, 2)
    assert debt(agency.id, "A-1").principal_minor == 12000  # the first one wins
    reasons = db.session.scalars(select(QuarantinedRecord.reason)).all()
    assert all("twice" in reason for reason in reasons)


def test_a_sync_killed_midway_then_rerun_equals_one_clean_run(
    db_session: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "BATCH_SIZE", 7)
    records = list(DemoERP("eastcoast", as_of=date(2026, 3, 1), debtors=10).iter_debts())
    clean_agency, broken_agency = AgencyFactory(code="eastcoast"), AgencyFactory(code="eastcoast2")
    sync_agency(clean_agency, ListConnector(records), now=NOW)

    with pytest.raises(ConnectionError):
        sync_agency(broken_agency, ListConnector(records, fail_after=len(records) // 2), now=NOW)
    failed = db.session.scalars(select(SyncRun).where(SyncRun.agency_id == broken_agency.id)).one()
    assert failed.status == "failed" and "stopped answering" in failed.error
    half = db.session.scalar(select(func.count()).select_from(Debt).where(Debt.agency_id == broken_agency.id))
    assert 0 < half < len(records)  # committed batches stay, consistent
    vanished = select(func.count()).select_from(Debt).where(Debt.closed_reason == "vanished")
    assert db.session.scalar(vanished) == 0  # a broken full run closes nothing as vanished
    assert broken_agency.synced_until is None

    sync_agency(broken_agency, ListConnector(records), now=NOW)

    def strip(rows: list[tuple]) -> list[tuple]:  # RF references embed the agency code
        return [
            tuple(value for position, value in enumerate(row) if not (len(row) == 8 and position == 6)) for row in rows
        ]

    assert strip(snapshot(broken_agency.id)) == strip(snapshot(clean_agency.id))


def test_two_syncs_of_one_agency_never_run_at_once(db_session: None) -> None:
    agency = AgencyFactory()
    start_run(agency, "full", NOW)
    with pytest.raises(SyncBusy, match="already running"):
        sync_agency(agency, ListConnector([record()]), now=NOW + timedelta(minutes=1))
    # A run whose heartbeat stopped long ago is taken as dead and replaced.
    later = sync_agency(agency, ListConnector([record()]), now=NOW + timedelta(minutes=30))
    assert later.status == "succeeded"
    statuses = sorted(db.session.scalars(select(SyncRun.status)))
    assert statuses == ["abandoned", "succeeded"]


def test_installments_are_synced_and_an_rf_assigned(db_session: None) -> None:
    agency = AgencyFactory(code="testtown")
    schedule = (
        InstallmentRecord(1, date(2026, 1, 31), 4000),
        InstallmentRecord(2, date(2026, 2, 28), 4000),
        InstallmentRecord(3, date(2026, 3, 31), 4000),
    )
    sync_agency(agency, ListConnector([record("S-1", category="settled", installments=schedule)]), now=NOW)
    row = debt(agency.id, "S-1")
    assert [(i.number, i.amount_minor, i.status) for i in row.installments] == [
        (1, 4000, "open"),
        (2, 4000, "open"),
        (3, 4000, "open"),
    ]
    assert row.rf_reference.startswith("RF") and "TESTTO" in row.rf_reference
    paid_first = replace(schedule[0], paid_minor=4000)
    sync_agency(
        agency,
        ListConnector([record("S-1", category="settled", paid_minor=4000, installments=(paid_first, *schedule[1:]))]),
        now=NOW,
    )
    assert [i.status for i in debt(agency.id, "S-1").installments] == ["paid", "open", "open"]


def test_scheduled_syncs_run_when_their_interval_has_passed(db_session: None) -> None:
    due = AgencyFactory(
        code="eastcoast", connector={"type": "demo", "options": {"debtors": 1}}, sync_interval_minutes=15
    )
    not_yet = AgencyFactory(
        code="mountvalley", connector={"type": "demo", "options": {"debtors": 1}}, sync_interval_minutes=15
    )
    AgencyFactory(sync_interval_minutes=15)  # push-only: nothing to pull
    AgencyFactory(code="eastcoast-water", connector={"type": "demo"})  # no schedule
    due.synced_until = NOW - timedelta(minutes=20)
    not_yet.synced_until = NOW - timedelta(minutes=5)
    db.session.commit()
    runs = run_due_syncs(NOW)
    assert [(run.agency_id, run.kind, run.status) for run in runs] == [(due.id, "incremental", "succeeded")]
