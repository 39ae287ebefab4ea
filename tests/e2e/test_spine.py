"""The portal's spine in a real browser: log in, select debts, review the quote, pay, see the receipt."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from erp_connectors.demo import DEMO_AGENCIES
from tests.e2e.steps import (
    CARD_DECLINED,
    CARD_SUCCEEDS,
    DECLINE_MESSAGE,
    JOHN,
    MARIA,
    Snap,
    assert_accessible,
    choose_language,
    debt_checkbox,
    fill_card,
    log_in,
    parse_money,
    tick_first_debt,
)

# Marked e2e by tests/e2e/conftest.py, like every test in this folder.
pytestmark = pytest.mark.usefixtures("demo_data")

AGENCY_NAMES_EN = [agency.name_en for agency in DEMO_AGENCIES]
REVIEW_URL = re.compile(r"/checkout/[^/]+$")
RECEIPT_URL = re.compile(r"/payments/([^/]+)$")


def main_menu_link(page: Page, name: str) -> Any:
    """A link of the header's main menu."""
    return page.get_by_role("navigation", name="Main menu").get_by_role("link", name=name, exact=True)


def review_lines(page: Page) -> list[dict[str, Any]]:
    """The review page's lines as shown: agency, debt text and the three amounts in cents."""
    rows = page.get_by_role("table", name="What you are paying").locator("tbody tr")
    lines = []
    for row in rows.all():
        cells = [text.strip() for text in row.get_by_role("cell").all_inner_texts()]
        agency, debt, amount, surcharge, total = cells
        lines.append(
            {
                "agency": agency,
                "debt": debt,
                "amount": parse_money(amount),
                "surcharge": parse_money(surcharge),
                "total": parse_money(total),
            }
        )
    return lines


def test_pay_two_agencies_debts_by_card(page: Page, snap: Snap) -> None:
    """Maria pays one debt of each of two agencies at once and finds the receipt in her payments."""
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Pay your municipal debts online")
    assert_accessible(page)
    snap(page, "01-home")

    main_menu_link(page, "Log in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Log in")
    assert_accessible(page)
    snap(page, "02-login")

    log_in(page, *MARIA)
    # Maria's account speaks Greek: switch to English as a visitor would, with the header button.
    choose_language(page, "English", "en")
    expect(page.get_by_role("heading", level=1)).to_have_text("My debts")
    headings = [name.strip() for name in page.get_by_role("heading", level=2).all_inner_texts()]
    agency_headings = [name for name in headings if name in AGENCY_NAMES_EN]
    assert len(agency_headings) >= 2, f"debts are not grouped by agency; the h2 headings are {headings}"
    assert_accessible(page)
    snap(page, "03-dashboard")

    first_agency, second_agency = agency_headings[:2]
    chosen = [tick_first_debt(page, first_agency), tick_first_debt(page, second_agency)]
    snap(page, "04-selected")
    page.get_by_role("button", name="Review payment").click()

    expect(page).to_have_url(REVIEW_URL)
    expect(page.get_by_role("heading", level=1)).to_have_text("Review and pay")
    lines = review_lines(page)
    assert [line["agency"] for line in lines] == [first_agency, second_agency]
    for line in lines:
        assert line["total"] == line["amount"] + line["surcharge"], line
    total = parse_money(page.get_by_test_id("quote-total").inner_text())
    assert total == sum(line["total"] for line in lines) > 0
    assert_accessible(page)
    snap(page, "05-review")

    fill_card(page, CARD_SUCCEEDS)
    page.get_by_role("button", name="Pay now").click()

    expect(page).to_have_url(RECEIPT_URL)
    expect(page.get_by_test_id("payment-status")).to_have_text("Paid")
    expect(page.get_by_role("status")).to_have_text("Payment successful. Thank you! Your receipt is below.")
    reference = RECEIPT_URL.search(page.url).group(1)
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Receipt {reference}")
    assert_accessible(page)
    snap(page, "06-receipt")

    main_menu_link(page, "My payments").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("My payments")
    receipt_link = page.get_by_role("link", name=reference, exact=True)
    expect(receipt_link).to_be_visible()
    row = page.get_by_role("row").filter(has=receipt_link)
    expect(row.get_by_role("cell").nth(3)).to_have_text("Paid")
    assert parse_money(row.get_by_role("cell").nth(4).inner_text()) == total
    assert_accessible(page)
    snap(page, "07-history")

    main_menu_link(page, "My debts").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("My debts")
    for key in chosen:
        expect(debt_checkbox(page, key)).to_have_count(0)
    snap(page, "08-dashboard-after")


def test_declined_card_charges_nothing_and_keeps_the_debt(page: Page, snap: Snap) -> None:
    """A declined card leaves Maria on the review page with the bank's answer and her debt still open."""
    log_in(page, *MARIA)
    choose_language(page, "English", "en")
    key = tick_first_debt(page, AGENCY_NAMES_EN[0])
    page.get_by_role("button", name="Review payment").click()
    expect(page).to_have_url(REVIEW_URL)
    review_url = page.url

    fill_card(page, CARD_DECLINED)
    page.get_by_role("button", name="Pay now").click()

    expect(page.get_by_role("alert")).to_have_text(DECLINE_MESSAGE)
    expect(page).to_have_url(re.compile(re.escape(review_url) + r"(/pay)?$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Review and pay")
    expect(page.get_by_role("button", name="Pay now")).to_be_visible()
    # The card number is never echoed back into the form.
    expect(page.get_by_label("Card number")).to_have_value("")
    assert_accessible(page)
    snap(page, "01-declined")

    main_menu_link(page, "My debts").click()
    expect(debt_checkbox(page, key)).to_be_enabled()
    snap(page, "02-dashboard-after")


def test_paying_works_without_javascript(open_page: Callable[..., Page], snap: Snap) -> None:
    """Log in, select, pay and see the receipt with JavaScript switched off: plain HTML forms only."""
    page = open_page(java_script_enabled=False)
    log_in(page, *JOHN)
    expect(page.locator("html")).to_have_attribute("lang", "en")  # John's account speaks English
    tick_first_debt(page, AGENCY_NAMES_EN[1])
    page.get_by_role("button", name="Review payment").click()
    expect(page).to_have_url(REVIEW_URL)
    snap(page, "01-review")

    fill_card(page, CARD_SUCCEEDS, holder="John Smith")
    page.get_by_role("button", name="Pay now").click()

    expect(page).to_have_url(RECEIPT_URL)
    expect(page.get_by_test_id("payment-status")).to_have_text("Paid")
    snap(page, "02-receipt")


def test_greek_switch_sets_lang_and_money_format(page: Page, snap: Snap) -> None:
    """Pressing Ελληνικά marks the page as Greek and writes amounts the Greek way (12,34 €)."""
    log_in(page, *MARIA)
    choose_language(page, "English", "en")
    total_due = page.get_by_test_id("total-due")
    expect(total_due).to_have_text(re.compile(r"^€\d{1,3}(,\d{3})*\.\d{2}$"))
    english_total = parse_money(total_due.inner_text())

    choose_language(page, "Ελληνικά", "el")
    expect(total_due).to_have_text(re.compile(r"^\d{1,3}(\.\d{3})*,\d{2}\s€$"))
    assert parse_money(total_due.inner_text()) == english_total
    expect(page.get_by_role("button", name="Ελληνικά")).to_have_attribute("aria-current", "true")
    assert_accessible(page)
    snap(page, "01-dashboard-greek")
