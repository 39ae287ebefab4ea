"""The set-based writes (PostgreSQL) against the row path: same counts, same quarantine, same database.

Also what both paths promise alike: an unchanged sync writes nothing, a record the database could
not hold is quarantined instead of failing its batch, hashes of the old form are taken over, and
a sync killed inside a batch's writes leaves nothing of that batch behind.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, text

from app.debts.models import Debt
from app.extensions import db
from app.sync import engine, postgres, runs
from app.sync.engine import sync_agency
from app.sync.hashing import (
    EARLIER_HASHES,
    content_hash,
    legacy_content_hash,
    marshal_content_hash,
    sha1_content_hash,
)
from app.sync.models import QuarantinedRecord, SyncRun
from erp_connectors.base import DebtRecord, InstallmentRecord
from tests.factories import AgencyFactory
from tests.sync.helpers import (
    NOW,
    OTHER_AFM,
    ListConnector,
    assert_set_based_equals_row_path,
    bad_records,
    database_state,
    demo_records,
    failing_second_debts_copy,
    hold_with_a_payment,
    record,
)

ON_POSTGRESQL = pytest.mark.postgres_only


@ON_POSTGRESQL
@pytest.mark.parametrize("batch_size", [3, 7, 5000], ids=["batches-of-3", "batches-of-7", "one-batch"])
def test_set_based_writes_give_the_same_counts_quarantine_and_database_as_the_row_path(
    db_session: None, monkeypatch: pytest.MonkeyPatch, batch_size: int
) -> None:
    monkeypatch.setattr(engine, "BATCH_SIZE", batch_size)
    agency = AgencyFactory(code="eastcoast")
    row_counts = assert_set_based_equals_row_path(agency, monkeypatch)
    # The scenario did go through every rule.
    first, repeat, changed, incremental, last = row_counts
    assert first[2] > 20 and first[6] == len(bad_records()) - 1 + 2  # SAME-RF is kept; two repeats
    assert repeat[2:4] == (0, 0) and repeat[4] == first[2] and repeat[6] == first[6]
    assert changed[3] >= 2 and changed[5] >= 3 and changed[7] >= 2  # updated, closed (2 vanished), flagged
    assert incremental[0] == "incremental" and incremental[2] == 1
    assert last[3] >= 3 and last[6] == 0  # the vanished debt back, the reopened one, the changed one
    outcomes = {row[0]: (row[12], row[19]) for row in database_state(agency.id)["debts"]}
    assert ("open", None) in outcomes.values() and ("cancelled", "vanished") in outcomes.values()


@pytest.mark.parametrize("set_based", [True, False], ids=["set-based", "row-by-row"])
def test_an_unchanged_sync_rewrites_no_row(db_session: None, monkeypatch: pytest.MonkeyPatch, set_based: bool) -> None:
    monkeypatch.setattr(engine, "SET_BASED_ON_POSTGRESQL", set_based)
    monkeypatch.setattr(engine, "BATCH_SIZE", 9)
    agency = AgencyFactory(code="eastcoast")
    records = demo_records()
    first = sync_agency(agency, ListConnector(records), now=NOW)
    postgresql = db.session.get_bind().dialect.name == "postgresql"
    versions = (
        "SELECT 'debt', id, xmin::text FROM debts UNION ALL SELECT 'installment', id, xmin::text FROM installments"
        " UNION ALL SELECT 'debtor', id, xmin::text FROM debtors ORDER BY 1, 2"
    )
    before = db.session.execute(text(versions)).all() if postgresql else None
    synced = db.session.execute(select(Debt.id, Debt.synced_at, Debt.content_hash).order_by(Debt.id)).all()

    again = sync_agency(agency, ListConnector(records), now=NOW + timedelta(hours=6))

    assert (again.created, again.updated, again.unchanged, again.closed, again.flagged) == (0, 0, first.created, 0, 0)
    assert db.session.execute(select(Debt.id, Debt.synced_at, Debt.content_hash).order_by(Debt.id)).all() == synced
    if postgresql:  # not one new row version: nothing was written, not even the same values
        assert db.session.execute(text(versions)).all() == before


@ON_POSTGRESQL
def test_a_sync_killed_inside_a_batch_leaves_nothing_of_it_and_a_rerun_equals_a_clean_run(
    db_session: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "BATCH_SIZE", 10)
    records = demo_records(debtors=15)
    clean_agency, broken_agency = AgencyFactory(code="eastcoast"), AgencyFactory(code="eastcoast2")
    sync_agency(clean_agency, ListConnector(records), now=NOW)

    killed = KeyboardInterrupt("killed between the debts and their installments")
    with failing_second_debts_copy(monkeypatch, killed), pytest.raises(KeyboardInterrupt):
        sync_agency(broken_agency, ListConnector(records), now=NOW)
    db.session.rollback()  # what the server does when a killed process's connection drops

    kept = db.session.scalar(select(func.count()).select_from(Debt).where(Debt.agency_id == broken_agency.id))
    assert kept == 10  # the first batch only: the second left neither debts nor installments
    orphans = (
        select(func.count())
        .select_from(Debt)
        .where(Debt.agency_id == broken_agency.id, Debt.category == "settled", ~Debt.installments.any())
    )
    assert db.session.scalar(orphans) == 0
    dead = db.session.scalars(select(SyncRun).where(SyncRun.agency_id == broken_agency.id)).one()
    assert dead.status == "running"  # nobody was left to say otherwise
    dead.heartbeat_at = NOW - runs.STALE_RUN_AFTER * 2
    db.session.commit()

    rerun = sync_agency(broken_agency, ListConnector(records), now=NOW)
    assert (rerun.status, rerun.created, rerun.unchanged) == ("succeeded", len(records) - 10, 10)
    assert dead.status == "abandoned"
    assert database_state(broken_agency.id)["debts"] == database_state(clean_agency.id)["debts"]
    assert database_state(broken_agency.id)["installments"] == database_state(clean_agency.id)["installments"]


EARLIER_FORMS = pytest.mark.parametrize(
    "earlier_hash",
    [marshal_content_hash, sha1_content_hash, legacy_content_hash],
    ids=["marshal-blake2b", "sha1", "json-sha256"],
)


@EARLIER_FORMS
@pytest.mark.parametrize("set_based", [True, False], ids=["set-based", "row-by-row"])
def test_a_hash_stored_in_an_earlier_form_counts_as_unchanged_and_is_replaced(
    db_session: None, monkeypatch: pytest.MonkeyPatch, set_based: bool, earlier_hash: Callable[[DebtRecord], str]
) -> None:
    monkeypatch.setattr(engine, "SET_BASED_ON_POSTGRESQL", set_based)
    agency = AgencyFactory()
    settled = record(
        "S-1",
        category="settled",
        installments=(InstallmentRecord(1, date(2026, 1, 31), 6000), InstallmentRecord(2, date(2026, 2, 28), 6000)),
    )
    sync_agency(agency, ListConnector([record("A-1"), settled]), now=NOW)
    for item in (record("A-1"), settled):
        debt = db.session.scalars(select(Debt).where(Debt.external_id == item.external_id)).one()
        debt.content_hash = earlier_hash(item)  # as a sync before this version stored it
    db.session.commit()

    run = sync_agency(agency, ListConnector([record("A-1"), settled]), now=NOW + timedelta(days=1))

    assert (run.unchanged, run.updated) == (2, 0)
    rows = db.session.execute(
        select(Debt.external_id, Debt.content_hash, Debt.synced_at).order_by(Debt.external_id)
    ).all()
    assert [tuple(row) for row in rows] == [
        ("A-1", content_hash(record("A-1")), NOW),
        ("S-1", content_hash(settled), NOW),
    ]
    assert len(content_hash(settled)) not in EARLIER_HASHES  # the forms are told apart by length

    # Once: the next sync finds the current form, unchanged, and writes nothing.
    again = sync_agency(agency, ListConnector([record("A-1"), settled]), now=NOW + timedelta(days=2))
    assert (again.unchanged, again.updated) == (2, 0)
    assert [
        tuple(row)
        for row in db.session.execute(
            select(Debt.external_id, Debt.content_hash, Debt.synced_at).order_by(Debt.external_id)
        ).all()
    ] == [tuple(row) for row in rows]


@EARLIER_FORMS
@pytest.mark.parametrize("set_based", [True, False], ids=["set-based", "row-by-row"])
def test_a_hash_of_an_earlier_form_that_does_not_match_means_changed(
    db_session: None, monkeypatch: pytest.MonkeyPatch, set_based: bool, earlier_hash: Callable[[DebtRecord], str]
) -> None:
    monkeypatch.setattr(engine, "SET_BASED_ON_POSTGRESQL", set_based)
    agency = AgencyFactory()
    sync_agency(agency, ListConnector([record("A-1")]), now=NOW)
    debt = db.session.scalars(select(Debt).where(Debt.external_id == "A-1")).one()
    debt.content_hash = earlier_hash(record("A-1", description="What the ERP said before"))
    db.session.commit()

    run = sync_agency(agency, ListConnector([record("A-1")]), now=NOW + timedelta(days=1))

    assert (run.unchanged, run.updated) == (0, 1)
    assert db.session.scalars(select(Debt.content_hash)).one() == content_hash(record("A-1"))


@pytest.mark.parametrize("set_based", [True, False], ids=["set-based", "row-by-row"])
def test_a_record_the_database_could_not_hold_is_quarantined_not_fatal_to_its_batch(
    db_session: None, monkeypatch: pytest.MonkeyPatch, set_based: bool
) -> None:
    monkeypatch.setattr(engine, "SET_BASED_ON_POSTGRESQL", set_based)
    agency = AgencyFactory()
    stream = [
        record("GOOD-1"),
        record("LONG", description="x" * 301),
        record("HUGE", principal_minor=2**31),
        record("NUL", debtor_name="Μαρία\x00"),
        record("GOOD-2", tax_id=OTHER_AFM),
    ]
    run = sync_agency(agency, ListConnector(stream), now=NOW)
    assert (run.created, run.quarantined, run.status) == (2, 3, "succeeded")
    reasons = dict(db.session.execute(select(QuarantinedRecord.external_id, QuarantinedRecord.reason)).all())
    assert "301 characters; at most 300" in reasons["LONG"]
    assert "larger than the portal can keep" in reasons["HUGE"]
    assert "NUL character" in reasons["NUL"]
    assert set(db.session.scalars(select(Debt.external_id))) == {"GOOD-1", "GOOD-2"}


@pytest.mark.parametrize("set_based", [True, False], ids=["set-based", "row-by-row"])
def test_text_that_copy_must_escape_is_stored_exactly_as_the_erp_sent_it(
    db_session: None, monkeypatch: pytest.MonkeyPatch, set_based: bool
) -> None:
    monkeypatch.setattr(engine, "SET_BASED_ON_POSTGRESQL", set_based)
    agency = AgencyFactory()
    tricky = record(
        "X\\1\t2",
        debtor_name="Νίκος \\N Tab\there",
        description="Back\\slash, tab\t, new\nline, CR\r, \\N and Δήμος",
        vehicle_plate="ΑΒΓ 1234",
        contact_email=None,
        contact_phone="+30\t210",
    )
    run = sync_agency(agency, ListConnector([tricky]), now=NOW)

    assert (run.created, run.quarantined) == (1, 0)
    debt = db.session.scalars(select(Debt).where(Debt.agency_id == agency.id)).one()
    stored = (
        debt.external_id,
        debt.debtor.name,
        debt.description,
        debt.vehicle_plate,
        debt.contact_email,
        debt.contact_phone,
    )
    assert stored == (tricky.external_id, tricky.debtor_name, tricky.description, "ΑΒΓ 1234", None, "+30\t210")
    assert debt.synced_at == NOW and debt.due_date == tricky.due_date


class SpyCursor:
    """A psycopg cursor that records the first word of each statement and may act after one."""

    def __init__(self, cursor: object, after: Callable[[str], None] = lambda query: None) -> None:
        self._cursor = cursor
        self._after = after
        self.statements: list[str] = []

    def execute(self, query: str, parameters: object = None) -> object:
        result = self._cursor.execute(query, parameters)
        self.statements.append(query.split()[0])
        self._after(query)
        return result

    def __getattr__(self, name: str) -> object:
        return getattr(self._cursor, name)


def seen_bitmap(*debt_ids: int) -> bytes:
    seen = bytearray(max(db.session.scalars(select(Debt.id))) + 1)
    for debt_id in debt_ids:
        seen[debt_id] = 1
    return bytes(seen)


@ON_POSTGRESQL
def test_a_debt_a_payment_holds_after_the_vanished_scan_is_flagged_not_closed(db_session: None) -> None:
    agency = AgencyFactory()
    sync_agency(agency, ListConnector([record("KEEP"), record("GONE"), record("HELD-LATE", tax_id=OTHER_AFM)]), now=NOW)
    ids = dict(db.session.execute(select(Debt.external_id, Debt.id)).all())

    def hold_after_the_scan(query: str) -> None:
        if query.startswith("SELECT id FROM debts"):  # the scan found HELD-LATE vanished; now a payment takes it
            hold_with_a_payment(agency.id, "HELD-LATE")

    cursor = SpyCursor(postgres.cursor(), hold_after_the_scan)
    assert postgres.close_vanished(cursor, agency.id, seen_bitmap(ids["KEEP"]), NOW, "held") == (1, 1)

    rows = {
        external_id: (status, reason, review)
        for external_id, status, reason, review in db.session.execute(
            select(Debt.external_id, Debt.status, Debt.closed_reason, Debt.review_reason)
        )
    }
    assert rows == {
        "KEEP": ("open", None, None),
        "GONE": ("cancelled", "vanished", None),
        "HELD-LATE": ("open", None, "held"),
    }


@ON_POSTGRESQL
def test_nothing_vanished_means_one_scan_and_no_update(db_session: None) -> None:
    agency = AgencyFactory()
    sync_agency(agency, ListConnector([record("A-1"), record("A-2", tax_id=OTHER_AFM)]), now=NOW)
    cursor = SpyCursor(postgres.cursor())
    assert postgres.close_vanished(
        cursor, agency.id, seen_bitmap(*db.session.scalars(select(Debt.id))), NOW, "held"
    ) == (0, 0)
    assert cursor.statements == ["SET", "SELECT"]
    assert set(db.session.scalars(select(Debt.status))) == {"open"}
