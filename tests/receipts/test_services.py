"""Receipt services: tokens nobody can forge, the PDF's contents and QR code, the history filters."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import segno
import time_machine
from flask import Flask
from pypdf import PdfReader

from app.payments.services import payment_history
from app.receipts import pdf as receipt_pdf_module
from app.receipts.services import (
    owned_receipt,
    receipt_pdf,
    reference_of_token,
    verification_token,
    verification_url,
    verified_payment,
)
from tests.factories import AgencyFactory, DebtFactory, DebtorFactory, UserFactory, link
from tests.receipts.helpers import fail_to_pay, pay, token_for


@pytest.fixture()
def citizen(app_ctx: Flask):
    """A citizen (Greek-speaking) with a proven tax ID."""
    user, debtor = UserFactory(full_name="Μαρία Παπαδοπούλου", language="el"), DebtorFactory()
    link(user, debtor)
    return user, debtor


def pdf_text(document: bytes) -> str:
    """Every page's text, with the no-break spaces of formatted amounts made plain."""
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(document)).pages)
    return text.replace("\xa0", " ").replace("\u202f", " ")


# -- tokens ---------------------------------------------------------------------------------------


def test_token_is_the_reference_and_its_hmac(app_ctx: Flask) -> None:
    assert verification_token("CP-7KQ2-M9XA-3F") == token_for(app_ctx, "CP-7KQ2-M9XA-3F")
    assert reference_of_token(token_for(app_ctx, "CP-7KQ2-M9XA-3F")) == "CP-7KQ2-M9XA-3F"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: token.replace("CP-7KQ2", "CP-7KQ3"),  # another receipt with this MAC
        lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),  # one character of the MAC
        lambda token: token[:-1],  # shortened
        lambda token: token.split(".")[0],  # the reference alone
        lambda token: token + "é",  # non-ASCII characters cannot crash the comparison
        lambda token: "." + token.split(".")[1],  # the MAC alone
    ],
)
def test_a_tampered_token_vouches_for_nothing(app_ctx: Flask, tamper) -> None:
    assert reference_of_token(tamper(verification_token("CP-7KQ2-M9XA-3F"))) is None


def test_the_token_depends_on_the_secret_key(app_ctx: Flask) -> None:
    token = verification_token("CP-7KQ2-M9XA-3F")
    app_ctx.config["SECRET_KEY"], original = "another-secret", app_ctx.config["SECRET_KEY"]
    try:
        assert reference_of_token(token) is None
    finally:
        app_ctx.config["SECRET_KEY"] = original


def test_verified_payment_only_for_payments_that_succeeded(citizen) -> None:
    user, debtor = citizen
    paid = pay(user, [DebtFactory(debtor=debtor)])
    declined = fail_to_pay(user, [DebtFactory(debtor=debtor)])
    assert verified_payment(verification_token(paid.reference)).id == paid.id
    assert verified_payment(verification_token(declined.reference)) is None


def test_public_url_is_the_base_of_verification_links(citizen, app_ctx: Flask) -> None:
    user, debtor = citizen
    payment = pay(user, [DebtFactory(debtor=debtor)])
    assert verification_url(payment) == "http://localhost/receipts/verify/" + token_for(app_ctx, payment.reference)
    app_ctx.config["PUBLIC_URL"] = "https://pay.example.gov/"
    try:
        assert verification_url(payment).startswith("https://pay.example.gov/receipts/verify/CP-")
    finally:
        app_ctx.config["PUBLIC_URL"] = None


# -- the PDF --------------------------------------------------------------------------------------


def test_owned_receipt_is_only_the_owners_successful_payment(citizen) -> None:
    user, debtor = citizen
    paid = pay(user, [DebtFactory(debtor=debtor)])
    declined = fail_to_pay(user, [DebtFactory(debtor=debtor)])
    assert owned_receipt(user.id, paid.reference).id == paid.id
    assert owned_receipt(UserFactory().id, paid.reference) is None
    assert owned_receipt(user.id, declined.reference) is None


