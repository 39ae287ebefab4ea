"""The receipt by e-mail: queued in the payment's own transaction, sent by the worker with its PDF."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date

import pytest
import time_machine
from flask import Flask
from pypdf import PdfReader
from sqlalchemy import select

from app.db import utcnow
from app.extensions import db
from app.outbox.models import OutboxMessage
from app.outbox.services import deliver_due
from tests.factories import AgencyFactory, DebtFactory, DebtorFactory, UserFactory, link
from tests.mail.smtp import SMTPServer
from tests.outbox.helpers import DECLINED_CARD, NOW, pay


@pytest.fixture(autouse=True)
def _clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=True):
        yield


def receipt_messages() -> list[OutboxMessage]:
    return list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "receipt_email")))


def paid_by(user, **debt):
    debtor = DebtorFactory()
    link(user, debtor)
    agency = AgencyFactory(code="receipts")
    debt = DebtFactory(agency=agency, debtor=debtor, principal_minor=5000, due_date=date(2026, 5, 31), **debt)
    return pay(user.id, [debt])


def test_the_receipt_is_mailed_once_with_its_pdf_in_the_payers_language(app_ctx: Flask, mailbox: SMTPServer) -> None:
    user = UserFactory(email="eleni@example.org", language="el")
    payment = paid_by(user)
    assert [m.key for m in receipt_messages()] == [f"receipt_email:{payment.reference}"]

    deliver_due(limit=10, now=utcnow())
    deliver_due(limit=10, now=utcnow())  # a second worker tick sends nothing more
    mail = mailbox.only("eleni@example.org")
    assert mail.subject == f"Η απόδειξη πληρωμής σας {payment.reference} από το Civic Pay"
    assert payment.reference in mail.text and "50,00" in mail.text
    attachments = list(mail.message.iter_attachments())
    assert [a.get_filename() for a in attachments] == [f"receipt-{payment.reference}.pdf"]
    pdf_text = PdfReader(io.BytesIO(attachments[0].get_content())).pages[0].extract_text()
    assert payment.reference in pdf_text
    assert receipt_messages()[0].status == "delivered"


def test_no_receipt_mail_when_the_citizen_turned_e_mails_off(app_ctx: Flask, mailbox: SMTPServer) -> None:
    paid_by(UserFactory(notify_email=False))
    assert receipt_messages() == []


def test_a_declined_payment_mails_nothing(app_ctx: Flask) -> None:
    from app.checkout.payment_flow import PaymentDeclined

    with pytest.raises(PaymentDeclined):
        debtor, user = DebtorFactory(), UserFactory()
        link(user, debtor)
        debt = DebtFactory(debtor=debtor, principal_minor=5000, due_date=date(2026, 5, 31))
        pay(user.id, [debt], DECLINED_CARD)
    assert receipt_messages() == []


def test_an_account_deleted_before_the_worker_runs_gets_nothing(app_ctx: Flask, mailbox: SMTPServer) -> None:
    user = UserFactory(email="gone@example.org")
    paid_by(user)
    user.deleted_at = utcnow()
    db.session.commit()
    deliver_due(limit=10, now=utcnow())
    assert mailbox.messages == []
    assert receipt_messages()[0].status == "delivered"  # nothing left to do, not retried forever


def test_mail_server_down_is_retried_later(app_ctx: Flask, app: Flask) -> None:
    paid_by(UserFactory())
    saved = dict(app.config)
    app.config.update(MAIL_BACKEND="smtp", MAIL_SMTP_HOST="127.0.0.1", MAIL_SMTP_PORT=9, MAIL_SMTP_TIMEOUT=2)
    try:
        deliver_due(limit=10, now=utcnow())
    finally:
        app.config.update(saved)
    message = receipt_messages()[0]
    assert (message.status, message.attempts) == ("pending", 1)
    assert message.next_attempt_at > utcnow()
    assert "receipt e-mail could not be sent" in (message.last_error or "")
