"""The settings, audit, settlement and adoption pages render in Greek too (format strings hold)."""

from __future__ import annotations

from datetime import date

import pytest
from flask.testing import FlaskClient

from app.audit.models import AuditEntry
from app.extensions import db
from tests.factories import AgencyFactory, DebtFactory, paid_payment, staff_member
from tests.treasury.helpers import sign_in


@pytest.mark.parametrize(
    "page", ["settings", "audit", "settlement", "adoption", "settings/credentials", "settings/emails"]
)
def test_the_page_renders_in_greek(client: FlaskClient, db_session: None, page: str) -> None:
    agency = AgencyFactory(withholdings={"default": [{"name": "Ταμείο Χ", "percent": "2"}]})
    paid_payment((DebtFactory(agency=agency, due_date=date(2026, 2, 1)), 5000))
    db.session.add(
        AuditEntry(agency_id=agency.id, action="settings.update", subject=agency.code, details={"surcharge_policy": {}})
    )
    credentials = {"stripe_webhook_secret": {"secret": "set"}, "stripe_account": {"from": None, "to": "acct_1X"}}
    db.session.add(
        AuditEntry(agency_id=agency.id, action="settings.credentials", subject=agency.code, details=credentials)
    )
    db.session.commit()
    code = agency.code
    sign_in(client, staff_member(agency, "admin", language="el"))
    response = client.get(f"/treasury/{code}/{page}")
    assert response.status_code == 200
    assert '<html lang="el">' in response.get_data(as_text=True)
