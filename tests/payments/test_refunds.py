"""Refunds end to end: the money back through the provider, the ERP told once, the payer told."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.agencies.models import Agency
from app.db import utcnow
from app.extensions import db
from app.outbox.models import OutboxMessage
from app.outbox.services import deliver_due
from app.payments.models import Payment, Refund
from app.payments.refunds import refund_payment
from tests.factories import AgencyFactory, DebtorFactory, UserFactory, link
from tests.mail.smtp import SMTPServer
from tests.outbox.helpers import (
    NOW,
    RecordingERPServer,
    debts_known_to_erp,
    erp_server,
    open_erp_records,
    pay,
    rest_agency,
)
from tests.payments.stripe_steps import CARD_OK, call, pay_both, start_and_enter_card
from tests.stripe_server import SECRET_KEY


@pytest.fixture()
def server() -> Iterator[RecordingERPServer]:
    with erp_server("eastcoast") as running:
        yield running
        running.erp.clear_acknowledgements()


def test_the_erp_hears_of_a_refund_once_and_the_payer_by_e_mail(
    app_ctx: Flask, server: RecordingERPServer, mailbox: SMTPServer
) -> None:
    with time_machine.travel(NOW, tick=True):
        debtor, user = DebtorFactory(), UserFactory(email="eleni@example.org", language="en")
        link(user, debtor)
        agency = rest_agency(server)
        payment = pay(user.id, debts_known_to_erp(agency, debtor, open_erp_records(server, 1)))
        deliver_due()  # the payment's own ack and receipt first
        mailbox.clear()
        refund = refund_payment(
            payment_id=payment.id,
            agency=agency,
            amount_minor=1000,
            expected_available_minor=payment.amount_minor,
            reason="Charged by mistake",
            user_id=None,
        )
        report = deliver_due()
        assert (report.delivered, report.dead) == (2, 0)
        assert server.erp.refunded(refund.reference)
        assert deliver_due().handled == 0  # told once
        mail = mailbox.only("eleni@example.org")
        assert "refunded €10.00" in mail.text and "Charged by mistake" in mail.text


def test_a_file_erp_gets_a_refunds_csv_once(app_ctx: Flask, tmp_path) -> None:
    from app.erp_writeback.handlers import TOPIC_ERP_REFUND_ACK
    from app.outbox.services import enqueue

    options = {"path": str(tmp_path / "export.csv"), "ack_folder": str(tmp_path / "acks")}
    agency = AgencyFactory(code="files", connector={"type": "file", "options": options})
    payload = {
        "refund_reference": "CP-X-R1",
        "payment_reference": "CP-X",
        "amount_minor": 1234,
        "currency": "EUR",
        "reopened_debts": False,
        "refunded_at": "2026-03-01T10:00:00+00:00",
    }
    for key in ("first", "again"):  # the same refund queued twice (a replay) is written once
        enqueue(topic=TOPIC_ERP_REFUND_ACK, key=key, payload=payload, agency_id=agency.id, now=utcnow())
    db.session.commit()
    deliver_due(now=utcnow())
    assert [m.status for m in db.session.scalars(select(OutboxMessage))] == ["delivered", "delivered"]
    (written,) = (tmp_path / "acks").glob("refunds-*.csv")
    lines = written.read_text(encoding="utf-8-sig").splitlines()
    assert lines == [
        "refund_reference;payment_reference;amount;currency;reopened_debts;refunded_at",
        "CP-X-R1;CP-X;12,34;EUR;no;2026-03-01T10:00:00+00:00",
    ]


def test_a_connector_written_before_refunds_leaves_a_dead_letter_that_says_what_to_do(
    app_ctx: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A third-party connector that only knows payments: the refund waits for a person."""
    from app.erp_writeback import handlers as erp_writeback
    from app.erp_writeback.handlers import TOPIC_ERP_REFUND_ACK
    from app.outbox.services import enqueue

    class PaymentsOnlyConnector:
        def acknowledge(self, ack: object) -> None:  # pragma: no cover - not called here
            raise AssertionError("a refund is not a payment")

    monkeypatch.setattr(erp_writeback, "build_connector", lambda agency: PaymentsOnlyConnector())
    agency = AgencyFactory(code="legacy")
    enqueue(
        topic=TOPIC_ERP_REFUND_ACK, key="k", payload={"refund_reference": "CP-X-R1"}, agency_id=agency.id, now=utcnow()
    )
    db.session.commit()
    deliver_due(now=utcnow())
    message = db.session.scalars(select(OutboxMessage)).one()
    assert message.status == "dead"  # not retried forever: a person must book it
    assert "cannot take refunds: book refund CP-X-R1 in the ERP by hand" in (message.last_error or "")


def test_the_demo_erp_refuses_a_refund_of_a_payment_it_never_saw(app_ctx: Flask, server: RecordingERPServer) -> None:
    from app.erp_writeback.handlers import TOPIC_ERP_REFUND_ACK
    from app.outbox.services import enqueue

    agency = rest_agency(server)
    payload = {"refund_reference": "CP-NONE-R1", "payment_reference": "CP-NONE", "amount_minor": 100}
    enqueue(topic=TOPIC_ERP_REFUND_ACK, key="k2", payload=payload, agency_id=agency.id, now=utcnow())
    db.session.commit()
    deliver_due(now=utcnow())
    message = db.session.scalars(select(OutboxMessage)).one()
    assert message.status == "dead" and "has no payment CP-NONE to refund" in (message.last_error or "")


def test_a_stripe_refund_gives_back_part_of_one_agencys_charge(
    client: FlaskClient, citizen: dict, localstripe_url: str, stripe_app: Flask
) -> None:
    review_url = pay_both(client, citizen)
    reference = start_and_enter_card(client, localstripe_url, review_url, CARD_OK)
    assert call(client, review_url, "charge", payment=reference).json["status"] == "succeeded"
    payment = db.session.scalars(select(Payment)).one()
    north = db.session.scalar(select(Agency).where(Agency.code == "north"))
    charge = next(c for c in payment.charges if c.agency_id == north.id)
    payment_id, intent, share = payment.id, charge.provider_reference, charge.amount_minor
    with stripe_app.app_context():
        refund = refund_payment(
            payment_id=payment_id,
            agency=north,
            amount_minor=500,
            expected_available_minor=share,
            reason="Overcharged",
            user_id=None,
        )
    assert refund.status == "succeeded" and refund.provider_reference.startswith("re_")
    stripe_refund = requests.get(
        f"{localstripe_url}/v1/refunds/{refund.provider_reference}", auth=(SECRET_KEY, ""), timeout=5
    ).json()
    charge_of_intent = requests.get(
        f"{localstripe_url}/v1/payment_intents/{intent}", auth=(SECRET_KEY, ""), timeout=5
    ).json()["latest_charge"]
    charge_id = charge_of_intent["id"] if isinstance(charge_of_intent, dict) else charge_of_intent
    assert (stripe_refund["amount"], stripe_refund["charge"]) == (500, charge_id)  # north's charge, not south's
    assert db.session.get(Payment, payment_id).status == "partially_refunded"
    assert db.session.scalars(select(Refund)).one().amount_minor == 500
