"""Paying by card with Stripe in a real browser: localstripe serves the Stripe API and Stripe.js.

The acceptance path of a new citizen: register, confirm by the e-mailed link, prove the tax ID by
the e-mailed code, pick debts of two agencies, pay with one card entry, get the receipt. Then
3-D Secure passed and failed, and a declined card followed by a retry that succeeds. Webhooks
from localstripe reach the live server; every page is checked with axe-core.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import pytest
import requests
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.extensions import db
from app.payments.models import ProviderEvent
from erp_connectors.demo import DEMO_AGENCIES, MARIA_TAX_ID
from tests.e2e.steps import (
    MARIA,
    Snap,
    assert_accessible,
    choose_language,
    emailed_link,
    log_in,
    register,
    tick_first_debt,
)
from tests.helpers import code_in
from tests.mail.smtp import SMTPServer
from tests.stripe_server import SECRET_KEY, WEBHOOK_SECRET, stripe_event_ids

REVIEW_URL = re.compile(r"/checkout/[\w-]+$")
RECEIPT_URL = re.compile(r"/payments/(CP-[\w-]+)$")
AGENCY_NAMES = [agency.name_en for agency in DEMO_AGENCIES]
PASSWORD = "tulip orbit canoe lantern"
#: Where webhooks go between tests: nobody listens on port 9 (discard).
CLOSED_PORT = "http://127.0.0.1:9/closed"


class StripeWebhooks:
    """localstripe's webhooks for one test: where they go, and waiting until the portal has them.

    localstripe sends each event a second after it happens, to every endpoint configured then,
    and the portal records each event it processed (a ProviderEvent row).
    """

    def __init__(self, app: Flask, localstripe_url: str) -> None:
        self.app = app
        self.localstripe_url = localstripe_url
        self.before = stripe_event_ids(localstripe_url)  # earlier tests' events are not ours

    def point_at(self, endpoint: Callable[[str], str]) -> None:
        """From now on, localstripe sends every agency's events to ``endpoint(agency_code)``."""
        for agency in DEMO_AGENCIES:
            requests.post(
                f"{self.localstripe_url}/_config/webhooks/civicpay-{agency.code}",
                data={"url": endpoint(agency.code), "secret": WEBHOOK_SECRET},
                auth=(SECRET_KEY, ""),
                timeout=5,
            ).raise_for_status()

    def wait_until_processed(self, timeout: float = 20) -> None:
        """Wait until the portal processed every event of this test so far (and those they caused)."""
        deadline = time.monotonic() + timeout
        while True:
            new = stripe_event_ids(self.localstripe_url) - self.before
            with db.engine_of(self.app).connect() as connection:
                processed = set(connection.scalars(select(ProviderEvent.id).where(ProviderEvent.id.in_(new))))
            if new <= processed:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"localstripe's events {sorted(new - processed)} were not processed in {timeout} s")
            time.sleep(0.05)


@pytest.fixture()
def stripe_webhooks(
    stripe_app: Flask, localstripe_url: str, live_server: str, demo_data: None
) -> Iterator[StripeWebhooks]:
    """localstripe's webhooks pointed at the live server during the test.

    The test ends only once every event it caused has been processed, so that none reaches the
    next test's server; the endpoints then point at a closed port, and the live server waits for
    the deliveries still in flight (tests/e2e/conftest.py).
    """
    webhooks = StripeWebhooks(stripe_app, localstripe_url)
    webhooks.point_at(lambda code: f"{live_server}/webhooks/stripe/{code}")
    yield webhooks
    try:
        webhooks.wait_until_processed()
    finally:
        webhooks.point_at(lambda code: CLOSED_PORT)


@pytest.fixture()
def stripe_live(live_server: str, stripe_webhooks: StripeWebhooks) -> str:
    """The live server on the Stripe provider, localstripe's webhooks pointed at it."""
    return live_server


def select_two_agencies(page: Page) -> None:
    """Tick the first debt of the first two agencies and open the review page."""
    # Read the headings only once the dashboard has loaded (all_inner_texts does not wait).
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile("^(My debts|Οι οφειλές μου)$"))
    headings = [name.strip() for name in page.get_by_role("heading", level=2).all_inner_texts()]
    agencies = [name for name in headings if name in AGENCY_NAMES][:2]
    assert len(agencies) == 2, headings
    for agency in agencies:
        tick_first_debt(page, agency)
    page.get_by_role("button", name="Review payment").click()
    expect(page).to_have_url(REVIEW_URL)


def enter_card(page: Page, number: str) -> None:
    """Type the card into the Stripe card element (labelled by our page) and press Pay."""
    page.get_by_label("Card number").fill(number.replace(" ", ""))
    page.get_by_label("Expiry month (MM)").fill("12")
    page.get_by_label("Expiry year (YY)").fill("30")
    page.get_by_label("Security code (CVC)").fill("123")
    page.get_by_label("Postal code").fill("10431")
    page.get_by_role("button", name=re.compile(r"^Pay ")).click()


