"""The treasury in a real browser: an administrator signs in with TOTP and invites a viewer, who
finds a payment by its RF reference, exports the list, and is offered no refund or staff controls."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable

import pyotp
import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.accounts.models import User
from app.accounts.services import ensure_user
from app.agencies.models import Agency
from app.debts.models import Debt
from app.domain.references import format_rf
from app.encryption import decrypt_secret
from app.extensions import db
from erp_connectors.demo import DEMO_AGENCIES
from tests.e2e.steps import Snap, assert_accessible, choose_language, log_in
from tests.factories import paid_payment

pytestmark = pytest.mark.usefixtures("demo_data")

AGENCY = DEMO_AGENCIES[0]
ADMIN = (f"treasury-{AGENCY.code}@example.org", "demo-treasury-2026")
VIEWER = ("viewer@example.org", "viewer-password-2026")


@pytest.fixture()
def payment_to_find(app: Flask) -> dict:
    """Two payments to the first demo agency; the viewer looks for the one of a given RF reference."""
    with app.app_context():
        agency = db.session.scalar(select(Agency).where(Agency.code == AGENCY.code))
        debts = db.session.scalars(select(Debt).where(Debt.agency_id == agency.id).order_by(Debt.id).limit(2)).all()
        wanted = paid_payment((debts[0], 4250, 31))
        paid_payment((debts[1], 1000))
        ensure_user(email=VIEWER[0], password=VIEWER[1], full_name="Vera Viewer", language="en", tax_ids=[])
        db.session.commit()  # services flush; the live server reads the account on its own connection
        admin = db.session.scalar(select(User).where(User.email == ADMIN[0]))
        return {
            "reference": wanted.reference,
            "rf": debts[0].rf_reference,
            "admin_secret": decrypt_secret(admin.totp_secret),
        }


def test_admin_invites_a_viewer_who_finds_and_exports_a_payment_without_refund_controls(
    open_page: Callable[..., Page], payment_to_find: dict, snap: Snap
) -> None:
    # The administrator: password, then the code of the authenticator app.
    admin = open_page()
    log_in(admin, *ADMIN)
    choose_language(admin, "English", "en")
    admin.get_by_role("link", name="Treasury", exact=True).click()
    expect(admin).to_have_url(re.compile(r"/treasury/2fa"))
    expect(admin.get_by_role("heading", level=1)).to_have_text("Second sign-in step")
    assert_accessible(admin)
    snap(admin, "01-admin-second-factor")
    admin.get_by_label("Code").fill(pyotp.TOTP(payment_to_find["admin_secret"]).now())
    admin.get_by_role("button", name="Continue").click()
    expect(admin.get_by_role("heading", level=1)).to_have_text("Treasury")
    assert_accessible(admin)

    admin.get_by_role("link", name=f"Staff of {AGENCY.name_en}").click()
    expect(admin.get_by_role("heading", level=1)).to_have_text("Staff")
    assert_accessible(admin)
    admin.get_by_label("E-mail address", exact=True).fill(VIEWER[0])
    admin.get_by_label("Role", exact=True).select_option(label="View only")
    admin.get_by_role("button", name="Invite").click()
    expect(admin.get_by_role("status")).to_contain_text(f"{VIEWER[0]} already had an account and is now on the staff.")
    expect(admin.get_by_test_id("staff")).to_contain_text("Vera Viewer")
    assert_accessible(admin)
    snap(admin, "02-staff")

    # The viewer: first visit sets up the authenticator and shows the recovery codes.
    viewer = open_page()
    log_in(viewer, *VIEWER)
    viewer.get_by_role("link", name="Treasury", exact=True).click()
    expect(viewer).to_have_url(re.compile(r"/treasury/2fa/setup"))
    expect(viewer.get_by_role("img", name=re.compile("QR code"))).to_be_visible()
    assert_accessible(viewer)
    snap(viewer, "03-viewer-setup")
    secret = viewer.get_by_test_id("totp-secret").inner_text().strip()
    viewer.get_by_label("Code from your authenticator app").fill(pyotp.TOTP(secret).now())
    viewer.get_by_role("button", name="Confirm").click()
    expect(viewer.get_by_test_id("recovery-codes").locator("li")).to_have_count(10)
    assert_accessible(viewer)
    viewer.get_by_role("link", name=re.compile("continue")).click()

    viewer.get_by_role("link", name=f"Payments of {AGENCY.name_en}").click()
    expect(viewer.get_by_role("heading", level=1)).to_have_text("Payments")
    expect(viewer.get_by_test_id("payments").locator("tbody tr")).to_have_count(2)
    viewer.get_by_label("RF reference").fill(format_rf(payment_to_find["rf"]))
    viewer.get_by_role("button", name="Search").click()
    rows = viewer.get_by_test_id("payments").locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(payment_to_find["reference"])
    expect(rows.first).to_contain_text("€42.81")
    assert_accessible(viewer)
    snap(viewer, "04-found-by-rf")

    with viewer.expect_download() as download_info:
        viewer.get_by_role("link", name="Export these payments (CSV)").click()
    download = download_info.value
    assert download.suggested_filename.startswith(f"payments-{AGENCY.code}-")
    with open(download.path(), "rb") as exported:
        body = exported.read()
    assert body.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert len(table) == 2 and table[1][1] == payment_to_find["reference"]
    assert table[1][-2:] == ["42.81", "EUR"]

    viewer.get_by_role("link", name=payment_to_find["reference"]).click()
    expect(viewer.get_by_role("heading", level=1)).to_have_text(f"Payment {payment_to_find['reference']}")
    expect(viewer.get_by_test_id("agency-amount")).to_have_text("€42.81")
    assert_accessible(viewer)
    snap(viewer, "05-payment")
    # A viewer is offered nothing to refund and no staff management.
    expect(viewer.get_by_role("button", name=re.compile("[Rr]efund"))).to_have_count(0)
    expect(viewer.get_by_role("link", name="Staff", exact=True)).to_have_count(0)
    response = viewer.goto(f"/treasury/{AGENCY.code}/staff")
    assert response is not None and response.status == 404
