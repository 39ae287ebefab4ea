"""Receipts in a real browser: the PDF downloads, the QR code's page verifies, the history filters."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from erp_connectors.demo import DEMO_AGENCIES
from tests.e2e.steps import (
    CARD_SUCCEEDS,
    MARIA,
    Snap,
    assert_accessible,
    choose_language,
    fill_card,
    log_in,
    tick_first_debt,
)

# Marked e2e by tests/e2e/conftest.py, like every test in this folder.
pytestmark = pytest.mark.usefixtures("demo_data")

RECEIPT_URL = re.compile(r"/payments/([^/]+)$")
#: Maria's name as the demo ERP and her account hold it; the public page must never show it.
MARIA_NAME = "Μαρία Παπαδοπούλου"


def pay_debts_of(page: Page, agency_names: list[str]) -> str:
    """Maria pays the first debt of each agency by a card that succeeds; returns the receipt number."""
    for name in agency_names:
        tick_first_debt(page, name)
    page.get_by_role("button", name="Review payment").click()
    fill_card(page, CARD_SUCCEEDS)
    page.get_by_role("button", name="Pay now").click()
    expect(page).to_have_url(RECEIPT_URL)
    return RECEIPT_URL.search(page.url).group(1)


def test_receipt_pdf_downloads_and_its_qr_code_leads_to_the_verification_page(
    page: Page, open_page: Callable[..., Page], snap: Snap
) -> None:
    """Maria downloads her PDF; a stranger who follows the receipt's link sees it verified, nameless."""
    log_in(page, *MARIA)
    choose_language(page, "English", "en")
    reference = pay_debts_of(page, [DEMO_AGENCIES[0].name_en, DEMO_AGENCIES[1].name_en])

    qr_code = page.get_by_role("img", name="QR code of the verification page of this receipt")
    expect(qr_code).to_be_visible()
    assert_accessible(page)
    snap(page, "01-receipt")

    pdf_link = page.get_by_role("link", name="Download the receipt as PDF")
    response = page.request.get(pdf_link.get_attribute("href"))
    assert response.status == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.body().startswith(b"%PDF-")
    with page.expect_download() as download_info:
        pdf_link.click()
    download = download_info.value
    assert download.suggested_filename == f"receipt-{reference}.pdf"
    with open(download.path(), "rb") as pdf:
        assert pdf.read(5) == b"%PDF-"

    verification_url = page.get_by_role("link", name="Verification page of this receipt").get_attribute("href")
    assert verification_url and f"/receipts/verify/{reference}." in verification_url

    stranger = open_page()  # a new browser context: not logged in, as whoever scans the code
    response = stranger.goto(verification_url)
    assert response is not None and response.status == 200
    expect(stranger.get_by_role("heading", level=1)).to_have_text(f"Receipt {reference}")
    expect(stranger.get_by_test_id("payment-status")).to_have_text("Paid")
    lines = stranger.get_by_role("table", name="What was paid").locator("tbody tr")
    expect(lines).to_have_count(2)
    expect(lines.first).to_contain_text(DEMO_AGENCIES[0].name_en)
    expect(stranger.locator("body")).not_to_contain_text(MARIA_NAME)
    expect(stranger.locator("body")).not_to_contain_text("Maria")
    assert_accessible(stranger)
    snap(stranger, "02-verification")


def test_a_forged_verification_link_is_a_plain_not_found_page(page: Page, snap: Snap) -> None:
    """A mistyped or forged link says in a sentence that the receipt could not be verified."""
    response = page.goto("/receipts/verify/CP-AAAA-BBBB-CC.0123456789abcdefghijklmnopqrstuv")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("This receipt could not be verified.")
    assert_accessible(page)
    snap(page, "forged")


def test_history_filters_by_agency_without_javascript(open_page: Callable[..., Page], snap: Snap) -> None:
    """The history's filter form is a plain GET form: it works with JavaScript switched off."""
    page = open_page(java_script_enabled=False)
    log_in(page, *MARIA)
    choose_language(page, "English", "en")
    first = pay_debts_of(page, [DEMO_AGENCIES[0].name_en])
    page.goto("/debts")
    second = pay_debts_of(page, [DEMO_AGENCIES[1].name_en])

    page.goto("/payments")
    agency_filter = page.get_by_label("Agency")
    expect(agency_filter.locator("option")).to_have_count(3)  # all agencies, and Maria's two
    agency_filter.select_option(label=DEMO_AGENCIES[1].name_en)
    page.get_by_role("button", name="Show", exact=True).click()

    expect(page).to_have_url(re.compile(rf"/payments\?year=&agency={DEMO_AGENCIES[1].code}$"))
    expect(page.get_by_role("link", name=second, exact=True)).to_be_visible()
    expect(page.get_by_role("link", name=first, exact=True)).to_have_count(0)
    snap(page, "history-filtered")

    # axe-core is JavaScript: check the same page, as the same citizen, in a context that runs it.
    checker = open_page()
    checker.context.add_cookies(page.context.cookies())
    checker.goto(page.url)
    expect(checker.get_by_role("heading", level=1)).to_have_text("My payments")
    assert_accessible(checker)
