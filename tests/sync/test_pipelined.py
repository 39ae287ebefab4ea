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
from sqlalchemy import func, select, text

from app.debts.models import Debt, Debtor
from app.domain.references import rf_for_debt
from app.extensions import db
from app.sync import engine, postgres, set_based
from app.sync.engine import sync_agency
from app.sync.models import QuarantinedRecord, SyncRun
from tests.factories import AgencyFactory
from tests.sync.helpers import (
    AFM,
    NOW,
    OTHER_AFM,
    ListConnector,
    assert_set_based_equals_row_path,
    counts,
    database_state,
    demo_records,
    failing_second_debts_copy,
    record,
)

pytestmark = pytest.mark.postgres_only


@pytest.fixture()
def pipelined(app: Flask, committed_db: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """An app context with real commits, each write delayed; yields the sizes of the batches written in the thread."""
    written: list[int] = []
    write_prepared = set_based.write_prepared

    def slow_write(cursor: Any, agency_id: int, job: set_based.PreparedBatch, synced_at: Any) -> set_based.Written:
        time.sleep(0.05)  # the next batch is sorted meanwhile
        return write_prepared(cursor, agency_id, job, synced_at)

    write_in_thread = set_based.BatchWriter._write

    def counted(self: set_based.BatchWriter, job: set_based.PreparedBatch) -> set_based.Written:
        written.append(len(job.write.good))
        return write_in_thread(self, job)

    monkeypatch.setattr(set_based, "write_prepared", slow_write)
    monkeypatch.setattr(set_based.BatchWriter, "_write", counted)
    with app.app_context():
        yield written


@pytest.mark.parametrize("batch_size", [3, 7], ids=["batches-of-3", "batches-of-7"])
def test_pipelined_writes_give_the_row_paths_counts_quarantine_and_database(
    pipelined: list[int], monkeypatch: pytest.MonkeyPatch, batch_size: int
) -> None:
    monkeypatch.setattr(engine, "BATCH_SIZE", batch_size)
    assert_set_based_equals_row_path(AgencyFactory(code="eastcoast"), monkeypatch)
    assert len(pipelined) > 10, "the writes did not go through the writer's thread"


def test_the_batch_in_flight_counts_as_written_for_duplicates_and_payment_codes(
    pipelined: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of two; each conflict below is with the batch just before, still uncommitted when looked up."""
    monkeypatch.setattr(engine, "BATCH_SIZE", 2)
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
    codes = dict(
        db.session.execute(select(Debt.external_id, Debt.rf_reference).where(Debt.agency_id == agency.id)).all()
    )
    assert codes == {
        "X-1": rf_for_debt(code, "NEW-CODE"),
        "A-1": rf_for_debt(code, "A-CODE"),
        "Y-1": rf_for_debt(code, "OLD-CODE"),
        "C-1": rf_for_debt(code, "C-1"),
    }


def test_a_write_that_fails_in_the_thread_fails_the_run_and_a_rerun_finishes_the_job(
    pipelined: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "BATCH_SIZE", 10)
    records = demo_records(debtors=15)
    clean_agency, broken_agency = AgencyFactory(code="eastcoast"), AgencyFactory(code="eastcoast2")
    sync_agency(clean_agency, ListConnector(records), now=NOW)

    with (
        failing_second_debts_copy(
            monkeypatch, RuntimeError("the database went away between the debts and their installments")
        ),
        pytest.raises(RuntimeError, match="went away"),
    ):
        sync_agency(broken_agency, ListConnector(records), now=NOW)

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
    monkeypatch.setattr(engine, "BATCH_SIZE", 5)
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


def test_a_debtor_another_sync_creates_meanwhile_is_taken_not_fatal(
    app: Flask, committed_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New debtors are copied under a savepoint: one that appeared since the look-up sends them the slow way."""
    reserve_ids = postgres.reserve_ids
    other_id: list[int] = []

    def raced_reserve(cursor: Any, table: str, count: int) -> list[int]:
        if table == "debtors" and not other_id:
            with db.engine_of(app).begin() as other:  # another agency's sync, committing first
                other_id.append(
                    other.execute(
                        text(
                            "INSERT INTO debtors (country, tax_id, name) VALUES ('GR', :tax_id, 'Other sync') RETURNING id"
                        ),
                        {"tax_id": OTHER_AFM},
                    ).scalar_one()
                )
        return reserve_ids(cursor, table, count)

    monkeypatch.setattr(postgres, "reserve_ids", raced_reserve)
    with app.app_context():
        cursor = postgres.cursor()
        ids = postgres.debtor_ids(cursor, {("GR", AFM): "Μαρία Παπαδοπούλου", ("GR", OTHER_AFM): "Γιώργος Νικολάου"})
        db.session.commit()
        stored = dict(db.session.execute(select(Debtor.tax_id, Debtor.id)).all())
        names = dict(db.session.execute(select(Debtor.tax_id, Debtor.name)).all())
    assert ids == {("GR", AFM): stored[AFM], ("GR", OTHER_AFM): other_id[0]}
    assert len(stored) == 2
    assert names[OTHER_AFM] == "Γιώργος Νικολάου"  # this sync's name wins, as for any known debtor


def test_a_debtor_created_by_another_sync_after_the_batch_was_prepared_sends_the_batch_the_slow_way(
    app: Flask, pipelined: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    prepare_batch = set_based.prepare_batch
    other_id: list[int] = []

    def prepared_then_raced(*args: Any) -> set_based.PreparedBatch:
        job = prepare_batch(*args)
        if not other_id:
            with db.engine_of(app).begin() as other:  # another agency's sync commits the same new debtor
                other_id.append(
                    other.execute(
                        text(
                            "INSERT INTO debtors (country, tax_id, name) VALUES ('GR', :tax_id, 'Other sync') RETURNING id"
                        ),
                        {"tax_id": OTHER_AFM},
                    ).scalar_one()
                )
        return job

    slow_way: list[int] = []
    write_batch = set_based.write_batch

    def spied_write_batch(
        cursor: Any, agency_id: int, write: set_based.BatchWrite, synced_at: Any
    ) -> set_based.Written:
        slow_way.append(len(write.good))
        return write_batch(cursor, agency_id, write, synced_at)

    monkeypatch.setattr(set_based, "prepare_batch", prepared_then_raced)
    monkeypatch.setattr(set_based, "write_batch", spied_write_batch)
    agency = AgencyFactory(code="eastcoast")
    run = sync_agency(
        agency, ListConnector([record("A-1"), record("B-1", tax_id=OTHER_AFM, debtor_name="Γιώργος Νικολάου")]), now=NOW
    )

    assert (run.status, run.created) == ("succeeded", 2)
    assert slow_way == [2]
    owners = dict(db.session.execute(select(Debt.external_id, Debt.debtor_id).where(Debt.agency_id == agency.id)).all())
    assert owners["B-1"] == other_id[0]
    names = dict(db.session.execute(select(Debtor.tax_id, Debtor.name)).all())
    assert names == {AFM: "Μαρία Παπαδοπούλου", OTHER_AFM: "Γιώργος Νικολάου"}


def test_a_batch_relying_on_a_debtor_the_batch_before_did_not_write_is_written_the_slow_way(
    app: Flask, pipelined: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batch 1 promised a new debtor id but met another sync's row; batch 2, prepared meanwhile, used the promise."""
    monkeypatch.setattr(engine, "BATCH_SIZE", 1)
    prepare_batch = set_based.prepare_batch
    other_id: list[int] = []

    def prepared_then_raced(*args: Any) -> set_based.PreparedBatch:
        job = prepare_batch(*args)
        if not other_id:
            with db.engine_of(app).begin() as other:
                other_id.append(
                    other.execute(
                        text(
                            "INSERT INTO debtors (country, tax_id, name) VALUES ('GR', :tax_id, 'Other sync') RETURNING id"
                        ),
                        {"tax_id": OTHER_AFM},
                    ).scalar_one()
                )
        return job

    slow_way: list[str] = []
    write_batch = set_based.write_batch

    def spied_write_batch(
        cursor: Any, agency_id: int, write: set_based.BatchWrite, synced_at: Any
    ) -> set_based.Written:
        slow_way.extend(record.external_id for record, _, _, _ in write.good)
        return write_batch(cursor, agency_id, write, synced_at)

    monkeypatch.setattr(set_based, "prepare_batch", prepared_then_raced)
    monkeypatch.setattr(set_based, "write_batch", spied_write_batch)
    agency = AgencyFactory(code="eastcoast")
    stream = [record("B-1", tax_id=OTHER_AFM), record("B-2", tax_id=OTHER_AFM), record("A-1")]
    run = sync_agency(agency, ListConnector(stream), now=NOW)

    assert (run.status, run.created) == ("succeeded", 3)
    assert slow_way == ["B-1", "B-2"]  # A-1 had nothing to do with it
    owners = dict(db.session.execute(select(Debt.external_id, Debt.debtor_id).where(Debt.agency_id == agency.id)).all())
    assert owners["B-1"] == owners["B-2"] == other_id[0]
    assert db.session.scalar(select(func.count()).select_from(Debtor)) == 2
