"""Refunds from the treasury: the refund role only, never more than was paid, never twice."""

from __future__ import annotations

import re
import threading

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.debts.models import Debt
from app.extensions import db
from app.outbox.models import OutboxMessage
from app.payments.models import Payment, Refund
from app.payments.refunds import RefundRefused, refund_payment
from tests.factories import AgencyFactory, DebtFactory, DebtorFactory, UserFactory, link, paid_payment, staff_member
from tests.helpers import csrf_token, page_text
from tests.mail.smtp import SMTPServer
from tests.treasury.helpers import sign_in


@pytest.fixture()
def paid(client: FlaskClient) -> dict:
    """A citizen's payment of 100,00 € to the town and 30,00 € to its water company."""
    town, water = AgencyFactory(code="town"), AgencyFactory(code="water")
    citizen, debtor = UserFactory(email="eleni@example.org"), DebtorFactory()
    link(citizen, debtor)
    fee = DebtFactory(agency=town, debtor=debtor, principal_minor=10000, paid_minor=10000, status="paid")
    bill = DebtFactory(agency=water, debtor=debtor, principal_minor=3000, paid_minor=3000, status="paid")
    payment = paid_payment((fee, 10000), (bill, 3000))
    payment.user_id = citizen.id
    db.session.commit()
    return {"town": town, "water": water, "payment": payment.reference, "payment_id": payment.id, "fee": fee.id}


def page_of(paid: dict) -> str:
    return f"/treasury/town/payments/{paid['payment']}"


def post_refund(
    client: FlaskClient, paid: dict, amount: str, available: int, reason: str = "Paid twice at the counter"
):
    token = csrf_token(client, page_of(paid))
    data = {"amount": amount, "reason": reason, "available_minor": str(available), "csrf_token": token}
    return client.post(page_of(paid) + "/refund", data=data)


def test_a_refunder_makes_a_partial_refund_and_the_refundable_amount_updates(
    client: FlaskClient, paid: dict, mailbox: SMTPServer
) -> None:
    sign_in(client, staff_member(paid["town"], "refund"))
    page = page_text(client.get(page_of(paid)))
    assert "Still refundable" in page and "€100.00" in page and "Amount to refund" in page
    answer = post_refund(client, paid, "40,00", 10000)
    assert answer.status_code == 303
    page = page_text(client.get(page_of(paid)))
    assert "Refunded €40.00" in page
    assert 'data-testid="refundable">€60.00<' in page
    payment = db.session.get(Payment, paid["payment_id"])
    assert payment.status == "partially_refunded"
    refund = db.session.scalars(select(Refund)).one()
    assert (refund.amount_minor, refund.status, refund.provider_reference[:7]) == (4000, "succeeded", "sbx_re_")
    topics = sorted(m.topic for m in db.session.scalars(select(OutboxMessage)))
    assert topics == ["erp_refund_ack", "refund_email"]
    # the town's debt stays paid: this agency does not reopen debts on refunds, and it was partial
    assert db.session.get(Debt, paid["fee"]).status == "paid"


def test_the_water_company_share_is_not_the_towns_to_refund(client: FlaskClient, paid: dict) -> None:
    sign_in(client, staff_member(paid["town"], "refund"))
    answer = post_refund(client, paid, "130,00", 10000)
    assert answer.status_code == 303
    assert "At most €100.00 can be refunded" in page_text(client.get(page_of(paid)))
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 0


def test_a_stale_page_cannot_refund_twice(client: FlaskClient, paid: dict) -> None:
    """A double click, or a second staff member with the page open: the second refund is refused."""
    sign_in(client, staff_member(paid["town"], "refund"))
    assert post_refund(client, paid, "100,00", 10000).status_code == 303
    again = post_refund(client, paid, "100,00", 10000)
    assert again.status_code == 303
    page = page_text(client.get(page_of(paid)))
    assert "The refundable amount changed while you were on this page" in page
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 1


