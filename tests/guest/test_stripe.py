"""A guest pays by card through Stripe (localstripe): the card never reaches the portal."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.debts.models import Debt
from app.domain.references import format_rf
from app.extensions import db
from app.payments.models import Payment
from tests.guest.steps import look_up, review_path
from tests.helpers import csrf_token, page_text
from tests.mail.smtp import SMTPServer
from tests.stripe_server import browser_confirm_card_setup


def card(client: FlaskClient, review: str, step: str, **body: str):
    token = csrf_token(client, review)
    return client.post(f"{review}/card/{step}", json=body, headers={"X-CSRFToken": token})


def test_a_guest_pays_with_stripe_and_gets_the_receipt_by_e_mail(
    client: FlaskClient, property_fee: Debt, stripe_app: Flask, localstripe_url: str, mailbox: SMTPServer
) -> None:
    debt_id = property_fee.id
    review = review_path(look_up(client, format_rf(property_fee.rf_reference), "2606"))
    page = page_text(client.get(review))
    assert 'id="card-element"' in page and 'name="number"' not in page

    start = card(client, review, "start", email="Guest@Example.org")
    assert start.status_code == 200, start.json
    assert (
        browser_confirm_card_setup(localstripe_url, start.json["client_secret"], "4242424242424242")["status"]
        == "succeeded"
    )
    step = card(client, review, "charge", payment=start.json["payment"])
    assert step.json["status"] == "succeeded"
    assert page_text(client.get(step.json["redirect"])).count("Paid") >= 1

    payment = db.session.scalars(select(Payment)).one()
    assert (payment.channel, payment.user_id, payment.provider, payment.amount_minor) == (
        "guest",
        None,
        "stripe",
        12175,
    )
    assert db.session.get(Debt, debt_id).status == "paid"
    mail = mailbox.only("guest@example.org")
    assert payment.reference in mail.text


def test_the_guest_card_form_is_closed_and_another_session_cannot_charge(
    client: FlaskClient, app: Flask, property_fee: Debt, stripe_app: Flask, localstripe_url: str
) -> None:
    review = review_path(look_up(client, format_rf(property_fee.rf_reference), "2606"))
    data = {"holder": "G", "number": "4242424242424242", "expiry": "12/30", "cvc": "123"}
    assert client.post(review, data=data | {"csrf_token": csrf_token(client, review)}).status_code == 404
    start = card(client, review, "start")
    other = app.test_client()
    token = csrf_token(other, "/pay")
    answer = other.post(
        f"{review}/card/charge", json={"payment": start.json["payment"]}, headers={"X-CSRFToken": token}
    )
    assert answer.status_code == 404


def test_a_bad_receipt_address_is_refused_before_anything_is_claimed(
    client: FlaskClient, property_fee: Debt, stripe_app: Flask
) -> None:
    review = review_path(look_up(client, format_rf(property_fee.rf_reference), "2606"))
    answer = card(client, review, "start", email="not an address")
    assert answer.status_code == 400 and "valid e-mail address" in answer.json["message"]
    assert db.session.scalars(select(Payment)).all() == []


def test_tickets_bought_with_stripe_are_issued_and_a_declined_card_frees_the_seats(
    client: FlaskClient, stripe_app: Flask, localstripe_url: str
) -> None:
    from app.catalog.models import Ticket
    from tests.factories import CatalogItemFactory
    from tests.guest.steps import item_path, order

    item = CatalogItemFactory(capacity=2, price_minor=1500)
    path = item_path(item)
    review = review_path(order(client, path, quantity="2"))

    declined = card(client, review, "start")
    browser_confirm_card_setup(localstripe_url, declined.json["client_secret"], "4000000000000341")
    assert card(client, review, "charge", payment=declined.json["payment"]).json["status"] == "failed"
    assert sorted(db.session.scalars(select(Ticket.status))) == ["released", "released"]

    retry = card(client, review, "start")
    assert retry.status_code == 200, retry.json
    assert sorted(db.session.scalars(select(Ticket.status))) == ["held", "held"]  # held again for the payment
    browser_confirm_card_setup(localstripe_url, retry.json["client_secret"], "4242424242424242")
    step = card(client, review, "charge", payment=retry.json["payment"])
    assert step.json["status"] == "succeeded"
    assert sorted(db.session.scalars(select(Ticket.status))) == ["issued", "issued"]
    paid = db.session.scalars(select(Payment).where(Payment.status == "succeeded")).one()
    assert (paid.provider, paid.amount_minor, paid.channel) == ("stripe", 3000, "guest")
    assert "TK-" in page_text(client.get(step.json["redirect"]))
