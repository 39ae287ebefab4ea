"""Buying an agency's items without an account: tickets, donations, account-only permits."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.catalog.models import Ticket
from app.checkout.models import Quote
from app.extensions import db
from app.payments.models import Payment
from tests.factories import PASSWORD, AgencyFactory, CatalogItemFactory, UserFactory, donation_item
from tests.guest.steps import MORNING, item_path, order, pay, receipt_path, review_path
from tests.helpers import csrf_token, log_in, page_text

HOLDER = [{"key": "holder", "label_el": "Ονοματεπώνυμο", "label_en": "Name on the ticket", "required": True}]


def test_the_catalog_lists_what_is_on_sale_by_agency(client: FlaskClient) -> None:
    concert = CatalogItemFactory(name_en="Summer concert", price_minor=1500)
    item_path(concert)
    donation = donation_item(agency=concert.agency, name_en="Give to the animal shelter")
    CatalogItemFactory(agency=concert.agency, name_en="Hidden item", active=False)
    CatalogItemFactory(name_en="Past event", available_until=MORNING - timedelta(days=1))
    paths = [item_path(concert), item_path(donation)]
    page = page_text(client.get("/buy"))
    assert "Summer concert" in page and "€15.00" in page
    assert "Give to the animal shelter" in page and "from €5.00 to €500.00" in page
    assert "Hidden item" not in page and "Past event" not in page
    assert all(path in page for path in paths)


def test_a_ticket_is_bought_in_three_screens_and_its_pdf_has_the_codes(client: FlaskClient) -> None:
    item = CatalogItemFactory(name_en="Summer concert", price_minor=1500, capacity=100, questions=HOLDER)
    path = item_path(item)
    page = page_text(client.get(path))
    assert "Summer concert" in page and "€15.00" in page and "Tickets left" in page and "Name on the ticket" in page

    review = review_path(order(client, path, quantity="2", answer_holder="Maria P."))
    page = page_text(client.get(review))
    assert "Summer concert × 2" in page and "€15.00 each" in page and "€30.00" in page
    assert "Name on the ticket: Maria P." in page and "held for you until" in page

    receipt = receipt_path(pay(client, review))
    page = page_text(client.get(receipt))
    codes = re.findall(r"TK-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{2}", page)
    assert len(set(codes)) == 2 and "Your tickets" in page
    payment = db.session.scalars(select(Payment)).one()
    assert (payment.amount_minor, payment.channel, payment.status) == (3000, "guest", "succeeded")
    pdf = client.get(receipt + "/tickets.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF-")
    assert pdf.headers["Cache-Control"] == "private, no-store"
    # Another browser cannot download them.
    assert client.application.test_client().get(receipt + "/tickets.pdf").status_code == 404


def test_a_tampered_price_is_ignored(client: FlaskClient) -> None:
    """The form has no price; one added by hand changes nothing: the server prices the order."""
    item = CatalogItemFactory(price_minor=1500)
    path = item_path(item)
    review_path(order(client, path, quantity="2", price="1", amount="0,01", total_minor="1"))
    assert db.session.scalars(select(Quote)).one().total_minor == 3000


@pytest.mark.parametrize("quantity", ["0", "11", "-1", "two"])
def test_a_quantity_outside_the_limits_is_refused(client: FlaskClient, quantity: str) -> None:
    item = CatalogItemFactory(max_per_order=10)
    path = item_path(item)
    response = order(client, path, quantity=quantity)
    assert response.status_code == 400
    assert db.session.scalar(select(func.count(Quote.id))) == 0


def test_a_required_question_must_be_answered(client: FlaskClient) -> None:
    item = CatalogItemFactory(questions=HOLDER)
    path = item_path(item)
    response = order(client, path, quantity="1", answer_holder="  ")
    assert response.status_code == 400 and "Answer this question." in page_text(response)


@pytest.mark.parametrize(
    ("typed", "status", "message"),
    [
        ("4,99", 400, "The smallest amount is €5.00."),
        ("500,01", 400, "The largest amount is €500.00."),
        ("lots", 400, "Enter an amount such as 20 or 20,50."),
        ("12.34.56", 400, "Enter an amount such as 20 or 20,50."),
    ],
)
def test_a_donation_outside_its_range_is_refused(client: FlaskClient, typed: str, status: int, message: str) -> None:
    item = donation_item()
    path = item_path(item)
    response = order(client, path, amount=typed)
    assert response.status_code == status and message in page_text(response)
    assert db.session.scalar(select(func.count(Quote.id))) == 0


@pytest.mark.parametrize(("typed", "minor"), [("20", 2000), ("20,50", 2050), ("1.234,50", 123450)])
def test_a_donation_is_the_amount_the_payer_chose(client: FlaskClient, typed: str, minor: int) -> None:
    item = donation_item(max_minor=500000)
    path = item_path(item)
    review = review_path(order(client, path, amount=typed))
    assert db.session.scalars(select(Quote)).one().total_minor == minor
    assert client.get(receipt_path(pay(client, review))).status_code == 200


def test_the_last_ticket_goes_to_one_buyer_and_the_other_hears_it_is_sold_out(client: FlaskClient) -> None:
    item = CatalogItemFactory(capacity=1)
    path = item_path(item)
    review_path(order(client, path, quantity="1"))
    other = client.application.test_client()
    other.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    page = page_text(other.get(item_path(item)))
    assert "Sold out" in page and 'name="quantity"' not in page
    response = other.post(path, data={"csrf_token": csrf_token(other, "/buy"), "quantity": "1"})
    assert response.status_code == 409 and "Sold out: there are no tickets left." in page_text(response)


def test_an_account_only_item_asks_to_sign_in_and_lands_in_the_account(client: FlaskClient) -> None:
    item = CatalogItemFactory(
        kind="permit", name_en="Street market stall permit", requires_account=True, price_minor=4000
    )
    path = item_path(item)
    response = client.get(path)
    assert response.status_code == 303 and "/login" in response.headers["Location"]
    user = UserFactory()
    log_in(client, user.email, PASSWORD)
    review = review_path(order(client, path, quantity="1"))
    assert db.session.scalars(select(Quote)).one().user_id == user.id
    response = pay(client, review)
    assert response.status_code == 303 and response.headers["Location"].startswith("/payments/CP-")
    payment = db.session.scalars(select(Payment)).one()
    assert (payment.user_id, payment.channel) == (user.id, "account")
    assert "Street market stall permit" in page_text(client.get(response.headers["Location"]))


def test_another_account_cannot_pay_an_account_order(client: FlaskClient) -> None:
    item = CatalogItemFactory(kind="permit", requires_account=True)
    path = item_path(item)
    log_in(client, UserFactory().email, PASSWORD)
    review = review_path(order(client, path, quantity="1"))
    intruder = client.application.test_client()
    log_in(intruder, UserFactory().email, PASSWORD)
    with intruder.session_transaction() as session, client.session_transaction() as owner_session:
        session["guest_quotes"] = owner_session["guest_quotes"]  # even with the token in hand
    assert intruder.get(review).status_code == 404


def test_unknown_or_inactive_items_are_not_found(client: FlaskClient) -> None:
    item = CatalogItemFactory(active=False)
    path = item_path(item)
    assert client.get(path).status_code == 404
    assert client.get(f"/buy/{item.agency.code}/no-such-item").status_code == 404
    # An item's code under another agency's address is another (missing) item.
    assert client.get(f"/buy/{AgencyFactory().code}/{item.code}").status_code == 404


def test_an_expired_hold_asks_to_order_again(client: FlaskClient, morning) -> None:
    item = CatalogItemFactory(capacity=5)
    path = item_path(item)
    review = review_path(order(client, path, quantity="1"))
    morning.shift(timedelta(minutes=16))
    page = page_text(client.get(review))
    assert "this order has expired" in page
    response = pay(client, review)
    assert response.status_code == 409 and "this order has expired" in page_text(response)
    assert db.session.scalar(select(func.count(Ticket.id)).where(Ticket.status == "issued")) == 0


def test_orders_are_rate_limited_per_address(client: FlaskClient, set_limits) -> None:
    """Each order holds seats: a bot ordering again and again would empty a concert."""
    set_limits(CATALOG_ORDER_RATE_LIMIT="2 per hour")
    item = CatalogItemFactory(capacity=100)
    path = item_path(item)
    assert [order(client, path, quantity="1").status_code for _ in range(2)] == [303, 303]
    assert order(client, path, quantity="1").status_code == 429
    assert db.session.scalar(select(func.count(Ticket.id))) == 2


def test_several_items_of_an_agency_in_one_order(client: FlaskClient) -> None:
    """Two adult and one child ticket, paid together: one payment, one line per item, all seats issued."""
    adult = CatalogItemFactory(name_en="Adult ticket", price_minor=1500, capacity=10, questions=HOLDER)
    child = CatalogItemFactory(agency=adult.agency, name_en="Child ticket", price_minor=700, capacity=10)
    CatalogItemFactory(agency=adult.agency, name_en="Guided tour", price_minor=500)  # not chosen
    donation_item(agency=adult.agency, name_en="Give to the shelter")
    ids, basket = (adult.id, child.id), f"/buy/{adult.agency.code}"
    page = page_text(client.get(basket))
    assert "Adult ticket" in page and "Child ticket" in page and "Guided tour" in page
    assert "Give to the shelter" in page  # an open amount keeps its own page, linked here
    data = {f"quantity_{ids[0]}": "2", f"quantity_{ids[1]}": "1", f"answer_{ids[0]}_holder": "Maria P."}
    review = review_path(client.post(basket, data={**data, "csrf_token": csrf_token(client, basket)}))
    quote = db.session.scalars(select(Quote)).one()
    assert quote.total_minor == 2 * 1500 + 700
    assert sorted((line.item_id, line.quantity) for line in quote.lines) == sorted([(ids[0], 2), (ids[1], 1)])
    receipt = receipt_path(pay(client, review))
    assert len(re.findall(r"TK-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{2}", page_text(client.get(receipt)))) == 3
    assert db.session.scalar(select(func.count(Ticket.id)).where(Ticket.status == "issued")) == 3


def test_a_basket_needs_an_item_and_the_answers_of_the_items_chosen(client: FlaskClient) -> None:
    adult = CatalogItemFactory(name_en="Adult ticket", price_minor=1500, questions=HOLDER)
    item_id, basket = adult.id, f"/buy/{adult.agency.code}"
    empty = client.post(basket, data={f"quantity_{item_id}": "0", "csrf_token": csrf_token(client, basket)})
    assert empty.status_code == 400 and "Choose at least one item." in page_text(empty)
    unanswered = client.post(basket, data={f"quantity_{item_id}": "1", "csrf_token": csrf_token(client, basket)})
    assert unanswered.status_code == 400
    assert "Adult ticket: Answer every question marked as required." in page_text(unanswered)
    assert db.session.scalar(select(func.count(Quote.id))) == 0


def test_a_basket_is_all_or_nothing_when_one_item_is_sold_out(client: FlaskClient) -> None:
    adult = CatalogItemFactory(name_en="Adult ticket", price_minor=1500, capacity=1)
    child = CatalogItemFactory(agency=adult.agency, name_en="Child ticket", price_minor=700, capacity=5)
    ids, basket = (adult.id, child.id), f"/buy/{adult.agency.code}"
    data = {f"quantity_{ids[0]}": "2", f"quantity_{ids[1]}": "1", "csrf_token": csrf_token(client, basket)}
    response = client.post(basket, data=data)
    assert response.status_code == 409 and "Adult ticket: Only 1 ticket is left." in page_text(response)
    assert db.session.scalar(select(func.count(Ticket.id))) == 0  # the child ticket is not held either
