"""The agency's payment history: each filter, keyset pages, and one payment's page, agency-scoped."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from app.debts.models import Debt
from app.domain.references import format_rf
from app.erp_writeback.handlers import enqueue_payment_acks
from app.extensions import db
from app.outbox.models import OutboxMessage
from app.payments.models import Payment
from tests.factories import AgencyFactory, DebtFactory, DebtorFactory, paid_payment, staff_member
from tests.helpers import page_text
from tests.treasury.helpers import sign_in

REFERENCE_LINK = re.compile(r'/treasury/[^/"]+/payments/(CP-[A-Z0-9-]+)"')


def listed(client: FlaskClient, url: str) -> list[str]:
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)
    return REFERENCE_LINK.findall(response.get_data(as_text=True))


@pytest.fixture()
def town(client: FlaskClient) -> dict:
    """An agency with two payments that differ in every filtered property, and a viewer signed in."""
    agency = AgencyFactory(timezone="Europe/Athens")
    maria = DebtorFactory(tax_id="123456789", name="Maria Papadopoulou")
    john = DebtorFactory(tax_id="987654321", name="John Smith")
    fee = DebtFactory(agency=agency, debtor=maria, category="certified", kind="property_fee")
    water = DebtFactory(agency=agency, debtor=john, category="settled", kind="water_bill")
    early = paid_payment((fee, 1250), created_at=datetime(2026, 2, 10, 10, tzinfo=UTC), provider_reference="pi_early")
    # 22:30 UTC on 28 February is 00:30 on 1 March in Athens.
    late = paid_payment((water, 9000, 1000), created_at=datetime(2026, 2, 28, 22, 30, tzinfo=UTC),
                        status="failed", channel="guest", card_last4="0002")  # fmt: skip
    found = {"code": agency.code, "early": early.reference, "late": late.reference, "fee_rf": fee.rf_reference}
    sign_in(client, staff_member(agency, "view"))
    return found


CASES = [
    ({"date_from": "2026-03-01"}, "late"),
    ({"date_to": "2026-02-28"}, "early"),
    ({"date_from": "2026-02-10", "date_to": "2026-02-10"}, "early"),
    ({"status": "failed"}, "late"),
    ({"status": "succeeded"}, "early"),
    ({"category": "settled"}, "late"),
    ({"kind": "property_fee"}, "early"),
    ({"amount_min": "50"}, "late"),
    ({"amount_max": "12,50"}, "early"),  # inclusive, typed the Greek way
    ({"amount_min": "12.51"}, "late"),
    ({"amount_min": "100,00", "amount_max": "100.00"}, "late"),  # 90 € + 10 € surcharge
    ({"payer": "123456789"}, "early"),
    ({"payer": "EL 987654321"}, "late"),
    ({"payer": "papado"}, "early"),
    ({"reference": "pi_early"}, "early"),
    ({"channel": "guest"}, "late"),
]


@pytest.mark.parametrize(("filters", "expected"), CASES, ids=[",".join(case[0]) + f"={case[1]}" for case in CASES])
def test_each_filter_narrows_the_list(client: FlaskClient, town: dict, filters: dict, expected: str) -> None:
    assert sorted(listed(client, f"/treasury/{town['code']}/payments")) == sorted([town["early"], town["late"]])
    found = listed(client, f"/treasury/{town['code']}/payments?" + "&".join(f"{k}={v}" for k, v in filters.items()))
    assert found == [town[expected]]


def test_rf_and_receipt_number_filters_find_one_payment(client: FlaskClient, town: dict) -> None:
    spaced = format_rf(town["fee_rf"]).lower()  # as read out on the phone
    assert listed(client, f"/treasury/{town['code']}/payments?rf={spaced}") == [town["early"]]
    assert listed(client, f"/treasury/{town['code']}/payments?reference={town['late'].lower()}") == [town["late"]]


def test_a_filter_that_cannot_be_read_says_so(client: FlaskClient, town: dict) -> None:
    response = client.get(f"/treasury/{town['code']}/payments?amount_min=twelve&rf=RF00")
    text = page_text(response)
    assert "Enter an amount like 12,50." in text
    assert "Enter an RF reference like" in text


def test_the_list_shows_what_a_treasurer_needs(client: FlaskClient, town: dict) -> None:
    text = page_text(client.get(f"/treasury/{town['code']}/payments"))
    assert "€100.00" in text and "€12.50" in text
    assert "Declined" in text and "Guest" in text and "0002" in text
    assert "Mar 1, 2026, 12:30:00" in text  # in Athens time


def test_keyset_pages_cover_every_payment_once_in_order(client: FlaskClient) -> None:
    agency = AgencyFactory()
    debt = DebtFactory(agency=agency)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    # 123 payments; every third shares its timestamp with the one before (ties break by id).
    for number in range(123):
        paid_payment((debt, 100 + number), created_at=start + timedelta(minutes=number - number % 3 // 2), commit=False)
    db.session.commit()
    expected = db.session.scalars(
        select(Payment.reference).order_by(Payment.created_at.desc(), Payment.id.desc())
    ).all()
    code = agency.code
    sign_in(client, staff_member(agency, "view"))

    pages, url = [], f"/treasury/{code}/payments"
    while url:
        html = client.get(url).get_data(as_text=True)
        pages.append(REFERENCE_LINK.findall(html))
        older = re.search(r'rel="next" href="([^"]+)"', html)
        url = older.group(1).replace("&amp;", "&") if older else None
    assert [len(page) for page in pages] == [50, 50, 23]
    assert [ref for page in pages for ref in page] == expected

    # And back again with "Newer", from the last page to the first.
    html = client.get(
        f"/treasury/{code}/payments?before="
        + re.search(r"before=([0-9.]+)", client.get(f"/treasury/{code}/payments").get_data(as_text=True)).group(1)
    ).get_data(as_text=True)
    html = client.get(re.search(r'rel="next" href="([^"]+)"', html).group(1).replace("&amp;", "&")).get_data(
        as_text=True
    )
    assert REFERENCE_LINK.findall(html) == pages[2]
    back = re.search(r'rel="prev" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    html = client.get(back).get_data(as_text=True)
    assert REFERENCE_LINK.findall(html) == pages[1]
    back = re.search(r'rel="prev" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    html = client.get(back).get_data(as_text=True)
    assert REFERENCE_LINK.findall(html) == pages[0]
    assert 'rel="prev"' not in html  # the newest page has nothing newer


def test_pages_keep_the_filters(client: FlaskClient) -> None:
    agency = AgencyFactory()
    debt = DebtFactory(agency=agency)
    for number in range(60):
        paid_payment((debt, 100), created_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=number),
                     channel="guest" if number % 2 else "account", commit=False)  # fmt: skip
    db.session.commit()
    code = agency.code
    sign_in(client, staff_member(agency, "view"))
    html = client.get(f"/treasury/{code}/payments?channel=guest").get_data(as_text=True)
    assert len(REFERENCE_LINK.findall(html)) == 30
    assert 'rel="next"' not in html


@pytest.fixture()
def shared_payment(client: FlaskClient) -> dict:
    """One payment paying 10 € to the town and 50 € to the water company; the town's viewer signed in."""
    town, water = AgencyFactory(), AgencyFactory()
    debtor = DebtorFactory()
    fee = DebtFactory(agency=town, debtor=debtor, description="Town property fee", principal_minor=1000)
    bill = DebtFactory(agency=water, debtor=debtor, description="Water company bill", principal_minor=4900)
    payment = paid_payment((fee, 950, 50), (bill, 4900, 100))
    enqueue_payment_acks(payment)
    db.session.commit()
    for message in db.session.scalars(select(OutboxMessage)):
        message.status = "delivered" if message.agency_id == town.id else "dead"
        message.last_error = None if message.agency_id == town.id else "Water ERP secret failure text"
        message.delivered_at = payment.created_at if message.agency_id == town.id else None
    db.session.commit()
    found = {"town": town.code, "water": water.code, "reference": payment.reference}
    sign_in(client, staff_member(town, "view"))
    return found


