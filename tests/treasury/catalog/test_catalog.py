"""The agency's catalog in the treasury, and the door's ticket check."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.agencies.models import Agency
from app.audit.models import AuditEntry
from app.catalog.models import CatalogItem, Ticket
from app.checkout.services import quote_item
from app.extensions import db
from app.guest.services import pay_guest_quote
from app.payments.providers import CardDetails, get_provider
from tests.factories import AgencyFactory, CatalogItemFactory, staff_member
from tests.helpers import csrf_token, page_text
from tests.treasury.helpers import MORNING, sign_in

GOOD_CARD = CardDetails(number="4242424242424242", exp_month=12, exp_year=2030, cvc="123", holder="G")

VALID = {
    "code": "summer-concert",
    "kind": "ticket",
    "name_el": "Καλοκαιρινή συναυλία",
    "name_en": "Summer concert",
    "description_el": "",
    "description_en": "",
    "price": "12,50",
    "min_amount": "",
    "max_amount": "",
    "available_from": "2026-03-01T09:00",
    "available_until": "2026-07-01T21:00",
    "capacity": "300",
    "max_per_order": "6",
    "questions": "holder; Ονοματεπώνυμο; Name on the ticket; required",
    "active": "y",
}


def post_item(client: FlaskClient, path: str, **changes: str):
    data = {**VALID, **changes, "csrf_token": csrf_token(client, path)}
    data = {key: value for key, value in data.items() if value is not None}
    return client.post(path, data=data)


@pytest.fixture()
def admin(client: FlaskClient) -> SimpleNamespace:
    """An agency whose administrator is signed in: its code and id (its row is reloaded per use)."""
    agency = AgencyFactory(timezone="Europe/Athens")
    known = SimpleNamespace(code=agency.code, id=agency.id)
    sign_in(client, staff_member(agency, "admin"))
    return known


def row(admin: SimpleNamespace) -> Agency:
    return db.session.get(Agency, admin.id)


def test_an_administrator_adds_a_ticket_with_capacity_and_a_question(client: FlaskClient, admin) -> None:
    path = f"/treasury/{admin.code}/catalog/new"
    response = post_item(client, path)
    assert response.status_code == 303, page_text(response)
    item = db.session.scalars(select(CatalogItem)).one()
    assert (item.price_minor, item.min_minor, item.capacity, item.max_per_order) == (1250, None, 300, 6)
    # 09:00 in Athens on 1 March is 07:00 UTC.
    assert item.available_from.isoformat() == "2026-03-01T07:00:00+00:00"
    assert item.questions == [
        {"key": "holder", "label_el": "Ονοματεπώνυμο", "label_en": "Name on the ticket", "required": True}
    ]
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "catalog.item_saved")).one()
    assert (entry.agency_id, entry.subject) == (admin.id, "summer-concert")
    page = page_text(client.get(f"/treasury/{admin.code}/catalog"))
    assert "Summer concert" in page and "300" in page


def test_a_donation_is_a_range_not_a_price(client: FlaskClient, admin) -> None:
    path = f"/treasury/{admin.code}/catalog/new"
    response = post_item(
        client,
        path,
        kind="donation",
        price="",
        min_amount="5",
        max_amount="1.000",
        capacity="",
        max_per_order="3",
        questions="",
    )
    assert response.status_code == 303, page_text(response)
    item = db.session.scalars(select(CatalogItem)).one()
    assert (item.price_minor, item.min_minor, item.max_minor, item.max_per_order) == (None, 500, 100000, 1)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"price": ""}, "Enter a price, or a smallest and a largest amount for an open amount."),
        ({"min_amount": "5", "max_amount": "10"}, "Enter either a price or a range, not both."),
        (
            {"price": "", "min_amount": "10", "max_amount": "5", "kind": "donation", "capacity": ""},
            "The largest amount must be at least the smallest.",
        ),
        ({"kind": "permit"}, "Only tickets have a capacity."),
        ({"price": "abc"}, "Enter an amount such as 20 or 20,50."),
        ({"available_until": "2026-02-01T09:00"}, "The end of the sale must come after its start."),
        ({"questions": "Name on the ticket"}, "Line 1: write a key"),
        ({"code": "Summer Concert!"}, "Use small Latin letters, digits and dashes, up to 40."),
        ({"kind": "raffle"}, "Not a valid choice"),
    ],
)
def test_item_mistakes_are_explained_and_nothing_is_saved(
    client: FlaskClient, admin, changes: dict, message: str
) -> None:
    response = post_item(client, f"/treasury/{admin.code}/catalog/new", **changes)
    assert response.status_code == 400 and message in page_text(response)
    assert db.session.scalars(select(CatalogItem)).all() == []


def test_codes_are_unique_per_agency_and_an_item_can_be_changed(client: FlaskClient, admin) -> None:
    CatalogItemFactory(agency=row(admin), code="summer-concert")
    other_id = CatalogItemFactory(agency=row(admin), code="winter-concert").id
    response = post_item(client, f"/treasury/{admin.code}/catalog/new")
    assert response.status_code == 400 and "Another item of this agency has this code." in page_text(response)
    edit = f"/treasury/{admin.code}/catalog/{other_id}"
    assert "winter-concert" in page_text(client.get(edit))
    response = post_item(client, edit, code="winter-concert", price="20", active=None)
    assert response.status_code == 303
    db.session.expire_all()
    changed = db.session.get(CatalogItem, other_id)
    assert (changed.price_minor, changed.active) == (2000, False)


def sold_ticket(agency) -> Ticket:
    item = CatalogItemFactory(agency=agency, name_en="Summer concert")
    quote = quote_item(item.id, quantity=1, chosen_minor=None, answers=None, user_id=None, now=MORNING)
    pay_guest_quote(quote.token, GOOD_CARD, get_provider("sandbox"), MORNING)
    return db.session.scalars(select(Ticket)).one()


def check(client: FlaskClient, code: str):
    return client.post("/tickets/check", data={"code": code, "csrf_token": csrf_token(client, "/tickets/check")})


@pytest.mark.parametrize("role", ["view", "refund", "admin"])
def test_door_staff_let_a_ticket_in_once(app: Flask, client: FlaskClient, role: str, clock) -> None:
    agency = AgencyFactory()
    with app.app_context():
        ticket = sold_ticket(agency)
    code, ticket_id = ticket.code, ticket.id
    sign_in(client, staff_member(agency, role))
    # Opening the QR code's link shows the ticket but does not use it.
    preview = client.get(f"/tickets/check?code={code}")
    assert preview.status_code == 200 and "paid, not used yet" in page_text(preview)
    assert db.session.get(Ticket, ticket_id).status == "issued"

    first = check(client, code.lower())
    assert first.status_code == 200 and "Valid: let in." in page_text(first)
    clock.shift(timedelta(minutes=3))
    again = check(client, code)
    assert again.status_code == 409 and "Already used." in page_text(again)
    actions = db.session.scalars(select(AuditEntry.details).where(AuditEntry.action == "ticket.check")).all()
    assert [details["outcome"] for details in actions] == ["admitted", "already_used"]


def test_another_agencys_staff_cannot_check_or_see_a_ticket(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        ticket = sold_ticket(AgencyFactory())
    code, ticket_id = ticket.code, ticket.id
    sign_in(client, staff_member(AgencyFactory(), "admin"))
    assert client.get(f"/tickets/check?code={code}").status_code == 404
    response = check(client, code)
    assert response.status_code == 404 and "Unknown ticket." in page_text(response)
    assert "Summer concert" not in page_text(response)
    assert db.session.get(Ticket, ticket_id).status == "issued"


def test_the_catalog_counts_sold_used_and_held(app: Flask, client: FlaskClient, admin) -> None:
    item = CatalogItemFactory(agency=row(admin), code="concert", capacity=10)
    with app.app_context():
        quote_item(item.id, quantity=2, chosen_minor=None, answers=None, user_id=None, now=MORNING)  # held
        db.session.commit()  # as the first order's request would: the next order starts with its own lock
        paid = quote_item(item.id, quantity=3, chosen_minor=None, answers=None, user_id=None, now=MORNING)
        pay_guest_quote(paid.token, GOOD_CARD, get_provider("sandbox"), MORNING)
    html = client.get(f"/treasury/{admin.code}/catalog").get_data(as_text=True)
    assert 'data-testid="sold-concert">3<' in html
    assert '<td class="num" data-label="Held now">2</td>' in html


def test_a_ticket_sale_shows_on_the_payment_page_with_its_codes_and_write_back(
    app: Flask, client: FlaskClient, admin
) -> None:
    item = CatalogItemFactory(agency=row(admin), code="concert", name_en="Summer concert", kind="ticket")
    with app.app_context():
        quote = quote_item(item.id, quantity=2, chosen_minor=None, answers=None, user_id=None, now=MORNING)
        payment = pay_guest_quote(quote.token, GOOD_CARD, get_provider("sandbox"), MORNING)
        reference = payment.reference
    codes = list(db.session.scalars(select(Ticket.code)))
    page = page_text(client.get(f"/treasury/{admin.code}/payments/{reference}"))
    assert "Summer concert × 2" in page and "Item code concert" in page and "Sold item" in page
    assert all(code in page for code in codes) and len(codes) == 2
    assert "Waiting to be sent" in page  # the sale's own message to the ERP
    assert "€30.00" in page


def test_catalog_and_door_actions_read_as_words_on_the_audit_page(app: Flask, client: FlaskClient, admin) -> None:
    post_item(client, f"/treasury/{admin.code}/catalog/new")
    with app.app_context():
        ticket = sold_ticket(row(admin))
        code = ticket.code
    check(client, code)
    page = page_text(client.get(f"/treasury/{admin.code}/audit"))
    assert "Catalog item saved" in page and "summer-concert" in page
    assert "Ticket checked at the door" in page and code in page and "Let in" in page
    assert '<option value="ticket.check">Ticket checked at the door</option>' in page  # the filter names it too
