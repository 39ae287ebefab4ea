"""An agency's own text at the end of its payers' receipt and refund e-mails, in the payer's language."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
import time_machine
from flask import Flask

from app.db import utcnow
from app.extensions import db
from app.outbox.services import deliver_due
from app.payments.models import Refund
from app.receipts.services import send_refund_email
from tests.factories import AgencyFactory, DebtFactory, DebtorFactory, UserFactory, link
from tests.mail.smtp import SMTPServer
from tests.outbox.helpers import NOW, pay

GREEK_RECEIPT = "Για ερωτήσεις καλέστε 210 1234567 <Δευτέρα–Παρασκευή>."
ENGLISH_RECEIPT = "For questions call 210 1234567 <Monday to Friday>."
GREEK_REFUND = "Για τις επιστροφές: tameio@example.org"
ENGLISH_REFUND = "About refunds: tameio@example.org"


@pytest.fixture(autouse=True)
def _clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=True):
        yield


def _agency(**notes: str | None):
    defaults = {"receipt_note_el": GREEK_RECEIPT, "receipt_note_en": ENGLISH_RECEIPT,
                "refund_note_el": GREEK_REFUND, "refund_note_en": ENGLISH_REFUND}  # fmt: skip
    return AgencyFactory(**{**defaults, **notes})


def _paid(language: str, *agencies):
    user = UserFactory(language=language)
    debtor = DebtorFactory()
    link(user, debtor)
    debts = [
        DebtFactory(agency=agency, debtor=debtor, principal_minor=5000, due_date=date(2026, 5, 31))
        for agency in agencies
    ]
    return user.email, pay(user.id, debts)


@pytest.mark.parametrize(
    ("language", "shown", "not_shown"), [("el", GREEK_RECEIPT, ENGLISH_RECEIPT), ("en", ENGLISH_RECEIPT, GREEK_RECEIPT)]
)
def test_the_receipt_email_ends_with_the_agencys_text_in_the_payers_language(
    app_ctx: Flask, mailbox: SMTPServer, language: str, shown: str, not_shown: str
) -> None:
    email, _payment = _paid(language, _agency())
    deliver_due(limit=10, now=utcnow())
    text = mailbox.only(email).text
    assert shown in text  # plain text, as typed: "<" and ">" stay themselves
    assert not_shown not in text and GREEK_REFUND not in text
    assert text.index(shown) < text.rindex("Civic Pay")


def test_no_text_in_a_language_adds_nothing(app_ctx: Flask, mailbox: SMTPServer) -> None:
    email, _payment = _paid("en", _agency(receipt_note_en=None))
    deliver_due(limit=10, now=utcnow())
    text = mailbox.only(email).text
    assert GREEK_RECEIPT not in text and "210 1234567" not in text


def test_a_payment_to_two_agencies_names_whose_text_is_whose(app_ctx: Flask, mailbox: SMTPServer) -> None:
    town = _agency(name_en="Eastcoast")
    water = _agency(name_en="Water company", receipt_note_en="Water leaks: call 1022.")
    email, _payment = _paid("en", town, water)
    deliver_due(limit=10, now=utcnow())
    text = mailbox.only(email).text
    assert f"Eastcoast: {ENGLISH_RECEIPT}" in text
    assert "Water company: Water leaks: call 1022." in text


@pytest.mark.parametrize(
    ("language", "shown", "not_shown"), [("el", GREEK_REFUND, ENGLISH_REFUND), ("en", ENGLISH_REFUND, GREEK_REFUND)]
)
def test_the_refund_email_ends_with_the_agencys_text_in_the_payers_language(
    app_ctx: Flask, mailbox: SMTPServer, language: str, shown: str, not_shown: str
) -> None:
    agency = _agency()
    email, payment = _paid(language, agency)
    refund = Refund(reference=f"RF-{payment.reference}-1", payment_id=payment.id, agency_id=agency.id, amount_minor=1000,
                    currency="EUR", status="succeeded", reason="Paid twice", completed_at=utcnow())  # fmt: skip
    db.session.add(refund)
    db.session.commit()
    send_refund_email(refund, payment, "refunded@example.org", language)
    text = mailbox.only("refunded@example.org").text
    assert shown in text and not_shown not in text and GREEK_RECEIPT not in text and ENGLISH_RECEIPT not in text