def test_a_shared_payment_shows_only_this_agencys_lines_and_subtotal(client: FlaskClient, shared_payment: dict) -> None:
    listing = page_text(client.get(f"/treasury/{shared_payment['town']}/payments"))
    assert "€10.00" in listing
    assert "€60.00" not in listing and "€50.00" not in listing

    page = page_text(client.get(f"/treasury/{shared_payment['town']}/payments/{shared_payment['reference']}"))
    assert "Town property fee" in page
    assert "€9.50" in page and "€0.50" in page and "€10.00" in page
    assert "Water company bill" not in page
    assert "€49.00" not in page and "€60.00" not in page and "€50.00" not in page and "€1.00" not in page
    assert "Recorded by the ERP" in page
    assert "Water ERP secret failure text" not in page and "needs attention" not in page


def test_the_amount_filter_uses_this_agencys_subtotal(client: FlaskClient, shared_payment: dict) -> None:
    base = f"/treasury/{shared_payment['town']}/payments"
    assert listed(client, base + "?amount_min=50") == []  # the whole payment is 60 €: not the town's business
    assert listed(client, base + "?amount_min=10&amount_max=10") == [shared_payment["reference"]]


def test_a_line_filter_does_not_match_another_agencys_line(client: FlaskClient, shared_payment: dict) -> None:
    water_rf = db.session.scalar(select(Debt.rf_reference).where(Debt.description == "Water company bill"))
    assert listed(client, f"/treasury/{shared_payment['town']}/payments?rf={water_rf}") == []


