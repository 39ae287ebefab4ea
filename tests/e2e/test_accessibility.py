"""axe-core finds no accessibility violation on the portal's pages, including their error states."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from erp_connectors.demo import DEMO_AGENCIES
from tests.e2e.steps import (
    MARIA,
    Snap,
    assert_accessible,
    choose_language,
    fill_card,
    log_in,
    tick_first_debt,
)


def test_home_page_logged_out(page: Page, snap: Snap) -> None:
    """The front page a visitor lands on."""
    page.goto("/")
    expect(page.get_by_role("link", name="Log in to see your debts")).to_be_visible()
    assert_accessible(page)
    snap(page, "home")


def test_login_page_with_errors(page: Page, snap: Snap) -> None:
    """The log-in form sent empty: each error is shown and tied to its field."""
    page.goto("/login")
    page.get_by_role("button", name="Log in", exact=True).click()
    email = page.get_by_label("E-mail address")
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(email).to_have_accessible_description("Enter your e-mail address.")
    expect(page.get_by_label("Password")).to_have_accessible_description("Enter your password.")
    assert_accessible(page)
    snap(page, "login-errors")


def test_not_found_page(page: Page, snap: Snap) -> None:
    """The 404 page speaks plainly and leads back home."""
    response = page.goto("/no-such-page")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "We could not find this page. It may have moved, or the link may be wrong."
    )
    assert_accessible(page)
    snap(page, "not-found")


@pytest.mark.usefixtures("demo_data")
def test_dashboard(page: Page, snap: Snap) -> None:
    """The dashboard of debts, in English."""
    log_in(page, *MARIA)
    choose_language(page, "English", "en")
    assert_accessible(page)
    snap(page, "dashboard")


@pytest.mark.usefixtures("demo_data")
def test_dashboard_on_a_phone(open_page: Callable[..., Page], snap: Snap) -> None:
    """The dashboard on a narrow phone screen, where its tables stack."""
    page = open_page(viewport={"width": 375, "height": 700}, is_mobile=True, has_touch=True)
    log_in(page, *MARIA)
    choose_language(page, "English", "en")
    assert_accessible(page)
    snap(page, "dashboard-phone")


@pytest.mark.usefixtures("demo_data")
def test_review_page_with_a_card_error(page: Page, snap: Snap) -> None:
    """The review page after a card number with a typing mistake: the error is tied to its field."""
    log_in(page, *MARIA)
    choose_language(page, "English", "en")
    tick_first_debt(page, DEMO_AGENCIES[0].name_en)
    page.get_by_role("button", name="Review payment").click()
    expect(page).to_have_url(re.compile(r"/checkout/[^/]+$"))
    fill_card(page, "1234")
    page.get_by_role("button", name="Pay now").click()

    number = page.get_by_label("Card number")
    expect(number).to_have_attribute("aria-invalid", "true")
    expect(number).to_have_accessible_description("This card number is not valid. Check it and try again.")
    assert_accessible(page)
    snap(page, "review-card-error")
