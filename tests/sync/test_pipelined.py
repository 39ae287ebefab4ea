"""Pipelined set-based writes (PostgreSQL, real commits): batch N is written while batch N+1 is sorted.

With real commits the writer writes on a connection of its own, in a thread. These tests slow each
write down a little, so the next batch's look-ups run while the batch before is still uncommitted,
and check that the outcome is the row path's, record for record.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.debts.models import Debt
from app.domain.references import rf_for_debt
from app.extensions import db
from app.sync import postgres, services, set_based
from app.sync.models import QuarantinedRecord, SyncRun
from app.sync.services import sync_agency
from tests.factories import AgencyFactory
from tests.sync.test_services import NOW, OTHER_AFM, ListConnector, record
from tests.sync.test_set_based import counts, database_state, demo_records, forget_everything, run_scenario

pytestmark = pytest.mark.postgres_only


@pytest.fixture()
def pipelined(app: Flask, committed_db: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """An app context with real commits, each write delayed; yields the sizes of the batches written in the thread."""
    written: list[int] = []
    write_batch = set_based.write_batch

    def slow_write(cursor: Any, agency_id: int, write: set_based.BatchWrite, synced_at: Any) -> set_based.Written:
        time.sleep(0.05)  # the next batch is sorted meanwhile
        return write_batch(cursor, agency_id, write, synced_at)

    write_in_thread = set_based.BatchWriter._write

    def counted(self: set_based.BatchWriter, write: set_based.BatchWrite) -> set_based.Written:
        written.append(len(write.good))
        return write_in_thread(self, write)

    monkeypatch.setattr(set_based, "write_batch", slow_write)
    monkeypatch.setattr(set_based.BatchWriter, "_write", counted)
    with app.app_context():
        yield written


@pytest.mark.parametrize("batch_size", [3, 7], ids=["batches-of-3", "batches-of-7"])
def test_pipelined_writes_give_the_row_paths_counts_quarantine_and_database(
    pipelined: list[int], monkeypatch: pytest.MonkeyPatch, batch_size: int
) -> None:
    monkeypatch.setattr(services, "BATCH_SIZE", batch_size)
    agency = AgencyFactory(code="eastcoast")

    monkeypatch.setattr(services, "SET_BASED_ON_POSTGRESQL", False)
    row_counts = run_scenario(agency)
    row_state = database_state(agency.id)
    forget_everything(agency)
    assert pipelined == []

    monkeypatch.setattr(services, "SET_BASED_ON_POSTGRESQL", True)
    pipelined_counts = run_scenario(agency)
    pipelined_state = database_state(agency.id)

    assert len(pipelined) > 10, "the writes did not go through the writer's thread"
    assert pipelined_counts == row_counts
    for part in ("debts", "installments", "quarantined", "debtors"):
        assert pipelined_state[part] == row_state[part], part


def test_the_batch_in_flight_counts_as_written_for_duplicates_and_payment_codes(
    pipelined: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of two; each conflict below is with the batch just before, still uncommitted when looked up."""
    monkeypatch.setattr(services, "BATCH_SIZE", 2)
    agency = AgencyFactory(code="eastcoast")
    code = agency.code
    moving = record("X-1", rf_reference=rf_for_debt(code, "OLD-CODE"))
    sync_agency(agency, ListConnector([moving]), now=NOW)

    stream = [
        # batch 1: X-1 moves to another payment code; A-1 is new
        record("X-1", rf_reference=rf_for_debt(code, "NEW-CODE")),
        record("A-1", rf_reference=rf_for_debt(code, "A-CODE")),
        # batch 2: Y-1 takes the code X-1 gave up (allowed); A-1 again (refused)
        record("Y-1", rf_reference=rf_for_debt(code, "OLD-CODE"), tax_id=OTHER_AFM),
        record("A-1", rf_reference=rf_for_debt(code, "A-CODE")),
        # batch 3: B-1 wants A-1's code (refused); C-1 is new
        record("B-1", rf_reference=rf_for_debt(code, "A-CODE")),
        record("C-1"),
    ]
    run = sync_agency(agency, ListConnector(stream), now=NOW)

    assert pipelined[-3:] == [2, 1, 1]
    assert (run.status, run.created, run.updated, run.quarantined) == ("succeeded", 3, 1, 2)
    reasons = db.session.execute(
        select(QuarantinedRecord.external_id, QuarantinedRecord.reason).order_by(QuarantinedRecord.id)
    ).all()
    assert [tuple(row) for row in reasons] == [
        ("A-1", "The external id A-1 appears twice in one sync."),
        (
            "B-1",
            f"The RF reference {rf_for_debt(code, 'A-CODE')} already belongs to debt A-1; "
            "a payment code must name one debt.",
        ),
    ]
    codes = dict(db.session.execute(select(Debt.external_id, Debt.rf_reference).where(Debt.agency_id == agency.id)).all())
    assert codes == {
        "X-1": rf_for_debt(code, "NEW-CODE"),
        "A-1": rf_for_debt(code, "A-CODE"),
        "Y-1": rf_for_debt(code, "OLD-CODE"),
        "C-1": rf_for_debt(code, "C-1"),
    }


