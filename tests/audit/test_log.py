"""The audit log: entries go with the caller's transaction, can never change, and record every
change of a payment's status for each agency of the payment."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import delete, func, select, update

from app.audit.models import AuditEntry
from app.audit.services import AuditLogIsAppendOnly, record
from app.checkout.payment_flow import fail_payment
from app.extensions import db
from tests.factories import AgencyFactory, DebtFactory, UserFactory, paid_payment


def _entries(action: str | None = None) -> list[AuditEntry]:
    statement = select(AuditEntry).order_by(AuditEntry.id)
    if action:
        statement = statement.where(AuditEntry.action == action)
    return list(db.session.scalars(statement))


def test_an_entry_is_committed_with_the_callers_work_and_rolled_back_with_it(app_ctx: Flask) -> None:
    agency = AgencyFactory()
    record("settings.update", agency_id=agency.id, subject=agency.code, details={"x": 1})
    db.session.rollback()
    assert _entries() == []

    record("settings.update", agency_id=agency.id, subject=agency.code, details={"x": 1})
    db.session.commit()
    [entry] = _entries()
    assert (entry.action, entry.agency_id, entry.subject, entry.details) == (
        "settings.update",
        agency.id,
        agency.code,
        {"x": 1},
    )
    assert entry.at is not None and entry.at.tzinfo is not None


def test_the_actor_and_address_come_from_the_request(app: Flask, db_session: None) -> None:
    user = UserFactory()
    user_id = user.id
    with app.test_request_context("/", environ_base={"REMOTE_ADDR": "203.0.113.9"}):
        from flask_login import login_user

        login_user(user)
        record("staff.invite", agency_id=None, subject="a@example.org")
        record("staff.invite", agency_id=None, subject="b@example.org", actor_user_id=None)
        db.session.commit()
    first, second = _entries()
    assert (first.actor_user_id, first.ip_address) == (user_id, "203.0.113.9")
    assert second.actor_user_id == user_id  # None means "from the request", not "nobody"


def test_a_worker_without_a_request_records_the_system(app: Flask, db_session: None) -> None:
    with app.app_context():
        record("payment.status", agency_id=None, subject="CP-1")
        db.session.commit()
        [entry] = _entries()
        assert entry.actor_user_id is None and entry.ip_address is None


@pytest.fixture()
def entry(app_ctx: Flask) -> AuditEntry:
    saved = record("staff.grant", agency_id=None, subject="someone@example.org", details={"role": "view"})
    db.session.commit()
    return saved


def test_an_entry_cannot_be_changed(entry: AuditEntry) -> None:
    entry.details = {"role": "admin"}
    with pytest.raises(AuditLogIsAppendOnly):
        db.session.flush()
    db.session.rollback()
    assert db.session.scalar(select(AuditEntry.details).where(AuditEntry.id == entry.id)) == {"role": "view"}


def test_an_entry_cannot_be_deleted(entry: AuditEntry) -> None:
    db.session.delete(entry)
    with pytest.raises(AuditLogIsAppendOnly):
        db.session.flush()
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == 1


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param(update(AuditEntry).values(subject="forged"), id="bulk-update"),
        pytest.param(delete(AuditEntry), id="bulk-delete"),
    ],
)
def test_bulk_statements_cannot_go_around_the_rule(entry: AuditEntry, statement) -> None:
    with pytest.raises(AuditLogIsAppendOnly):
        db.session.execute(statement)
    db.session.rollback()
    assert db.session.scalar(select(AuditEntry.subject)) == "someone@example.org"


def test_a_status_change_is_recorded_once_per_agency_of_the_payment(app_ctx: Flask) -> None:
    town, port = AgencyFactory(), AgencyFactory()
    payment = paid_payment((DebtFactory(agency=town), 1000), (DebtFactory(agency=port), 2000), status="pending")
    assert _entries("payment.status") == []  # creating a payment is not a change of status

    payment.status = "succeeded"
    db.session.commit()
    entries = _entries("payment.status")
    assert sorted(entry.agency_id for entry in entries) == sorted([town.id, port.id])
    assert {entry.subject for entry in entries} == {payment.reference}
    assert all(entry.details == {"from": "pending", "to": "succeeded"} for entry in entries)

    payment.status = "succeeded"  # the same status again changes nothing
    db.session.commit()
    assert len(_entries("payment.status")) == 2


def test_a_declined_charge_through_the_payments_service_is_recorded(app_ctx: Flask) -> None:
    debt = DebtFactory()
    payment = paid_payment((debt, 1000), status="pending")
    debt.pending_payment_id = payment.id
    db.session.commit()
    db.session.expire_all()  # as in a fresh request: the status is not loaded yet

    fail_payment(payment.id, provider_reference="sbx_1", reason="Declined.", card_last4="0002")

    [entry] = _entries("payment.status")
    assert (entry.agency_id, entry.subject, entry.details) == (
        debt.agency_id,
        payment.reference,
        {"from": "pending", "to": "failed"},
    )


def test_a_rolled_back_status_change_leaves_no_entry(app_ctx: Flask) -> None:
    payment = paid_payment((DebtFactory(), 1000), status="pending")
    payment.status = "failed"
    db.session.rollback()
    assert _entries("payment.status") == []
