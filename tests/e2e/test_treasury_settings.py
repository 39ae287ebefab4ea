"""The agency settings, audit log, settlement and adoption pages in a real browser: an administrator
previews and saves a new surcharge rate, sees it in the audit log, and every page passes axe."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal

import pyotp
import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.accounts.models import User
from app.agencies.models import Agency
from app.encryption import decrypt_secret
from app.extensions import db
from erp_connectors.demo import DEMO_AGENCIES
from tests.e2e.steps import Snap, assert_accessible, choose_language, log_in

pytestmark = pytest.mark.usefixtures("demo_data")

AGENCY = DEMO_AGENCIES[0]
ADMIN = (f"treasury-{AGENCY.code}@example.org", "demo-treasury-2026")


@pytest.fixture()
def admin_secret(app: Flask) -> str:
    with app.app_context():
        admin = db.session.scalar(select(User).where(User.email == ADMIN[0]))
        return decrypt_secret(admin.totp_secret)


def _agency_policy(app: Flask) -> Decimal:
    with app.app_context():
        db.session.remove()
        agency = db.session.scalar(select(Agency).where(Agency.code == AGENCY.code))
        return agency.policy.rate_percent


def test_admin_previews_and_saves_a_surcharge_rate_and_finds_it_in_the_audit_log(
    app: Flask, open_page: Callable[..., Page], admin_secret: str, snap: Snap
) -> None:
    admin = open_page()
    log_in(admin, *ADMIN)
    choose_language(admin, "English", "en")
    admin.goto("/treasury")
    admin.get_by_label("Code").fill(pyotp.TOTP(admin_secret).now())
    admin.get_by_role("button", name="Continue").click()
    expect(admin.get_by_role("heading", level=1)).to_have_text("Treasury")

    admin.goto(f"/treasury/{AGENCY.code}/payments")
    admin.get_by_role("link", name="Settings", exact=True).click()
    expect(admin.get_by_role("heading", level=1)).to_have_text("Settings")
    expect(admin.get_by_label("Surcharge rate per period (%)")).to_have_value("0.73")
    assert_accessible(admin)
    snap(admin, "01-settings")

    # A new rate, previewed on a worked example before saving: €120.00 due 31 January, paid
    # 1 March 2026 is two started months late, so 2 × 1 % of €120.00 = €2.40.
    admin.get_by_label("Surcharge rate per period (%)").fill("1")
    admin.get_by_label("Example principal").fill("120.00")
    admin.get_by_label("Example due date").fill("2026-01-31")
    admin.get_by_label("Example payment date").fill("2026-03-01")
    admin.get_by_role("button", name="Preview the surcharge").click()
    preview = admin.get_by_test_id("surcharge-preview")
    expect(preview.get_by_role("heading")).to_have_text("Surcharge: €2.40")
    expect(preview).to_contain_text("2 months late × 1 % of €120.00")
    assert _agency_policy(app) == Decimal("0.73")  # the preview saved nothing
    assert_accessible(admin)
    snap(admin, "02-preview")

    # A mistake is explained, and the page with errors passes axe too.
    admin.get_by_label("Grace days after the due date").fill("-1")
    admin.get_by_role("button", name="Save the settings").click()
    expect(admin.get_by_role("alert")).to_contain_text("The grace period must be between 0 and 365 days.")
    assert_accessible(admin)
    snap(admin, "03-error")

    admin.get_by_label("Grace days after the due date").fill("0")
    admin.get_by_role("button", name="Save the settings").click()
    expect(admin.get_by_role("status")).to_contain_text("The settings have been saved.")
    expect(admin.get_by_label("Surcharge rate per period (%)")).to_have_value("1")
    assert _agency_policy(app) == Decimal("1")

    admin.get_by_role("link", name="Audit log", exact=True).click()
    expect(admin.get_by_role("heading", level=1)).to_have_text("Audit log")
    row = admin.get_by_test_id("audit").locator("tbody tr").filter(has_text="Settings changed")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(ADMIN[0])
    expect(row).to_contain_text("surcharge policy")
    assert_accessible(admin)
    snap(admin, "04-audit")

    admin.get_by_role("link", name="Adoption", exact=True).click()
    expect(admin.get_by_role("heading", level=1)).to_have_text("Adoption of online payment")
    expect(admin.get_by_role("img", name="Share of payable debts paid online, by month")).to_be_visible()
    assert_accessible(admin)
    snap(admin, "05-adoption")

    admin.get_by_role("link", name="Settlement", exact=True).click()
    expect(admin.get_by_role("heading", level=1)).to_have_text("Daily settlement")
    expect(admin.get_by_test_id("settlement")).to_be_visible()
    assert_accessible(admin)
    snap(admin, "06-settlement")
    expect(admin).to_have_url(re.compile(rf"/treasury/{AGENCY.code}/settlement"))
