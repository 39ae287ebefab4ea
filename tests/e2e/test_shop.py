"""Visitors buy an agency's items without an account: the last ticket, and a donation's range."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import func, select, update

from app.catalog.models import CatalogItem, Ticket
from app.extensions import db
from app.payments.models import Payment
from tests.e2e.steps import CARD_SUCCEEDS, Snap, assert_accessible, fill_card, parse_money

# Marked e2e by tests/e2e/conftest.py, like every test in this folder.
pytestmark = pytest.mark.usefixtures("demo_data")

CONCERT = "/buy/eastcoast/summer-concert"
DONATION = "/buy/eastcoast/animal-shelter"
REVIEW_URL = re.compile(r"/pay/review/[A-Za-z0-9_-]+$")
RECEIPT_URL = re.compile(r"/pay/receipt/(CP-[0-9A-Z-]+)$")
TICKET_CODE = re.compile(r"^TK-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{2}$")


@pytest.fixture()
def one_seat_left(app: Flask) -> None:
    """The demo concert with a capacity of one ticket."""
    with app.app_context():
        db.session.execute(update(CatalogItem).where(CatalogItem.code == "summer-concert").values(capacity=1))
        db.session.commit()


def test_two_buyers_of_the_last_ticket_one_gets_it_the_other_hears_sold_out(
    one_seat_left: None, open_page: Callable[..., Any], app: Flask, snap: Snap
) -> None:
    first, second = open_page(), open_page()
    # Both open the concert while one ticket is left.
    for page in (first, second):
        page.goto("/buy")
        page.get_by_role("link", name="Summer concert at the municipal theatre").click()
        expect(page.get_by_test_id("seats-left")).to_have_text("1")
    assert_accessible(first)
    snap(first, "01-item")
    second.goto("/buy")
    expect(second.get_by_test_id("catalog-eastcoast")).to_contain_text("Donation to the municipal animal shelter")
    assert_accessible(second)
    second.go_back()

    first.get_by_label("How many").fill("1")
    first.get_by_label("Name on the ticket").fill("Eleni K.")
    first.get_by_role("button", name="Continue to payment").click()
    expect(first).to_have_url(REVIEW_URL)
    expect(first.get_by_test_id("held-until")).to_contain_text("held for you until")
    assert parse_money(first.get_by_test_id("quote-total").inner_text()) == 1500
    assert_accessible(first)
    snap(first, "02-review")

    # The second buyer presses Continue a moment later: the seat is held for the first.
    second.get_by_label("How many").fill("1")
    second.get_by_label("Name on the ticket").fill("Nikos M.")
    second.get_by_role("button", name="Continue to payment").click()
    expect(second.get_by_test_id("order-error")).to_have_text(
        "Sold out: there are no tickets left. Nothing was charged."
    )
    expect(second.get_by_test_id("sold-out")).to_be_visible()
    assert_accessible(second)
    snap(second, "02-sold-out")

    fill_card(first, CARD_SUCCEEDS, holder="Eleni K.")
    first.get_by_role("button", name="Pay now").click()
    expect(first).to_have_url(RECEIPT_URL)
    expect(first.get_by_test_id("payment-status")).to_have_text("Paid")
    code = first.get_by_test_id("ticket-code").inner_text()
    assert TICKET_CODE.fullmatch(code), code
    with first.expect_download() as download:
        first.get_by_test_id("tickets-pdf").click()
    assert download.value.suggested_filename.startswith("tickets-CP-")
    assert_accessible(first)
    snap(first, "03-receipt")

    with app.app_context():
        assert db.session.scalar(select(func.count(Ticket.id)).where(Ticket.status == "issued")) == 1
        assert db.session.scalar(select(func.count(Payment.id))) == 1


def test_a_donation_outside_its_range_is_refused_then_given(page: Page, app: Flask, snap: Snap) -> None:
    page.goto(DONATION)
    expect(page.get_by_test_id("item-range")).to_have_text("from €5.00 to €1,000.00")
    page.get_by_label("Amount (€)").fill("2")
    page.get_by_role("button", name="Continue to payment").click()
    expect(page.get_by_test_id("order-error")).to_have_text("The smallest amount is €5.00.")
    assert_accessible(page)
    snap(page, "01-too-little")

    page.get_by_label("Amount (€)").fill("1500")
    page.get_by_role("button", name="Continue to payment").click()
    expect(page.get_by_test_id("order-error")).to_have_text("The largest amount is €1,000.00.")

    page.get_by_label("Amount (€)").fill("25,50")
    page.get_by_role("button", name="Continue to payment").click()
    expect(page).to_have_url(REVIEW_URL)
    assert parse_money(page.get_by_test_id("quote-total").inner_text()) == 2550
    fill_card(page, CARD_SUCCEEDS, holder="A Friend")
    page.get_by_role("button", name="Pay now").click()
    expect(page).to_have_url(RECEIPT_URL)
    assert parse_money(page.get_by_test_id("payment-total").inner_text()) == 2550
    assert_accessible(page)
    snap(page, "02-receipt")
    with app.app_context():
        assert db.session.scalar(select(func.count(Ticket.id))) == 0  # a donation issues no ticket


def test_treasury_adds_an_item_and_lets_a_ticket_in_once_at_the_door(page: Page, app: Flask, snap: Snap) -> None:
    import pyotp

    from app.accounts.models import User
    from app.checkout.services import quote_item
    from app.db import utcnow
    from app.encryption import decrypt_secret
    from app.guest.services import pay_guest_quote
    from app.payments.providers import CardDetails, get_provider
    from tests.e2e.steps import choose_language, log_in

    admin_email, admin_password = "treasury-eastcoast@example.org", "demo-treasury-2026"
    with app.app_context():
        concert = db.session.scalar(select(CatalogItem).where(CatalogItem.code == "summer-concert"))
        quote = quote_item(
            concert.id, quantity=1, chosen_minor=None, answers={"holder": "Eleni K."}, user_id=None, now=utcnow()
        )
        card = CardDetails(number="4242424242424242", exp_month=12, exp_year=2030, cvc="123", holder="E K")
        pay_guest_quote(quote.token, card, get_provider("sandbox"), utcnow())
        code = db.session.scalars(select(Ticket.code).where(Ticket.status == "issued")).one()
        secret = decrypt_secret(db.session.scalar(select(User.totp_secret).where(User.email == admin_email)))

    log_in(page, admin_email, admin_password)
    choose_language(page, "English", "en")
    page.goto("/treasury/eastcoast/catalog")
    page.get_by_label("Code", exact=True).fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Catalog")
    expect(page.get_by_test_id("sold-summer-concert")).to_have_text("1")
    assert_accessible(page)
    snap(page, "01-catalog")

    page.get_by_role("link", name="Add an item").click()
    page.get_by_role("button", name="Save item").click()  # empty: every mistake is listed
    expect(page.get_by_role("alert")).to_contain_text("The item was not saved.")
    assert_accessible(page)
    page.get_by_label("Code", exact=True).fill("winter-festival")
    page.get_by_label("Kind").select_option("ticket")
    page.get_by_label("Name in Greek").fill("Χειμερινό φεστιβάλ")
    page.get_by_label("Name in English").fill("Winter festival")
    page.get_by_label("Price of one").fill("8,00")
    page.get_by_label("Capacity (tickets only)").fill("200")
    page.get_by_role("button", name="Save item").click()
    expect(page.get_by_test_id("catalog-items")).to_contain_text("Winter festival")
    snap(page, "02-item-added")

    page.goto(f"/tickets/check?code={code}")
    expect(page.get_by_test_id("check-preview")).to_contain_text("paid, not used yet")
    assert_accessible(page)
    page.get_by_role("button", name="Let in").click()
    expect(page.get_by_test_id("check-outcome")).to_have_attribute("data-outcome", "admitted")
    assert_accessible(page)
    snap(page, "03-admitted")
    page.get_by_label("Ticket code").fill(code)
    page.get_by_role("button", name="Let in").click()
    expect(page.get_by_test_id("check-outcome")).to_have_attribute("data-outcome", "already_used")
    assert_accessible(page)
    snap(page, "04-already-used")


def test_several_tickets_in_one_order_from_the_agency_page(page: Page, app: Flask, snap: Snap) -> None:
    page.goto("/buy")
    page.get_by_role("link", name=re.compile("Buy several of .* items in one order")).first.click()
    expect(page.get_by_test_id("basket-summer-concert")).to_be_visible()
    assert_accessible(page)
    snap(page, "01-basket")
    page.get_by_label("How many of “Summer concert at the municipal theatre”").fill("3")
    page.get_by_label("Name on the ticket (Summer concert at the municipal theatre)").fill("Family K.")
    page.get_by_role("button", name="Continue to payment").click()
    expect(page).to_have_url(REVIEW_URL)
    assert parse_money(page.get_by_test_id("quote-total").inner_text()) == 4500
    fill_card(page, CARD_SUCCEEDS, holder="Family K.")
    page.get_by_role("button", name="Pay now").click()
    expect(page).to_have_url(RECEIPT_URL)
    expect(page.get_by_test_id("ticket-code")).to_have_count(3)
    assert_accessible(page)
    snap(page, "02-receipt")