def test_the_payment_page_shows_status_times_and_write_back(client: FlaskClient) -> None:
    agency = AgencyFactory(timezone="Europe/Athens")
    debt = DebtFactory(agency=agency, description="Stall rent March")
    paid = paid_payment(
        (debt, 3000), created_at=datetime(2026, 2, 28, 22, 30, tzinfo=UTC), provider_reference="pi_3Abc"
    )
    failed = paid_payment((debt, 3000), status="failed")
    enqueue_payment_acks(paid)
    db.session.commit()
    code, rf, paid_ref, failed_ref = agency.code, debt.rf_reference, paid.reference, failed.reference
    sign_in(client, staff_member(agency, "view"))

    page = page_text(client.get(f"/treasury/{code}/payments/{paid_ref}"))
    assert "Paid" in page and "pi_3Abc" in page and "4242" in page
    assert "Mar 1, 2026, 12:30:00" in page
    assert format_rf(rf) in page
    assert "Waiting to be sent" in page

    page = page_text(client.get(f"/treasury/{code}/payments/{failed_ref}"))
    assert "Declined" in page and "Not sent (the payment is not complete)" in page


def test_the_payment_page_shows_each_lines_withholdings_and_the_net(client: FlaskClient) -> None:
    agency = AgencyFactory(
        withholdings={
            "default": [{"name": "Ταμείο Χ", "percent": "2"}],
            "traffic_fine": [{"name": "Fund Y", "fixed_minor": 50}, {"name": "Fund Z", "percent": "0.5"}],
            "parking": [],
        }
    )
    fee = DebtFactory(agency=agency, kind="property_fee")
    fine = DebtFactory(agency=agency, kind="traffic_fine")
    parking = DebtFactory(agency=agency, kind="parking")
    payment = paid_payment((fee, 12345), (fine, 10001), (parking, 3000))
    code, reference = agency.code, payment.reference
    sign_in(client, staff_member(agency, "view"))

    page = page_text(client.get(f"/treasury/{code}/payments/{reference}"))
    lists = re.findall(r'<ul class="withholdings[^"]*" data-testid="withholdings"[^>]*>(.*?)</ul>', page, re.S)
    items = [re.findall(r"<li>(.*?)</li>", found) for found in lists]
    assert items == [
        ["Ταμείο Χ: €2.47", "Net to agency: €120.98"],  # 2 % of €123.45 = 2.469 → €2.47
        ["Fund Y: €0.50", "Fund Z: €0.50", "Net to agency: €99.01"],  # 0.5 % of €100.01 = 0.50005 → €0.50
    ]  # the parking line has no withholdings: no list at all


def test_the_payment_page_shows_the_split_booked_when_paid_not_todays_rates(client: FlaskClient) -> None:
    agency = AgencyFactory(withholdings={"default": [{"name": "Ταμείο Χ", "percent": "2"}]})
    payment = paid_payment((DebtFactory(agency=agency), 10000))
    agency.withholdings = {"default": [{"name": "Ταμείο Χ", "percent": "10"}, {"name": "Fund New", "fixed_minor": 5}]}
    db.session.commit()
    code, reference = agency.code, payment.reference
    sign_in(client, staff_member(agency, "view"))
    page = page_text(client.get(f"/treasury/{code}/payments/{reference}"))
    [found] = re.findall(r'<ul class="withholdings[^"]*" data-testid="withholdings"[^>]*>(.*?)</ul>', page, re.S)
    assert re.findall(r"<li>(.*?)</li>", found) == ["Ταμείο Χ: €2.00", "Net to agency: €98.00"]
