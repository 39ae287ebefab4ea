"""The set-based writes (PostgreSQL) against the row path: same counts, same quarantine, same database.

Also what both paths promise alike: an unchanged sync writes nothing, a record the database could
not hold is quarantined instead of failing its batch, hashes of the old form are taken over, and
a sync killed inside a batch's writes leaves nothing of that batch behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date, timedelta

import pytest
from sqlalchemy import delete, func, select, text

from app.agencies.models import Agency
from app.debts.models import Debt, Debtor, Installment
from app.extensions import db
from app.payments.models import Payment
from app.sync import postgres, services
from app.sync.models import QuarantinedRecord, SyncRun
from app.sync.services import EARLIER_HASHES, content_hash, legacy_content_hash, sha1_content_hash, sync_agency
from erp_connectors.base import DebtRecord, InstallmentRecord, RecordError
from erp_connectors.demo import DemoERP
from tests.factories import AgencyFactory
from tests.sync.test_services import AFM, NOW, OTHER_AFM, ListConnector, record

AS_OF = date(2026, 3, 1)
ON_POSTGRESQL = pytest.mark.postgres_only


def demo_records(debtors: int = 12) -> list[DebtRecord]:
    return [item for item in DemoERP("eastcoast", as_of=AS_OF, debtors=debtors).iter_debts() if isinstance(item, DebtRecord)]


def database_state(agency_id: int) -> dict[str, list[tuple]]:
    """Everything the sync wrote for an agency, without surrogate ids (they depend on the order of writes)."""
    debts = db.session.execute(
        select(
            Debt.external_id, Debtor.country, Debtor.tax_id, Debtor.name, Debt.category, Debt.kind,
            Debt.description, Debt.currency, Debt.principal_minor, Debt.paid_minor, Debt.due_date,
            Debt.rf_reference, Debt.status, Debt.vehicle_plate, Debt.contact_email, Debt.contact_phone,
            Debt.pending_payment_id.is_not(None), Debt.synced_at, Debt.content_hash, Debt.closed_reason, Debt.closed_at,
            Debt.review_reason,
        )
        .join(Debtor, Debt.debtor_id == Debtor.id)
        .where(Debt.agency_id == agency_id)
        .order_by(Debt.external_id)
    ).all()  # fmt: skip
    installments = db.session.execute(
        select(
            Debt.external_id, Installment.number, Installment.due_date, Installment.amount_minor,
            Installment.paid_minor, Installment.status, Installment.pending_payment_id.is_not(None),
        )
        .join(Debt, Installment.debt_id == Debt.id)
        .where(Debt.agency_id == agency_id)
        .order_by(Debt.external_id, Installment.number)
    ).all()  # fmt: skip
    quarantined = db.session.execute(
        select(QuarantinedRecord.external_id, QuarantinedRecord.reason, QuarantinedRecord.raw, QuarantinedRecord.status)
        .where(QuarantinedRecord.agency_id == agency_id)
        .order_by(QuarantinedRecord.id)
    ).all()
    debtors = db.session.execute(select(Debtor.country, Debtor.tax_id, Debtor.name).order_by(Debtor.tax_id)).all()
    return {
        "debts": [tuple(row) for row in debts],
        "installments": [tuple(row) for row in installments],
        "quarantined": [tuple(row) for row in quarantined],
        "debtors": [tuple(row) for row in debtors],
    }


def counts(run: SyncRun) -> tuple:
    return (run.kind, run.status, run.created, run.updated, run.unchanged, run.closed, run.quarantined, run.flagged, run.error)


def hold_with_a_payment(agency_id: int, external_id: str, *, installment: bool = False) -> None:
    """An online payment holds the debt (or its first installment) right now."""
    payment = Payment(reference=f"CP-{external_id[-6:]}-HOLD", currency="EUR", amount_minor=100, provider="sandbox")
    db.session.add(payment)
    db.session.flush()
    debt = db.session.scalars(select(Debt).where(Debt.agency_id == agency_id, Debt.external_id == external_id)).one()
    if installment:
        debt.installments[0].pending_payment_id = payment.id
    else:
        debt.pending_payment_id = payment.id
    db.session.commit()


def bad_records() -> list[DebtRecord | RecordError]:
    return [
        record("BAD-NEGATIVE", principal_minor=-5),
        RecordError("The amount 'abc' is not a number.", {"external_id": "BAD-TEXT", "amount": "abc"}),
        RecordError("Row 7 is not valid windows-1253 text.", "b'\\xff\\xfe'"),
        record("BAD-CATEGORY", category="disputed"),
        record("BAD-AFM", tax_id="123456789"),
        record("BAD-RF", rf_reference="RF00BADREF"),
        record("BAD-CURRENCY", currency="USD"),
        record("BAD-LONG", description="Δ" * 301),
        record("BAD-HUGE", principal_minor=2**31),
        record("SAME-RF", rf_reference=None, tax_id=OTHER_AFM),
        record("SAME_RF", tax_id=OTHER_AFM),  # rf_for_debt drops the punctuation: the same RF as SAME-RF
    ]


def run_scenario(agency: Agency) -> list[tuple]:
    """Five syncs that go through every rule: create, unchanged, update, close, flag, vanish, reopen, quarantine."""
    demo = demo_records()
    settled = next(item for item in demo if item.category == "settled" and item.status == "open")
    plain = [item for item in demo if item.category != "settled" and item.status == "open" and item.paid_minor == 0]
    to_pay, to_cancel, to_vanish, to_flag, to_flag_vanished, to_reopen = plain[:6]
    runs = []

    first = [*demo[:20], *bad_records(), demo[3], *demo[20:], demo[25]]  # demo[3] and demo[25] twice
    runs.append(sync_agency(agency, ListConnector(first), now=NOW))
    runs.append(sync_agency(agency, ListConnector(first), now=NOW + timedelta(hours=1)))  # unchanged

    hold_with_a_payment(agency.id, to_flag.external_id)
    hold_with_a_payment(agency.id, to_flag_vanished.external_id, installment=False)
    changes = {
        to_pay.external_id: replace(to_pay, status="paid", paid_minor=to_pay.principal_minor),
        to_cancel.external_id: replace(to_cancel, status="cancelled"),
        to_flag.external_id: replace(to_flag, status="paid", paid_minor=to_flag.principal_minor),
        settled.external_id: replace(
            settled,
            paid_minor=settled.paid_minor + settled.installments[-1].amount_minor - settled.installments[-1].paid_minor,
            installments=(*settled.installments[:-1], replace(settled.installments[-1], paid_minor=settled.installments[-1].amount_minor)),
        ),
        demo[1].external_id: replace(demo[1], description="Corrected description", debtor_name="Renamed debtor"),
    }
    second = [changes.get(item.external_id, item) for item in demo if item.external_id not in (to_vanish.external_id, to_flag_vanished.external_id)]
    runs.append(sync_agency(agency, ListConnector(second), now=NOW + timedelta(days=1)))

    # An incremental sync closes nothing as vanished; a record added later, another settled debt.
    extra = record("NEW-1", category="settled", installments=(InstallmentRecord(1, date(2026, 4, 1), 6000), InstallmentRecord(2, date(2026, 5, 1), 6000)))
    runs.append(sync_agency(agency, ListConnector([extra, changes[to_pay.external_id]]), full=False, now=NOW + timedelta(days=2)))

    # The vanished debt comes back; the paid one is reopened by the ERP (a counter payment reversed).
    again = {to_pay.external_id: to_pay, to_reopen.external_id: replace(to_reopen, description="Changed later")}
    third = [again.get(item.external_id, item) for item in second] + [to_vanish, extra]
    runs.append(sync_agency(agency, ListConnector(third), now=NOW + timedelta(days=3)))
    return [counts(run) for run in runs]


def forget_everything(agency: Agency) -> None:
    """Remove what the scenario wrote, so the other path starts from the same empty database."""
    db.session.execute(delete(Installment).where(Installment.debt_id.in_(select(Debt.id).where(Debt.agency_id == agency.id))))
    db.session.execute(delete(Debt).where(Debt.agency_id == agency.id))
    db.session.execute(delete(Payment))
    db.session.execute(delete(QuarantinedRecord).where(QuarantinedRecord.agency_id == agency.id))
    db.session.execute(delete(SyncRun).where(SyncRun.agency_id == agency.id))
    db.session.execute(delete(Debtor))
    agency.synced_until = agency.last_full_sync_at = None
    db.session.commit()


def assert_set_based_equals_row_path(agency: Agency, monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Run the scenario by the row path, forget it, run it set-based: same counts and database. Returns the counts."""
    monkeypatch.setattr(services, "SET_BASED_ON_POSTGRESQL", False)
    row_counts = run_scenario(agency)
    row_state = database_state(agency.id)
    forget_everything(agency)

    monkeypatch.setattr(services, "SET_BASED_ON_POSTGRESQL", True)
    set_counts = run_scenario(agency)
    set_state = database_state(agency.id)

    assert set_counts == row_counts
    for part in ("debts", "installments", "quarantined", "debtors"):
        assert set_state[part] == row_state[part], part
    return row_counts