def test_viewers_see_no_refund_form_and_cannot_post_one(client: FlaskClient, paid: dict) -> None:
    sign_in(client, staff_member(paid["town"], "view"))
    page = page_text(client.get(page_of(paid)))
    assert "Still refundable" in page and "Amount to refund" not in page
    assert post_refund(client, paid, "10,00", 10000).status_code == 404
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 0


def test_a_full_refund_reopens_the_debt_when_the_agency_says_so(client: FlaskClient, paid: dict) -> None:
    paid["town"].reopen_debts_on_refund = True
    db.session.commit()
    sign_in(client, staff_member(paid["town"], "admin"))
    assert post_refund(client, paid, "100.00", 10000).status_code == 303
    debt = db.session.get(Debt, paid["fee"])
    assert (debt.status, debt.paid_minor) == ("open", 0)
    refund = db.session.scalars(select(Refund)).one()
    assert refund.reopened_debts
    # The water company's share is untouched, so the payment is only partly refunded.
    assert db.session.get(Payment, paid["payment_id"]).status == "partially_refunded"


def test_bad_amounts_are_refused_with_the_form_kept(client: FlaskClient, paid: dict) -> None:
    sign_in(client, staff_member(paid["town"], "refund"))
    for amount in ("", "abc", "10,005", "0"):
        answer = post_refund(client, paid, amount, 10000)
        assert answer.status_code == 400, amount
    assert "Say why" in page_text(post_refund(client, paid, "10", 10000, reason=""))
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 0


@pytest.mark.postgres_only
def test_two_staff_refunding_at_once_refund_once(app: Flask, committed_db: None) -> None:
    with app.app_context():
        town = AgencyFactory(code="twotown")
        debt = DebtFactory(agency=town, principal_minor=5000)
        payment = paid_payment((debt, 5000))
        payment_id, agency_id = payment.id, town.id
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def refund() -> None:
        with app.app_context():
            from app.agencies.models import Agency

            agency = db.session.get(Agency, agency_id)
            barrier.wait()
            try:
                refund_payment(
                    payment_id=payment_id,
                    agency=agency,
                    amount_minor=5000,
                    expected_available_minor=5000,
                    reason="duplicate",
                    user_id=None,
                )
                outcomes.append("refunded")
            except RefundRefused as refused:
                outcomes.append(refused.code)

    threads = [threading.Thread(target=refund) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["changed", "refunded"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Refund)) == 1
        assert db.session.get(Payment, payment_id).status == "refunded"


def test_the_payment_page_tells_its_history_and_only_this_agencys(
    client: FlaskClient, paid: dict, mailbox: SMTPServer
) -> None:
    """Started, refunded by a named person, status changes, the ERP told; the water company's refund is not the town's story."""
    water_payment = db.session.get(Payment, paid["payment_id"])
    refund_payment(payment_id=water_payment.id, agency=paid["water"], amount_minor=1000,
                   expected_available_minor=3000, reason="Meter misread", user_id=None)  # fmt: skip
    water_reference = db.session.scalars(select(Refund.reference)).one()
    refunder = staff_member(paid["town"], "refund", full_name="Anna Town")
    sign_in(client, refunder)
    assert post_refund(client, paid, "40,00", 10000).status_code == 303
    from app.db import utcnow

    for message in db.session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "erp_refund_ack")):
        message.status, message.delivered_at = "delivered", utcnow()  # as the worker would, for both agencies
    db.session.commit()
    html = client.get(page_of(paid)).get_data(as_text=True)
    timeline = html[html.index('data-testid="timeline"') :]
    kinds = re.findall(r'data-kind="([a-z_]+)"', timeline)
    assert kinds[0] == "started" and "refund" in kinds and "erp_recorded" in kinds
    # The water company's refund changed the payment's status: the town sees the change, not the refund.
    assert "Status changed: Paid → Partially refunded" in " ".join(timeline.split()) and "by the portal" in timeline
    assert water_reference not in timeline and "€10.00" not in timeline
    assert re.search(r"Refund CP-[0-9A-Z-]+ of €40\.00 made\. \(by Anna Town\)", " ".join(timeline.split()))