def test_pdf_holds_everything_the_receipt_promises_in_greek(citizen) -> None:
    user, debtor = citizen
    water = AgencyFactory(name_el="ΔΕΥΑ Ανατολικής Ακτής", name_en="East Coast Water")
    town = AgencyFactory(name_el="Δήμος Ορεινής Κοιλάδας", name_en="Mountain Valley")
    # Due 31 January and paid in March: the water bill carries a surcharge, the property fee none.
    late = DebtFactory(debtor=debtor, agency=water, description="Λογαριασμός νερού 2025/4", principal_minor=10000)
    on_time = DebtFactory(
        debtor=debtor, agency=town, description="Τέλος ακινήτου 2026", principal_minor=4550, due_date=date(2026, 6, 30)
    )
    paid_at = datetime(2026, 3, 1, 22, 30, tzinfo=UTC)
    with time_machine.travel(paid_at, tick=False):  # the receipt's time is the confirmation's
        payment = pay(user, [late, on_time], now=paid_at)
    lines = {line.debt_id: line for line in payment.lines}
    assert lines[late.id].surcharge_minor > 0 and lines[on_time.id].surcharge_minor == 0

    document = receipt_pdf(payment, compress=False)

    assert document.startswith(b"%PDF-")
    text = pdf_text(document)
    for expected in (
        "ΔΕΥΑ Ανατολικής Ακτής",
        "Δήμος Ορεινής Κοιλάδας",
        "Μαρία Παπαδοπούλου",
        "Λογαριασμός νερού 2025/4",
        payment.reference,
        payment.provider_reference,
        "100,00 €",  # the owner's language (Greek), though the request is not
        f"{lines[late.id].surcharge_minor // 100},{lines[late.id].surcharge_minor % 100:02d} €",
        f"{lines[late.id].amount_minor // 100},{lines[late.id].amount_minor % 100:02d} €",
        "45,50 €",
        f"{payment.amount_minor // 100},{payment.amount_minor % 100:02d} €",
        # 22:30 UTC on 1 March is already 2 March in Athens.
        "2 Μαρτίου 2026",
        "4242",
    ):
        assert expected in text, f"{expected!r} is missing from the PDF:\n{text}"
    assert "East Coast Water" not in text


def test_pdf_speaks_the_owners_language_when_it_is_english(citizen) -> None:
    user, debtor = citizen
    user.language = "en"
    agency = AgencyFactory(name_el="Δήμος Ανατολικής Ακτής", name_en="Municipality of East Coast")
    payment = pay(user, [DebtFactory(debtor=debtor, agency=agency, principal_minor=12000)])
    text = pdf_text(receipt_pdf(payment, compress=False))
    assert "Municipality of East Coast" in text and "€121.75" in text
    assert "Payment receipt" in text and "Δήμος" not in text


def _qr_matrix_of_pdf(document: bytes, modules: int) -> list[list[bool]]:
    """Read back the QR code's dark and light modules from the image embedded in the PDF."""
    image = PdfReader(io.BytesIO(document)).pages[0].images[0].image.convert("L")
    border = receipt_pdf_module.QR_BORDER
    size = image.width / (modules + 2 * border)

    def dark(row: int, col: int) -> bool:  # sampled at the centre of the module
        return image.getpixel((int((border + col + 0.5) * size), int((border + row + 0.5) * size))) < 128

    return [[dark(row, col) for col in range(modules)] for row in range(modules)]


def test_pdf_qr_code_encodes_the_verification_url(citizen, app_ctx: Flask) -> None:
    user, debtor = citizen
    payment = pay(user, [DebtFactory(debtor=debtor)])
    url = "http://localhost/receipts/verify/" + token_for(app_ctx, payment.reference)
    # segno encodes deterministically: the same URL at the same error level gives the same symbol.
    expected = [[bool(module) for module in row] for row in segno.make_qr(url, error="m").matrix]

    document = receipt_pdf(payment)

    assert _qr_matrix_of_pdf(document, len(expected)) == expected
    assert url in pdf_text(receipt_pdf(payment, compress=False)).replace("\n", "")


def test_missing_font_is_a_sentence_saying_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(receipt_pdf_module, "FONT_FOLDERS", (tmp_path,))
    monkeypatch.setattr(receipt_pdf_module.importlib.util, "find_spec", lambda name: None)
    receipt_pdf_module.find_receipt_font.cache_clear()
    try:
        with pytest.raises(receipt_pdf_module.ReceiptFontMissing, match="apt-get install fonts-dejavu-core"):
            receipt_pdf_module.find_receipt_font()
    finally:
        receipt_pdf_module.find_receipt_font.cache_clear()