@ON_POSTGRESQL
@pytest.mark.parametrize("batch_size", [3, 7, 5000], ids=["batches-of-3", "batches-of-7", "one-batch"])
def test_set_based_writes_give_the_same_counts_quarantine_and_database_as_the_row_path(
    db_session: None, monkeypatch: pytest.MonkeyPatch, batch_size: int
) -> None:
    monkeypatch.setattr(services, "BATCH_SIZE", batch_size)
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
    monkeypatch.setattr(services, "SET_BASED_ON_POSTGRESQL", set_based)
    monkeypatch.setattr(services, "BATCH_SIZE", 9)
    agency = AgencyFactory(code="eastcoast")
    records = demo_records()
    first = sync_agency(agency, ListConnector(records), now=NOW)
    postgresql = db.session.get_bind().dialect.name == "postgresql"
    versions = "SELECT 'debt', id, xmin::text FROM debts UNION ALL SELECT 'installment', id, xmin::text FROM installments UNION ALL SELECT 'debtor', id, xmin::text FROM debtors ORDER BY 1, 2"
    before = db.session.execute(text(versions)).all() if postgresql else None
    synced = db.session.execute(select(Debt.id, Debt.synced_at, Debt.content_hash).order_by(Debt.id)).all()

    again = sync_agency(agency, ListConnector(records), now=NOW + timedelta(hours=6))

    assert (again.created, again.updated, again.unchanged, again.closed, again.flagged) == (0, 0, first.created, 0, 0)
    assert db.session.execute(select(Debt.id, Debt.synced_at, Debt.content_hash).order_by(Debt.id)).all() == synced
    if postgresql:  # not one new row version: nothing was written, not even the same values
        assert db.session.execute(text(versions)).all() == before


