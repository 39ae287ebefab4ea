"""Receipt pages over HTTP: the owner's PDF, the public verification page, the filtered history."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import segno
from flask import Flask
from flask.testing import FlaskClient

from app.accounts.models import User
from app.agencies.models import Agency
from app.debts.models import Debtor
from tests.factories import PASSWORD, AgencyFactory, DebtFactory, DebtorFactory, UserFactory, link
from tests.helpers import log_in, page_text
from tests.receipts.helpers import fail_to_pay, pay, token_for


@dataclass
class Paid:
    """A citizen's payment, with the values tests read kept before a request ends the session."""

    user: User
    debtor: Debtor
    water: Agency
    town: Agency
    email: str
    reference: str
    token: str
    amount_minor: int
    provider_reference: str


@pytest.fixture()
def maria(app: Flask, client: FlaskClient) -> Paid:
    """A citizen with a proven tax ID who has paid one water bill and one property fee at once."""
    user, debtor = UserFactory(full_name="Maria Papadopoulou"), DebtorFactory()
    link(user, debtor)
    water = AgencyFactory(code="water", name_el="ΔΕΥΑ Ανατολικής Ακτής", name_en="East Coast Water Company")
    town = AgencyFactory(code="town", name_el="Δήμος Ορεινής Κοιλάδας", name_en="Mountain Valley")
    payment = pay(
        user,
        [
            DebtFactory(debtor=debtor, agency=water, description="Water bill 2025/4", principal_minor=10000),
            DebtFactory(debtor=debtor, agency=town, description="Property fee 2026", principal_minor=4550),
        ],
    )
    return Paid(
        user=user,
        debtor=debtor,
        water=water,
        town=town,
        email=user.email,
        reference=payment.reference,
        token=token_for(app, payment.reference),
        amount_minor=payment.amount_minor,
        provider_reference=payment.provider_reference,
    )


def dark_modules(html: str) -> str:
    """The path that draws the dark modules of the first inline SVG QR code on a page."""
    match = re.search(r'<svg [^>]*>.*?<path\b[^>]*\bstroke="#000"[^>]*\bd="([^"]+)"', html, re.S)
    assert match, "no inline SVG QR code on the page"
    return match.group(1)


# -- the receipt page ----------------------------------------------------------------------------


def test_receipt_page_links_the_pdf_and_shows_the_qr_code_of_the_verification_page(
    client: FlaskClient, maria: Paid
) -> None:
    log_in(client, maria.email, PASSWORD)
    html = page_text(client.get(f"/payments/{maria.reference}"))

    assert f'href="/payments/{maria.reference}/receipt.pdf"' in html
    url = f"http://localhost/receipts/verify/{maria.token}"
    assert f'href="{url}"' in html
    svg = re.search(r"<svg [^>]*>", html).group(0)
    assert 'role="img"' in svg and 'aria-label="QR code of the verification page of this receipt"' in svg
    # segno encodes deterministically: equal drawings of the dark modules mean equal symbols.
    assert dark_modules(html) == dark_modules(segno.make_qr(url, error="m").svg_inline(scale=4, dark="#000"))


def test_receipt_of_a_declined_payment_offers_no_pdf_and_no_qr_code(client: FlaskClient, maria: Paid) -> None:
    declined = fail_to_pay(maria.user, [DebtFactory(debtor=maria.debtor)]).reference
    log_in(client, maria.email, PASSWORD)
    html = page_text(client.get(f"/payments/{declined}"))
    assert "Declined" in html
    assert "receipt.pdf" not in html and "<svg" not in html and "/receipts/verify/" not in html


# -- the PDF --------------------------------------------------------------------------------------


def test_owner_downloads_the_pdf(client: FlaskClient, maria: Paid) -> None:
    log_in(client, maria.email, PASSWORD)
    response = client.get(f"/payments/{maria.reference}/receipt.pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF-")
    assert response.headers["Content-Disposition"] == f'attachment; filename="receipt-{maria.reference}.pdf"'
    assert "no-store" in response.headers["Cache-Control"]


def test_another_citizens_pdf_is_not_found(client: FlaskClient, maria: Paid) -> None:
    stranger = UserFactory()
    log_in(client, stranger.email, PASSWORD)
    response = client.get(f"/payments/{maria.reference}/receipt.pdf")
    assert response.status_code == 404
    assert b"%PDF" not in response.data


def test_a_declined_payment_has_no_pdf(client: FlaskClient, maria: Paid) -> None:
    declined = fail_to_pay(maria.user, [DebtFactory(debtor=maria.debtor)]).reference
    log_in(client, maria.email, PASSWORD)
    assert client.get(f"/payments/{declined}/receipt.pdf").status_code == 404


