"""A refund in a real browser: the agency's administrator (who holds the refund role) signs in with
TOTP, refunds part of a payment, and sees the refundable amount go down; a second refund from a
page drawn before the first is refused. Every page is checked with axe-core."""

from __future__ import annotations

import re
from collections.abc import Callable

import pyotp
import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.accounts.models import User
from app.agencies.models import Agency
from app.debts.models import Debt
from app.encryption import decrypt_secret
from app.extensions import db
from app.payments.models import Refund
from erp_connectors.demo import DEMO_AGENCIES
from tests.e2e.steps import Snap, assert_accessible, choose_language, log_in
from tests.factories import paid_payment

pytestmark = pytest.mark.usefixtures("demo_data")

AGENCY = DEMO_AGENCIES[0]
ADMIN = (f"treasury-{AGENCY.code}@example.org", "demo-treasury-2026")


@pytest.fixture()
def payment(app: Flask) -> dict:
    with app.app_context():
        agency = db.session.scalar(select(Agency).where(Agency.code == AGENCY.code))
        debt = db.session.scalars(select(Debt).where(Debt.agency_id == agency.id).order_by(Debt.id)).first()
        paid = paid_payment((debt, 4250, 31))  # €42.81
        admin = db.session.scalar(select(User).where(User.email == ADMIN[0]))
        return {"reference": paid.reference, "secret": decrypt_secret(admin.totp_secret)}


def test_a_partial_refund_lowers_what_is_refundable_and_a_stale_page_cannot_refund_again(
    open_page: Callable[..., Page], payment: dict, app: Flask, snap: Snap
) -> None:
    page = open_page()
    log_in(page, *ADMIN)
    choose_language(page, "English", "en")
    page.goto("/treasury")
    page.get_by_label("Code").fill(pyotp.TOTP(payment["secret"]).now())
    page.get_by_role("button", name="Continue").click()
    page.goto(f"/treasury/{AGENCY.code}/payments/{payment['reference']}")
    expect(page.get_by_test_id("refundable")).to_have_text("€42.81")
    assert_accessible(page)
    snap(page, "01-payment")

    stale = open_page()  # the same staff member's second tab, drawn before the refund
    stale.context.add_cookies(page.context.cookies())
    stale.goto(f"/treasury/{AGENCY.code}/payments/{payment['reference']}")
    expect(stale.get_by_test_id("refundable")).to_have_text("€42.81")

    page.get_by_label("Amount to refund").fill("12.81")
    page.get_by_label("Reason (the citizen sees it)").fill("Surcharge charged by mistake")
    page.get_by_role("button", name="Refund", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Refunded €12.81")
    expect(page.get_by_test_id("refundable")).to_have_text("€30.00")
    expect(page.get_by_test_id("refunds")).to_contain_text("Surcharge charged by mistake")
    expect(page.get_by_test_id("payment-status")).to_have_text("Partially refunded")
    assert_accessible(page)
    snap(page, "02-refunded")

    stale.get_by_label("Amount to refund").fill("42.81")
    stale.get_by_label("Reason (the citizen sees it)").fill("Double click")
    stale.get_by_role("button", name="Refund", exact=True).click()
    expect(stale.get_by_role("alert").or_(stale.get_by_role("status"))).to_contain_text(
        re.compile("The refundable amount changed while you were on this page")
    )
    expect(stale.get_by_test_id("refundable")).to_have_text("€30.00")
    assert_accessible(stale)
    snap(stale, "03-stale-refused")
    with app.app_context():
        assert [refund.amount_minor for refund in db.session.scalars(select(Refund))] == [1281]
