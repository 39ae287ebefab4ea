"""The operations pages in a real browser: an administrator opens the sync runs, dismisses a
quarantined record with a reason, retries a dead write-back message, and every page passes axe."""

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
from app.audit.models import AuditEntry
from app.encryption import decrypt_secret
from app.extensions import db
from app.outbox.models import OutboxMessage
from app.sync.models import QuarantinedRecord
from erp_connectors.demo import DEMO_AGENCIES
from tests.e2e.steps import Snap, assert_accessible, choose_language, log_in

pytestmark = pytest.mark.usefixtures("demo_data")

AGENCY = DEMO_AGENCIES[0]
ADMIN = (f"treasury-{AGENCY.code}@example.org", "demo-treasury-2026")


@pytest.fixture()
def trouble(app: Flask) -> dict:
    """A record the sync could not take and a write-back message the worker gave up on."""
    with app.app_context():
        agency = db.session.scalar(select(Agency).where(Agency.code == AGENCY.code))
        record = QuarantinedRecord(
            agency_id=agency.id,
            external_id="ERP-TEST-0001",
            reason="The tax ID 123 is not a valid Greek AFM.",
            raw='{"external_id": "ERP-TEST-0001", "tax_id": "123", "debtor_name": "<b>Test</b>"}',
        )
        message = OutboxMessage(
            topic="erp_payment_ack",
            key=f"erp_payment_ack:CP-E2E0-0001-01:{agency.code}",
            agency_id=agency.id,
            payload={"lines": []},
            status="dead",
            attempts=12,
            last_error=f"Gave up after 12 attempts. Last: The ERP of {agency.code} could not be reached.",
        )
        db.session.add_all([record, message])
        db.session.commit()
        admin = db.session.scalar(select(User).where(User.email == ADMIN[0]))
        return {"record": record.id, "message": message.id, "secret": decrypt_secret(admin.totp_secret)}


def test_admin_reviews_sync_runs_dismisses_a_record_and_retries_a_dead_message(
    app: Flask, open_page: Callable[..., Page], trouble: dict, snap: Snap
) -> None:
    admin = open_page()
    log_in(admin, *ADMIN)
    choose_language(admin, "English", "en")
    admin.goto("/treasury")
    admin.get_by_label("Code").fill(pyotp.TOTP(trouble["secret"]).now())
    admin.get_by_role("button", name="Continue").click()
    expect(admin.get_by_role("heading", level=1)).to_have_text("Treasury")

    # Sync runs: the demo data's full sync of the agency, succeeded.
    admin.get_by_role("link", name=f"Payments of {AGENCY.name_en}").click()
    admin.get_by_role("link", name="Operations", exact=True).click()
    expect(admin.get_by_role("heading", level=1)).to_have_text("Sync runs")
    runs = admin.get_by_test_id("sync-runs").locator("tbody tr")
    expect(runs).to_have_count(1)
    expect(runs.first).to_contain_text("Succeeded")
    assert_accessible(admin)
    snap(admin, "01-sync-runs")

    # Quarantine: the open record, its payload escaped, dismissed with a reason.
    admin.get_by_role("link", name=re.compile(r"^Quarantine \(1 open\)")).click()
    expect(admin.get_by_role("heading", level=1)).to_have_text("Quarantine")
    expect(admin.get_by_test_id("quarantine")).to_contain_text("The tax ID 123 is not a valid Greek AFM.")
    assert_accessible(admin)
    snap(admin, "02-quarantine")
    admin.get_by_role("link", name=f"Record {trouble['record']} and its payload").click()
    expect(admin.get_by_test_id("payload")).to_contain_text('"debtor_name": "<b>Test</b>"')
    assert_accessible(admin)
    admin.get_by_role("button", name="Dismiss the record").click()  # no reason yet: refused, explained
    expect(admin.get_by_text("Say why the record needs no action.").first).to_be_visible()
    assert_accessible(admin)
    admin.get_by_label("Why does this record need no action?").fill("A test record the ERP vendor sent by mistake")
    admin.get_by_role("button", name="Dismiss the record").click()
    expect(admin.get_by_role("status")).to_contain_text("The record has been dismissed.")
    expect(admin.get_by_text("No records are in quarantine.")).to_be_visible()
    assert_accessible(admin)
    snap(admin, "03-dismissed")

    # Write-back: the dead message is queued again.
    admin.get_by_role("link", name="Write-back to the ERP").click()
    expect(admin.get_by_role("heading", level=1)).to_have_text("Write-back to the ERP")
    assert_accessible(admin)
    admin.get_by_role("button", name=f"Retry message {trouble['message']}").click()
    expect(admin.get_by_role("status")).to_contain_text(f"Message {trouble['message']} is queued again")
    expect(admin.get_by_role("button", name=f"Retry message {trouble['message']}")).to_have_count(0)
    assert_accessible(admin)
    snap(admin, "04-retried")

    with app.app_context():
        db.session.remove()
        assert db.session.get(QuarantinedRecord, trouble["record"]).status == "dismissed"
        assert db.session.get(OutboxMessage, trouble["message"]).status == "pending"
        actions = set(db.session.scalars(select(AuditEntry.action)))
        assert {"sync.quarantine_dismiss", "outbox.retry"} <= actions