def answer_3ds(page: Page, *, passed: bool) -> None:
    """The bank's 3-D Secure dialog (drawn by localstripe's Stripe.js)."""
    page.get_by_role("button", name="Complete authentication" if passed else "Fail authentication").click()


def log_in_as_maria(page: Page) -> None:
    log_in(page, *MARIA)
    choose_language(page, "English", "en")


def test_new_citizen_registers_proves_the_tax_id_and_pays_two_agencies_with_one_card_entry(
    app: Flask, page: Page, mailbox: SMTPServer, snap: Snap, stripe_live: str
) -> None:
    page.goto("/register")
    register(page, "nikos@example.org", name="Nikos Papadopoulos")
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your e-mail")
    page.goto(emailed_link(mailbox, "nikos@example.org", "/verify/"))
    log_in(page, "nikos@example.org", PASSWORD)
    snap(page, "01-no-tax-id")

    page.get_by_role("link", name="Add a tax ID").click()
    page.get_by_label("Tax ID number").fill(MARIA_TAX_ID)
    page.get_by_role("button", name="Add tax ID").click()
    page.get_by_role("radio", name=re.compile("^By e-mail to")).check()
    mailbox.clear()
    page.get_by_role("button", name="Send me a code").click()
    mailbox.wait_for(1)
    page.get_by_label("The 6-digit code").fill(code_in(mailbox.only("maria@example.org").text))
    page.get_by_role("button", name="Confirm").click()
    expect(page).to_have_url(re.compile(r"/debts$"))
    snap(page, "02-dashboard")

    select_two_agencies(page)
    expect(page.get_by_text("Your card details are sent directly to Stripe")).to_be_visible()
    assert_accessible(page)
    snap(page, "03-review-stripe")
    enter_card(page, "4242 4242 4242 4242")

    expect(page).to_have_url(RECEIPT_URL)
    expect(page.get_by_test_id("payment-status")).to_have_text("Paid")
    expect(page.get_by_role("status")).to_have_text("Payment successful. Thank you! Your receipt is below.")
    expect(page.get_by_text("4242")).to_be_visible()
    assert_accessible(page)
    snap(page, "04-receipt")


def test_three_d_secure_passed_then_one_failed(
    page: Page, snap: Snap, stripe_live: str, stripe_webhooks: StripeWebhooks
) -> None:
    log_in_as_maria(page)
    select_two_agencies(page)
    enter_card(page, "4000 0027 6000 3184")
    answer_3ds(page, passed=True)  # saving the card
    answer_3ds(page, passed=True)  # the first agency's charge
    answer_3ds(page, passed=True)  # the second agency's charge
    expect(page).to_have_url(RECEIPT_URL)
    expect(page.get_by_test_id("payment-status")).to_have_text("Paid")
    snap(page, "01-3ds-paid")
    # The first payment's webhooks arrive a second later. On SQLite their writes can make the
    # second checkout's request fail with "database is locked" (a transaction that read before
    # another connection committed cannot write), so the second payment starts once they are in.
    stripe_webhooks.wait_until_processed()

    page.goto("/debts")
    select_two_agencies(page)
    enter_card(page, "4000 0027 6000 3184")
    answer_3ds(page, passed=True)
    answer_3ds(page, passed=True)
    answer_3ds(page, passed=False)  # the card holder fails the bank's check on the second charge
    status = page.locator("#card-status")
    expect(status).to_have_text(re.compile("could not confirm that it is you"))
    expect(page).to_have_url(REVIEW_URL)
    expect(page.get_by_role("button", name=re.compile(r"^Pay "))).to_be_enabled()
    assert_accessible(page)
    snap(page, "02-3ds-failed")


def test_declined_card_then_a_retry_that_succeeds(
    page: Page, snap: Snap, stripe_live: str, stripe_webhooks: StripeWebhooks
) -> None:
    log_in_as_maria(page)
    select_two_agencies(page)
    enter_card(page, "4000 0000 0000 0341")
    expect(page.locator("#card-status")).to_have_text(
        "The card was declined by the bank. Nothing was charged. Try again or use another card."
    )
    assert_accessible(page)
    snap(page, "01-declined")
    stripe_webhooks.wait_until_processed()  # the decline's webhooks, before the retry (see the 3-D Secure test)

    page.get_by_label("Card number").fill("4242424242424242")
    page.get_by_role("button", name=re.compile(r"^Pay ")).click()
    expect(page).to_have_url(RECEIPT_URL)
    expect(page.get_by_test_id("payment-status")).to_have_text("Paid")
    snap(page, "02-paid")


def test_without_javascript_the_card_page_says_why_it_needs_it(open_page, snap: Snap, stripe_live: str) -> None:
    page = open_page(java_script_enabled=False)
    page.goto("/login")
    page.get_by_label("E-mail address").fill(MARIA[0])
    page.get_by_label("Password").fill(MARIA[1])
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page).to_have_url(re.compile(r"/debts$"))
    choose_language(page, "English", "en")
    select_two_agencies(page)
    expect(page.get_by_text("Paying by card needs JavaScript")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile(r"^Pay "))).to_be_hidden()
    # (axe-core is itself a script: the same page is checked with JavaScript on, above.)
    snap(page, "01-no-js")
