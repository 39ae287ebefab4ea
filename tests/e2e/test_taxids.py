"""Adding a tax ID in a real browser: claim maria's AFM from a new account, prove it with the
code e-mailed to the address the demo ERP holds, and see her debts on the dashboard."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from erp_connectors.demo import DEMO_AGENCIES, MARIA_TAX_ID
from tests.e2e.steps import Snap, assert_accessible, log_in
from tests.factories import PASSWORD, UserFactory
from tests.helpers import code_in
from tests.mail.smtp import SMTPServer

# Marked e2e by tests/e2e/conftest.py, like every test in this folder.
pytestmark = pytest.mark.usefixtures("demo_data", "fresh_rate_limits")

PROVE_URL = re.compile(r"/tax-ids/(\d+)$")
CODE_URL = re.compile(r"/tax-ids/\d+/code$")
NOTICE_URL = re.compile(r"/tax-ids/\d+/notice$")


def new_account(app: Flask) -> str:
    """A fresh account with no tax ID (not one of the demo citizens); its e-mail address."""
    with app.app_context():
        return UserFactory(full_name="Nikos Papadopoulos", language="en").email


def test_claim_maria_s_afm_prove_it_by_e_mail_and_see_her_debts(
    app: Flask, page: Page, mailbox: SMTPServer, snap: Snap
) -> None:
    log_in(page, new_account(app), PASSWORD)
    expect(page.get_by_text("Your account has no proven tax ID yet")).to_be_visible()
    expect(page.get_by_role("region", name=DEMO_AGENCIES[0].name_en)).to_have_count(0)
    page.get_by_role("link", name="Add a tax ID").click()

    # /tax-ids, first with a typing mistake in the AFM.
    expect(page.get_by_role("heading", level=1)).to_have_text("My tax IDs")
    expect(page.get_by_label("Country that issued the tax ID")).to_have_value("GR")
    page.get_by_label("Tax ID number").fill(MARIA_TAX_ID[:-1] + "7")
    page.get_by_role("button", name="Add tax ID").click()
    number = page.get_by_label("Tax ID number")
    expect(number).to_have_attribute("aria-invalid", "true")
    expect(number).to_have_accessible_description(re.compile("its check digit does not match"))
    assert_accessible(page)
    snap(page, "01-invalid-afm")

    number.fill(MARIA_TAX_ID)
    page.get_by_role("button", name="Add tax ID").click()
    expect(page).to_have_url(PROVE_URL)
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Prove AFM {MARIA_TAX_ID}")
    # The demo ERP holds maria's e-mail and phone: both offered, both masked.
    email_choice = page.get_by_role("radio", name="By e-mail to m•••@example.org")
    expect(email_choice).to_be_visible()
    expect(page.get_by_role("radio", name="By text message to +30 69•• •••101")).to_be_visible()
    expect(page.get_by_text("maria@example.org")).to_have_count(0)
    assert_accessible(page)
    snap(page, "02-prove")

    email_choice.check()
    page.get_by_role("button", name="Send me a code").click()
    expect(page).to_have_url(CODE_URL)
    expect(page.get_by_role("status")).to_contain_text("We have sent an e-mail with a code to m•••@example.org.")
    assert_accessible(page)
    snap(page, "03-code")
    mailbox.wait_for(1)
    code = code_in(mailbox.only("maria@example.org").text)

    # The notice page, sent empty: each error tied to its field.
    page.get_by_role("link", name="Prove with a payment notice instead").click()
    expect(page).to_have_url(NOTICE_URL)
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_label("Payment code (RF)")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Amount of the notice")).to_have_attribute("aria-invalid", "true")
    assert_accessible(page)
    snap(page, "04-notice-errors")

    page.go_back()
    page.go_back()
    expect(page).to_have_url(CODE_URL)
    page.get_by_label("The 6-digit code").fill(code)
    page.get_by_role("button", name="Confirm").click()

    expect(page).to_have_url(re.compile(r"/debts$"))
    expect(page.get_by_role("status")).to_contain_text(f"AFM {MARIA_TAX_ID} is proven")
    for agency in DEMO_AGENCIES:
        expect(page.get_by_role("region", name=agency.name_en, exact=True)).to_be_visible()
    expect(page.get_by_text("ΤΑΠ, οδός Αιγαίου 14", exact=True)).to_be_visible()
    snap(page, "05-dashboard")

    page.get_by_role("navigation", name="Main menu").get_by_role("link", name="My tax IDs").click()
    expect(page.get_by_role("table", name="Tax IDs on this account")).to_contain_text("Proven on")
    assert_accessible(page)
    snap(page, "06-list")