@contextlib.contextmanager
def failing_second_debts_copy(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> Iterator[None]:
    """The second COPY into debts raises ``error`` once it has written: between a batch's debts and installments."""
    copy_payload = postgres.copy_payload
    copies: list[str] = []

    def failing_copy(cursor: object, table: str, columns: object, payload: str) -> None:
        copies.append(table)
        copy_payload(cursor, table, columns, payload)
        if table == "debts" and copies.count("debts") == 2:
            raise error

    monkeypatch.setattr(postgres, "copy_payload", failing_copy)
    try:
        yield
    finally:
        monkeypatch.setattr(postgres, "copy_payload", copy_payload)


@ON_POSTGRESQL
def test_a_sync_killed_inside_a_batch_leaves_nothing_of_it_and_a_rerun_equals_a_clean_run(
    db_session: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "BATCH_SIZE", 10)
    records = demo_records(debtors=15)
    clean_agency, broken_agency = AgencyFactory(code="eastcoast"), AgencyFactory(code="eastcoast2")
    sync_agency(clean_agency, ListConnector(records), now=NOW)

    with failing_second_debts_copy(monkeypatch, KeyboardInterrupt("killed between the debts and their installments")):
        with pytest.raises(KeyboardInterrupt):
            sync_agency(broken_agency, ListConnector(records), now=NOW)
    db.session.rollback()  # what the server does when a killed process's connection drops

    kept = db.session.scalar(select(func.count()).select_from(Debt).where(Debt.agency_id == broken_agency.id))
    assert kept == 10  # the first batch only: the second left neither debts nor installments
    orphans = select(func.count()).select_from(Debt).where(
        Debt.agency_id == broken_agency.id, Debt.category == "settled", ~Debt.installments.any()
    )
    assert db.session.scalar(orphans) == 0
    dead = db.session.scalars(select(SyncRun).where(SyncRun.agency_id == broken_agency.id)).one()
    assert dead.status == "running"  # nobody was left to say otherwise
    dead.heartbeat_at = NOW - services.STALE_RUN_AFTER * 2
    db.session.commit()

    rerun = sync_agency(broken_agency, ListConnector(records), now=NOW)
    assert (rerun.status, rerun.created, rerun.unchanged) == ("succeeded", len(records) - 10, 10)
    assert dead.status == "abandoned"
    assert database_state(broken_agency.id)["debts"] == database_state(clean_agency.id)["debts"]
    assert database_state(broken_agency.id)["installments"] == database_state(clean_agency.id)["installments"]


@pytest.mark.parametrize("earlier_hash", [sha1_content_hash, legacy_content_hash], ids=["sha1", "json-sha256"])
@pytest.mark.parametrize("set_based", [True, False], ids=["set-based", "row-by-row"])
def test_a_hash_stored_in_an_earlier_form_counts_as_unchanged_and_is_replaced(
    db_session: None, monkeypatch: pytest.MonkeyPatch, set_based: bool, earlier_hash: Callable[[DebtRecord], str]
) -> None:
    monkeypatch.setattr(services, "SET_BASED_ON_POSTGRESQL", set_based)
    agency = AgencyFactory()
    settled = record("S-1", category="settled", installments=(InstallmentRecord(1, date(2026, 1, 31), 6000), InstallmentRecord(2, date(2026, 2, 28), 6000)))
    sync_agency(agency, ListConnector([record("A-1"), settled]), now=NOW)
    for item in (record("A-1"), settled):
        debt = db.session.scalars(select(Debt).where(Debt.external_id == item.external_id)).one()
        debt.content_hash = earlier_hash(item)  # as a sync before this version stored it
    db.session.commit()

    run = sync_agency(agency, ListConnector([record("A-1"), settled]), now=NOW + timedelta(days=1))

    assert (run.unchanged, run.updated) == (2, 0)
    rows = db.session.execute(select(Debt.external_id, Debt.content_hash, Debt.synced_at).order_by(Debt.external_id)).all()
    assert [tuple(row) for row in rows] == [("A-1", content_hash(record("A-1")), NOW), ("S-1", content_hash(settled), NOW)]
    assert len(content_hash(settled)) not in EARLIER_HASHES  # the forms are told apart by length


@pytest.mark.parametrize("set_based", [True, False], ids=["set-based", "row-by-row"])
def test_a_hash_of_an_earlier_form_that_does_not_match_means_changed(
    db_session: None, monkeypatch: pytest.MonkeyPatch, set_based: bool
) -> None:
    monkeypatch.setattr(services, "SET_BASED_ON_POSTGRESQL", set_based)
    agency = AgencyFactory()
    sync_agency(agency, ListConnector([record("A-1")]), now=NOW)
    debt = db.session.scalars(select(Debt).where(Debt.external_id == "A-1")).one()
    debt.content_hash = sha1_content_hash(record("A-1", description="What the ERP said before"))
    db.session.commit()

    run = sync_agency(agency, ListConnector([record("A-1")]), now=NOW + timedelta(days=1))

    assert (run.unchanged, run.updated) == (0, 1)
    assert db.session.scalars(select(Debt.content_hash)).one() == content_hash(record("A-1"))


@pytest.mark.parametrize("set_based", [True, False], ids=["set-based", "row-by-row"])
def test_a_record_the_database_could_not_hold_is_quarantined_not_fatal_to_its_batch(
    db_session: None, monkeypatch: pytest.MonkeyPatch, set_based: bool
) -> None:
    monkeypatch.setattr(services, "SET_BASED_ON_POSTGRESQL", set_based)
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


@pytest.mark.parametrize(
    "changed",
    [
        {"description": "Other"}, {"principal_minor": 12001}, {"due_date": date(2026, 2, 1)}, {"status": "paid"},
        {"contact_email": "someone@example.org"}, {"vehicle_plate": "None"}, {"debtor_name": "Άλλος"},
        {"rf_reference": "RF18539007547034"}, {"installments": (InstallmentRecord(1, date(2026, 1, 31), 12000),)},
    ],
    ids=lambda changed: next(iter(changed)),
)
def test_the_content_hash_changes_with_every_field_but_the_update_time(changed: dict) -> None:
    base = record("A-1", tax_id=AFM)
    assert content_hash(replace(base, **changed)) != content_hash(base)
    assert content_hash(replace(base, updated_at=NOW)) == content_hash(base)


@pytest.mark.parametrize(
    "a, b",
    [
        ({"principal_minor": 5}, {"principal_minor": "5"}),
        ({"vehicle_plate": None}, {"vehicle_plate": "None"}),
        ({"description": "a", "kind": "bc"}, {"description": "ab", "kind": "c"}),
    ],
    ids=["int-or-text", "none-or-text", "boundary"],
)
def test_the_content_hash_tells_apart_values_that_print_alike(a: dict, b: dict) -> None:
    base = record("A-1", tax_id=AFM)
    assert content_hash(replace(base, **a)) != content_hash(replace(base, **b))


def test_the_content_hash_depends_on_the_values_not_on_which_objects_hold_them() -> None:
    shared = "".join(["EC-", "1"])
    same_object = record(shared, tax_id=AFM, description=shared)
    equal_objects = record("".join(["EC-", "1"]), tax_id=AFM, description="".join(["EC", "-1"]))
    assert content_hash(same_object) == content_hash(equal_objects)


def test_a_record_marshal_cannot_write_still_gets_a_hash_of_its_own() -> None:
    base = record("A-1", tax_id=AFM)
    odd = replace(base, due_date="31/01/2026")  # not a date: such a record is quarantined
    assert len(content_hash(odd)) == 32
    assert content_hash(odd) != content_hash(replace(base, due_date="01/02/2026"))


@pytest.mark.parametrize("set_based", [True, False], ids=["set-based", "row-by-row"])
def test_text_that_copy_must_escape_is_stored_exactly_as_the_erp_sent_it(
    db_session: None, monkeypatch: pytest.MonkeyPatch, set_based: bool
) -> None:
    monkeypatch.setattr(services, "SET_BASED_ON_POSTGRESQL", set_based)
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
    stored = (debt.external_id, debt.debtor.name, debt.description, debt.vehicle_plate, debt.contact_email, debt.contact_phone)
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
    assert rows == {"KEEP": ("open", None, None), "GONE": ("cancelled", "vanished", None), "HELD-LATE": ("open", None, "held")}


@ON_POSTGRESQL
def test_nothing_vanished_means_one_scan_and_no_update(db_session: None) -> None:
    agency = AgencyFactory()
    sync_agency(agency, ListConnector([record("A-1"), record("A-2", tax_id=OTHER_AFM)]), now=NOW)
    cursor = SpyCursor(postgres.cursor())
    assert postgres.close_vanished(cursor, agency.id, seen_bitmap(*db.session.scalars(select(Debt.id))), NOW, "held") == (0, 0)
    assert cursor.statements == ["SET", "SELECT"]
    assert set(db.session.scalars(select(Debt.status))) == {"open"}