def test_a_write_that_fails_in_the_thread_fails_the_run_and_a_rerun_finishes_the_job(
    pipelined: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "BATCH_SIZE", 10)
    records = demo_records(debtors=15)
    clean_agency, broken_agency = AgencyFactory(code="eastcoast"), AgencyFactory(code="eastcoast2")
    sync_agency(clean_agency, ListConnector(records), now=NOW)

    copy_rows = postgres.copy_rows
    copies: list[str] = []

    def failing_copy(cursor: Any, table: str, columns: Any, rows: Any) -> None:
        copies.append(table)
        copy_rows(cursor, table, columns, rows)
        if table == "debts" and copies.count("debts") == 2:
            raise RuntimeError("the database went away between the debts and their installments")

    monkeypatch.setattr(postgres, "copy_rows", failing_copy)
    with pytest.raises(RuntimeError, match="went away"):
        sync_agency(broken_agency, ListConnector(records), now=NOW)
    monkeypatch.setattr(postgres, "copy_rows", copy_rows)

    failed = db.session.scalars(select(SyncRun).where(SyncRun.agency_id == broken_agency.id)).one()
    assert (failed.status, failed.created) == ("failed", 10)
    assert "went away" in (failed.error or "")
    kept = db.session.scalar(select(func.count()).select_from(Debt).where(Debt.agency_id == broken_agency.id))
    assert kept == 10  # the first batch only: the second left neither debts nor installments

    rerun = sync_agency(broken_agency, ListConnector(records), now=NOW)
    assert counts(rerun)[:5] == ("full", "succeeded", len(records) - 10, 0, 10)
    assert database_state(broken_agency.id)["debts"] == database_state(clean_agency.id)["debts"]
    assert database_state(broken_agency.id)["installments"] == database_state(clean_agency.id)["installments"]


def test_an_erp_failure_while_a_batch_is_in_flight_keeps_that_batch_and_counts_it(
    pipelined: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "BATCH_SIZE", 5)
    records = demo_records(debtors=6)
    agency = AgencyFactory(code="eastcoast")
    with pytest.raises(ConnectionError):
        sync_agency(agency, ListConnector(records, fail_after=12), now=NOW)

    failed = db.session.scalars(select(SyncRun).where(SyncRun.agency_id == agency.id)).one()
    stored = db.session.scalar(select(func.count()).select_from(Debt).where(Debt.agency_id == agency.id))
    assert failed.status == "failed"
    assert stored == failed.created == 10  # two whole batches, the second written after the ERP failed
    vanished = select(func.count()).select_from(Debt).where(Debt.closed_reason == "vanished")
    assert db.session.scalar(vanished) == 0  # an unfinished export closes nothing
