"""What the sync's tests share: records, an ERP over a list, and the scenario both write paths must agree on."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import delete, select

from app.agencies.models import Agency
from app.debts.models import Debt, Debtor, Installment
from app.extensions import db
from app.payments.models import Payment
from app.sync import engine, postgres
from app.sync.engine import sync_agency
from app.sync.models import QuarantinedRecord, SyncRun
from erp_connectors.base import DebtRecord, InstallmentRecord, RecordError
from erp_connectors.demo import DemoERP

#: Valid Greek AFMs (check digit by stdnum.gr.vat).
AFM = "147382606"
OTHER_AFM = "159024173"
NOW = datetime(2026, 3, 1, 10, tzinfo=UTC)


@dataclass
class ListConnector:
    """An ERP over a fixed list: the protocol's simplest real implementation.

    ``fail_after`` makes the stream break like an ERP going down mid-export.
    """

    records: list[DebtRecord | RecordError]
    fail_after: int | None = None
    supports_changed_since: bool = True
    asked_since: list[datetime | None] = field(default_factory=list)
    delay: float = 0.0

    def check(self) -> None:
        """Always reachable."""

    def iter_debts(self, changed_since: datetime | None = None) -> Iterator[DebtRecord | RecordError]:
        self.asked_since.append(changed_since)
        for position, record in enumerate(self.records):
            if self.fail_after is not None and position >= self.fail_after:
                raise ConnectionError("The ERP stopped answering.")
            yield record

    def fetch_debtor(self, tax_country: str, tax_id: str) -> list[DebtRecord | RecordError]:
        time.sleep(self.delay)
        return [r for r in self.records if isinstance(r, DebtRecord) and r.tax_id == tax_id]

    def acknowledge(self, ack: object) -> None:
        """Not used by the sync."""


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
    return db.session.scalars(select(Debt).where(Debt.agency_id == agency_id, Debt.external_id == external_id)).one()


def snapshot(agency_id: int) -> list[tuple]:
    """Everything a citizen could see of an agency's debts."""
    rows = db.session.execute(
        select(
            Debt.external_id, Debt.principal_minor, Debt.paid_minor, Debt.status, Debt.closed_reason,
            Debt.due_date, Debt.rf_reference, Debt.content_hash,
        ).where(Debt.agency_id == agency_id).order_by(Debt.external_id)
    ).all()  # fmt: skip
    installments = db.session.execute(
        select(Debt.external_id, Installment.number, Installment.amount_minor, Installment.paid_minor)
        .join(Installment, Installment.debt_id == Debt.id)
        .where(Debt.agency_id == agency_id)
        .order_by(Debt.external_id, Installment.number)
    ).all()
    return [tuple(row) for row in rows] + [tuple(row) for row in installments]


AS_OF = date(2026, 3, 1)


def demo_records(debtors: int = 12) -> list[DebtRecord]:
    return [
        item for item in DemoERP("eastcoast", as_of=AS_OF, debtors=debtors).iter_debts() if isinstance(item, DebtRecord)
    ]


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
    return (
        run.kind,
        run.status,
        run.created,
        run.updated,
        run.unchanged,
        run.closed,
        run.quarantined,
        run.flagged,
        run.error,
    )


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
            installments=(
                *settled.installments[:-1],
                replace(settled.installments[-1], paid_minor=settled.installments[-1].amount_minor),
            ),
        ),
        demo[1].external_id: replace(demo[1], description="Corrected description", debtor_name="Renamed debtor"),
    }
    second = [
        changes.get(item.external_id, item)
        for item in demo
        if item.external_id not in (to_vanish.external_id, to_flag_vanished.external_id)
    ]
    runs.append(sync_agency(agency, ListConnector(second), now=NOW + timedelta(days=1)))

    # An incremental sync closes nothing as vanished; a record added later, another settled debt.
    extra = record(
        "NEW-1",
        category="settled",
        installments=(InstallmentRecord(1, date(2026, 4, 1), 6000), InstallmentRecord(2, date(2026, 5, 1), 6000)),
    )
    runs.append(
        sync_agency(
            agency, ListConnector([extra, changes[to_pay.external_id]]), full=False, now=NOW + timedelta(days=2)
        )
    )

    # The vanished debt comes back; the paid one is reopened by the ERP (a counter payment reversed).
    again = {to_pay.external_id: to_pay, to_reopen.external_id: replace(to_reopen, description="Changed later")}
    third = [again.get(item.external_id, item) for item in second] + [to_vanish, extra]
    runs.append(sync_agency(agency, ListConnector(third), now=NOW + timedelta(days=3)))
    return [counts(run) for run in runs]


def forget_everything(agency: Agency) -> None:
    """Remove what the scenario wrote, so the other path starts from the same empty database."""
    db.session.execute(
        delete(Installment).where(Installment.debt_id.in_(select(Debt.id).where(Debt.agency_id == agency.id)))
    )
    db.session.execute(delete(Debt).where(Debt.agency_id == agency.id))
    db.session.execute(delete(Payment))
    db.session.execute(delete(QuarantinedRecord).where(QuarantinedRecord.agency_id == agency.id))
    db.session.execute(delete(SyncRun).where(SyncRun.agency_id == agency.id))
    db.session.execute(delete(Debtor))
    agency.synced_until = agency.last_full_sync_at = None
    db.session.commit()


def assert_set_based_equals_row_path(agency: Agency, monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Run the scenario by the row path, forget it, run it set-based: same counts and database. Returns the counts."""
    monkeypatch.setattr(engine, "SET_BASED_ON_POSTGRESQL", False)
    row_counts = run_scenario(agency)
    row_state = database_state(agency.id)
    forget_everything(agency)

    monkeypatch.setattr(engine, "SET_BASED_ON_POSTGRESQL", True)
    set_counts = run_scenario(agency)
    set_state = database_state(agency.id)

    assert set_counts == row_counts
    for part in ("debts", "installments", "quarantined", "debtors"):
        assert set_state[part] == row_state[part], part
    return row_counts


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