def test_the_pdf_needs_a_log_in(client: FlaskClient, maria: Paid) -> None:
    response = client.get(f"/payments/{maria.reference}/receipt.pdf")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


# -- the public verification page -----------------------------------------------------------------


def test_verification_page_shows_the_lines_but_not_the_payer(client: FlaskClient, maria: Paid) -> None:
    response = client.get(f"/receipts/verify/{maria.token}")  # nobody logged in
    assert response.status_code == 200
    html = page_text(response)
    total = f"€{maria.amount_minor // 100}.{maria.amount_minor % 100:02d}"
    for expected in (
        maria.reference,
        "Paid",
        "East Coast Water Company",
        "Mountain Valley",
        "Water bill 2025/4",
        "Property fee 2026",
        "€100.00",
        "€45.50",
        total,
        "Test mode: no money moved",
    ):
        assert expected in html, expected
    for hidden in ("Maria", "Papadopoulou", "4242", maria.provider_reference):
        assert hidden not in html, hidden
    assert response.headers["X-Robots-Tag"] == "noindex, nofollow"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_verification_page_speaks_the_visitors_language(client: FlaskClient, maria: Paid) -> None:
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "el"
    html = page_text(client.get(f"/receipts/verify/{maria.token}"))
    assert "ΔΕΥΑ Ανατολικής Ακτής" in html and "100,00 €" in html


def test_tampered_token_is_not_found_with_a_sentence(client: FlaskClient, maria: Paid) -> None:
    forged = maria.token[:-1] + ("A" if maria.token[-1] != "A" else "B")
    response = client.get(f"/receipts/verify/{forged}")
    assert response.status_code == 404
    html = page_text(response)
    assert "This receipt could not be verified." in html
    assert "Water bill 2025/4" not in html and "€100.00" not in html


def test_a_declined_payment_does_not_verify(app: Flask, client: FlaskClient, maria: Paid) -> None:
    declined = fail_to_pay(maria.user, [DebtFactory(debtor=maria.debtor)]).reference
    assert client.get(f"/receipts/verify/{token_for(app, declined)}").status_code == 404


# -- the history ----------------------------------------------------------------------------------


def history_references(html: str) -> list[str]:
    """The receipt numbers listed in the history table, top to bottom."""
    return re.findall(r'<a href="/payments/(CP-[^"/]+)">', html)


def test_history_shows_agency_lines_status_card_and_local_date(client: FlaskClient, maria: Paid) -> None:
    log_in(client, maria.email, PASSWORD)
    html = page_text(client.get("/payments")).replace("\u202f", " ")
    row = html[html.index(f'<a href="/payments/{maria.reference}">') :]
    row = row[: row.index("</tr>")]
    for expected in ("East Coast Water Company", "Water bill 2025/4", "Mountain Valley", "Paid", "Visa", "4242"):
        assert expected in row, expected
    # Paid at 10:00 UTC on 1 March: noon in Athens.
    assert "Mar 1, 2026, 12:00:00 PM" in html


def test_history_filters_by_year_and_agency_with_a_plain_form(client: FlaskClient, maria: Paid) -> None:
    last_year = pay(
        maria.user, [DebtFactory(debtor=maria.debtor, agency=maria.water)], now=datetime(2025, 5, 2, 9, tzinfo=UTC)
    ).reference
    town_only = pay(maria.user, [DebtFactory(debtor=maria.debtor, agency=maria.town)]).reference
    log_in(client, maria.email, PASSWORD)

    page = page_text(client.get("/payments"))
    assert '<form method="get" action="/payments"' in page
    assert set(history_references(page)) == {maria.reference, last_year, town_only}

    assert history_references(page_text(client.get("/payments?year=2025"))) == [last_year]
    by_agency = page_text(client.get("/payments?agency=water"))
    assert set(history_references(by_agency)) == {maria.reference, last_year}
    assert '<option value="water" selected>' in by_agency
    assert history_references(page_text(client.get("/payments?year=2026&agency=water"))) == [maria.reference]
    empty = page_text(client.get("/payments?year=2025&agency=town"))
    assert history_references(empty) == [] and "You made no payments that match these filters." in empty


def test_history_offers_only_the_citizens_own_agencies_and_years(client: FlaskClient, maria: Paid) -> None:
    neighbour, their_debtor = UserFactory(), DebtorFactory()
    link(neighbour, their_debtor)
    theirs = AgencyFactory(code="theirs", name_en="Their Town")
    pay(neighbour, [DebtFactory(debtor=their_debtor, agency=theirs)], now=datetime(2024, 5, 2, 9, tzinfo=UTC))
    log_in(client, maria.email, PASSWORD)

    html = page_text(client.get("/payments"))

    assert re.findall(r'<option value="([^"]*)"', html) == ["", "2026", "", "water", "town"]
    assert "Their Town" not in html and "2024" not in html