def test_font_is_found_in_matplotlib_when_the_system_has_none(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fonts = tmp_path / "matplotlib" / "mpl-data" / "fonts" / "ttf"
    fonts.mkdir(parents=True)
    (fonts / "DejaVuSans.ttf").write_bytes(b"stand-in")
    spec = type("Spec", (), {"origin": str(tmp_path / "matplotlib" / "__init__.py")})()
    monkeypatch.setattr(receipt_pdf_module, "FONT_FOLDERS", (tmp_path / "nothing-here",))
    monkeypatch.setattr(receipt_pdf_module.importlib.util, "find_spec", lambda name: spec)
    receipt_pdf_module.find_receipt_font.cache_clear()
    try:
        found = receipt_pdf_module.find_receipt_font()
    finally:
        receipt_pdf_module.find_receipt_font.cache_clear()
    assert found.regular == fonts / "DejaVuSans.ttf" and found.bold == found.regular


# -- the history's filters ------------------------------------------------------------------------


def test_history_filters_by_year_in_the_agencys_time_zone(citizen) -> None:
    user, debtor = citizen
    old = pay(user, [DebtFactory(debtor=debtor)], now=datetime(2025, 6, 1, 9, tzinfo=UTC))
    # 23:30 UTC on New Year's Eve is 01:30 on 1 January 2026 in Athens: a 2026 payment.
    new_year = pay(user, [DebtFactory(debtor=debtor)], now=datetime(2025, 12, 31, 23, 30, tzinfo=UTC))
    recent = pay(user, [DebtFactory(debtor=debtor)])

    history = payment_history(user.id, year=2026)

    assert [payment.id for payment in history.payments] == [recent.id, new_year.id]
    assert history.years == [2026, 2025]
    assert [payment.id for payment in payment_history(user.id, year=2025).payments] == [old.id]


def test_history_filters_by_agency(citizen) -> None:
    user, debtor = citizen
    water, town = AgencyFactory(code="water"), AgencyFactory(code="town")
    both = pay(user, [DebtFactory(debtor=debtor, agency=water), DebtFactory(debtor=debtor, agency=town)])
    town_only = pay(user, [DebtFactory(debtor=debtor, agency=town)])
    declined = fail_to_pay(user, [DebtFactory(debtor=debtor, agency=water)])

    assert [payment.id for payment in payment_history(user.id, agency_code="water").payments] == [
        declined.id,
        both.id,
    ]
    assert {payment.id for payment in payment_history(user.id, agency_code="town").payments} == {
        both.id,
        town_only.id,
    }
    assert [payment.id for payment in payment_history(user.id, year=2026, agency_code="water").payments] == [
        declined.id,
        both.id,
    ]


def test_history_offers_only_the_users_own_agencies_and_years(citizen) -> None:
    user, debtor = citizen
    mine = AgencyFactory(code="mine")
    pay(user, [DebtFactory(debtor=debtor, agency=mine)])
    neighbour, their_debtor = UserFactory(), DebtorFactory()
    link(neighbour, their_debtor)
    theirs = AgencyFactory(code="theirs")
    their_payment = pay(
        neighbour, [DebtFactory(debtor=their_debtor, agency=theirs)], now=datetime(2024, 5, 1, tzinfo=UTC)
    )

    history = payment_history(user.id)

    assert [agency.code for agency in history.agencies] == ["mine"]
    assert history.years == [2026]
    assert their_payment.id not in {payment.id for payment in history.payments}
    # Someone else's agency or a year without payments is not a filter: the whole list shows.
    ignored = payment_history(user.id, year=2024, agency_code="theirs")
    assert (ignored.year, ignored.agency, len(ignored.payments)) == (None, None, 1)


def test_the_shipped_font_is_used_first_so_receipts_need_nothing_installed() -> None:
    from app.receipts import pdf as receipt_pdf_module

    receipt_pdf_module.find_receipt_font.cache_clear()
    try:
        font = receipt_pdf_module.find_receipt_font()
    finally:
        receipt_pdf_module.find_receipt_font.cache_clear()
    shipped = Path(receipt_pdf_module.__file__).resolve().parent / "fonts"
    assert (font.regular, font.bold) == (shipped / "DejaVuSans.ttf", shipped / "DejaVuSans-Bold.ttf")
