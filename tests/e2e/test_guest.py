"""A driver with a parking fine pays it without an account: code + plate → pay → receipt."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.debts.models import Debt, Debtor
from app.domain.references import format_rf
from app.extensions import db
from erp_connectors.demo import MARIA_TAX_ID
from tests.e2e.steps import CARD_SUCCEEDS, Snap, assert_accessible, fill_card, parse_money

# Marked e2e by tests/e2e/conftest.py, like every test in this folder.
pytestmark = pytest.mark.usefixtures("demo_data")

REVIEW_URL = re.compile(r"/pay/review/[A-Za-z0-9_-]+$")
RECEIPT_URL = re.compile(r"/pay/receipt/(CP-[0-9A-Z-]+)$")
#: Maria's name and tax ID as the demo ERP holds them; a guest's pages must show neither.
MARIA_NAME = "Μαρία Παπαδοπούλου"


@pytest.fixture()
def parking_fine(app: Flask) -> tuple[str, str]:
    """The RF code and description of Maria's parking fine (plate ΙΚΑ 1234), as on her notice."""
    with app.app_context():
        debt = db.session.scalars(
            select(Debt)
            .join(Debtor, Debt.debtor_id == Debtor.id)
            .where(Debtor.tax_id == MARIA_TAX_ID, Debt.vehicle_plate == "ΙΚΑ 1234")
        ).one()
        return format_rf(debt.rf_reference), debt.description


def pay_fine_as_guest(page: Page, code: str, plate: str, check: Callable[[Page, str], None]) -> str:
    """The three screens, calling ``check(page, step)`` on each; returns the receipt number."""
    page.goto("/pay")
    screens = [page.url]
    page.get_by_label("Payment code").fill(code)
    page.get_by_label("Check detail").fill(plate)
    check(page, "01-code")
    page.get_by_role("button", name="Continue").click()

    expect(page).to_have_url(REVIEW_URL)
    screens.append(page.url)
    check(page, "02-review")
    fill_card(page, CARD_SUCCEEDS, holder="A Driver")
    page.get_by_role("button", name="Pay now").click()

    expect(page).to_have_url(RECEIPT_URL)
    screens.append(page.url)
    expect(page.get_by_test_id("payment-status")).to_have_text("Paid")
    check(page, "03-receipt")
    assert len(screens) == 3
    return RECEIPT_URL.search(page.url).group(1)


def test_a_fine_is_paid_by_code_and_plate_in_three_accessible_screens(
    page: Page, parking_fine: tuple[str, str], snap: Snap
) -> None:
    code, description = parking_fine
    totals: list[int] = []

    def check(current: Page, step: str) -> None:
        assert_accessible(current)
        body = current.locator("body")
        expect(body).not_to_contain_text(MARIA_NAME)
        expect(body).not_to_contain_text(MARIA_TAX_ID)
        if step == "02-review":
            expect(body).to_contain_text(description)
            expect(body).to_contain_text("Traffic fine")
            totals.append(parse_money(current.get_by_test_id("quote-total").inner_text()))
        if step == "03-receipt":
            totals.append(parse_money(current.get_by_test_id("payment-total").inner_text()))
        snap(current, step)

    # Typed as a driver would: Latin letters and a dash for the Greek plate ΙΚΑ 1234.
    reference = pay_fine_as_guest(page, code.lower(), "ika-1234", check)
    assert totals == [8000, 8000]
    response = page.request.get(page.get_by_role("link", name="Download the receipt as PDF").get_attribute("href"))
    assert response.status == 200 and response.body().startswith(b"%PDF-")
    assert reference in page.title()


def test_a_fine_is_paid_as_a_guest_without_javascript(
    open_page: Callable[..., Page], parking_fine: tuple[str, str], snap: Snap
) -> None:
    page = open_page(java_script_enabled=False)
    code, _description = parking_fine
    pay_fine_as_guest(page, code, "ΙΚΑ 1234", lambda current, step: snap(current, step))
