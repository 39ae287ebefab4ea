"""Platform administration: platform administrators list and add agencies (inviting the first
administrator) and read the platform's audit log; an agency's staff get 404 on all of it."""

from __future__ import annotations

import csv
import io

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.agencies.models import Agency
from app.audit.models import AuditEntry
from app.audit.services import record
from app.extensions import db
from app.treasury.models import ROLES, StaffInvitation, StaffMembership
from tests.factories import AgencyFactory, UserFactory, staff_member
from tests.helpers import csrf_token, page_text
from tests.mail.smtp import SMTPServer
from tests.treasury.helpers import sign_in

PLATFORM_PAGES = [
    "/treasury/platform",
    "/treasury/platform/agencies/new",
    "/treasury/platform/audit",
    "/treasury/platform/audit.csv",
]


def _entries(action: str) -> list[AuditEntry]:
    db.session.expire_all()
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


@pytest.fixture()
def operator(db_session: None) -> dict:
    """A platform administrator who is on no agency's staff."""
    user = staff_member(None, is_platform_admin=True, email="operator@example.org")
    return {"user": user, "id": user.id}


def _new_agency(client: FlaskClient, **changes: str):
    data = {
        "code": "northbay",
        "name_el": "Δήμος Βόρειου Κόλπου",
        "name_en": "Municipality of North Bay",
        "timezone": "Europe/Athens",
        "currency": "EUR",
        "admin_email": "Chief@North-Bay.example.org",
        "csrf_token": csrf_token(client, "/treasury/platform/agencies/new"),
    } | changes
    return client.post("/treasury/platform/agencies/new", data=data)


def test_the_platform_routes_are_the_ones_tested_here(app: Flask) -> None:
    rules = {rule.rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith("treasury.platform_")}
    assert rules == set(PLATFORM_PAGES)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("path", PLATFORM_PAGES)
def test_an_agencys_staff_get_404_on_every_platform_page(
    client: FlaskClient, db_session: None, role: str, path: str
) -> None:
    sign_in(client, staff_member(AgencyFactory(), role))
    assert client.get(path).status_code == 404
    if path.endswith("/new"):
        assert _new_agency(client).status_code == 404
        assert db.session.scalar(select(Agency).where(Agency.code == "northbay")) is None


def test_the_index_offers_platform_administration_to_platform_administrators_only(
    client: FlaskClient, operator: dict
) -> None:
    sign_in(client, operator["user"])
    assert "/treasury/platform" in page_text(client.get("/treasury"))
    client.post("/logout", data={"csrf_token": csrf_token(client, "/treasury")})
    sign_in(client, staff_member(AgencyFactory(), "admin"))
    assert "/treasury/platform" not in page_text(client.get("/treasury"))


def test_the_agencies_page_lists_every_agency_with_its_counts(client: FlaskClient, operator: dict) -> None:
    town, port = AgencyFactory(name_en="Town of Alpha"), AgencyFactory(name_en="Port of Beta")
    staff_member(town, "admin")
    staff_member(town, "view")
    db.session.add(StaffInvitation(agency_id=port.id, email="x@example.org", role="admin"))
    db.session.commit()
    sign_in(client, operator["user"])
    text = page_text(client.get("/treasury/platform"))
    assert "Town of Alpha" in text and "Port of Beta" in text
    from app.treasury.platform.services import agencies_overview

    counts = {overview.agency.name_en: (overview.staff, overview.administrators, overview.pending_invitations)
              for overview in agencies_overview()}  # fmt: skip
    assert counts["Town of Alpha"] == (2, 1, 0) and counts["Port of Beta"] == (0, 0, 1)


def test_adding_an_agency_invites_its_first_administrator_by_email(
    client: FlaskClient, operator: dict, mailbox: SMTPServer
) -> None:
    sign_in(client, operator["user"])
    response = _new_agency(client)
    assert response.status_code == 303, page_text(response)
    assert "we sent an invitation to chief@north-bay.example.org" in page_text(client.get(response.headers["Location"]))

    agency = db.session.scalar(select(Agency).where(Agency.code == "northbay"))
    assert (agency.name_el, agency.name_en, agency.timezone, agency.currency, agency.connector) == (
        "Δήμος Βόρειου Κόλπου",
        "Municipality of North Bay",
        "Europe/Athens",
        "EUR",
        {"type": "push"},
    )
    [invitation] = db.session.scalars(select(StaffInvitation).where(StaffInvitation.agency_id == agency.id)).all()
    assert (invitation.email, invitation.role, invitation.invited_by_id) == (
        "chief@north-bay.example.org",
        "admin",
        operator["id"],
    )
    mail = mailbox.only("chief@north-bay.example.org")
    assert "/treasury/invitations/" in mail.text
    [created] = _entries("platform.agency_create")
    assert (created.agency_id, created.actor_user_id, created.subject) == (agency.id, operator["id"], "northbay")
    assert created.details["administrator"] == "chief@north-bay.example.org"
    [invited] = _entries("staff.invite")
    assert (invited.agency_id, invited.details) == (agency.id, {"role": "admin", "outcome": "invited"})


def test_an_existing_account_becomes_the_administrator_at_once(
    client: FlaskClient, operator: dict, mailbox: SMTPServer
) -> None:
    chief_id = UserFactory(email="chief@example.org").id
    sign_in(client, operator["user"])
    response = _new_agency(client, admin_email="chief@example.org")
    assert response.status_code == 303
    agency = db.session.scalar(select(Agency).where(Agency.code == "northbay"))
    membership = db.session.scalar(select(StaffMembership).where(StaffMembership.agency_id == agency.id))
    assert (membership.user_id, membership.role) == (chief_id, "admin")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"code": "North Bay"}, "Use 2 to 40 lower-case Latin letters"),
        ({"code": "platform"}, "This code is used by the treasury"),
        ({"code": "taken"}, "An agency with this code already exists."),
        ({"timezone": "Athens"}, "Enter a time zone like Europe/Athens."),
        ({"currency": "EURO"}, "Enter a currency code like EUR."),
        ({"admin_email": "not-an-address"}, "Enter an e-mail address like name@example.org."),
        ({"name_el": ""}, "Enter the name in Greek."),
    ],
)
def test_a_wrong_agency_is_refused_with_the_reason(
    client: FlaskClient, operator: dict, changes: dict, message: str
) -> None:
    AgencyFactory(code="taken")
    sign_in(client, operator["user"])
    response = _new_agency(client, **changes)
    assert response.status_code == 400
    assert message in page_text(response)
    assert db.session.scalar(select(Agency).where(Agency.name_en == "Municipality of North Bay")) is None
    assert _entries("platform.agency_create") == []


@pytest.fixture()
def logged(operator: dict) -> dict:
    """Entries of two agencies and of the platform itself."""
    town, port = AgencyFactory(code="town"), AgencyFactory(code="port")
    record("settings.update", agency_id=town.id, subject="town-subject", details={"online_kinds": []})
    record("staff.grant", agency_id=port.id, subject="port-subject", details={"role": "view"})
    record("platform.admin", agency_id=None, subject="platform-subject", details={"platform_admin": True})
    db.session.commit()
    return {"town": town.id, "port": port.id}


def test_the_platform_audit_log_shows_every_agency_and_the_platform(
    client: FlaskClient, operator: dict, logged: dict
) -> None:
    sign_in(client, operator["user"])
    everything = page_text(client.get("/treasury/platform/audit"))
    for subject in ("town-subject", "port-subject", "platform-subject"):
        assert subject in everything
    assert "Platform administrator named or removed" in everything

    platform_only = page_text(client.get("/treasury/platform/audit?agency=none"))
    assert "platform-subject" in platform_only
    assert "town-subject" not in platform_only and "port-subject" not in platform_only

    one_agency = page_text(client.get("/treasury/platform/audit?agency=port"))
    assert "port-subject" in one_agency
    assert "town-subject" not in one_agency and "platform-subject" not in one_agency

    by_action = page_text(client.get("/treasury/platform/audit?action=platform."))
    assert "platform-subject" in by_action and "town-subject" not in by_action


def test_the_platform_audit_export_has_each_entrys_agency(client: FlaskClient, operator: dict, logged: dict) -> None:
    sign_in(client, operator["user"])
    response = client.get("/treasury/platform/audit.csv")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith('attachment; filename="audit-platform-')
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][:3] == ["Date", "Agency", "Staff member"]
    agencies_by_subject = {row[4]: row[1] for row in rows[1:]}
    assert agencies_by_subject["town-subject"] == "town"
    assert agencies_by_subject["port-subject"] == "port"
    assert agencies_by_subject["platform-subject"] == ""

    only_town = client.get("/treasury/platform/audit.csv?agency=town&sep=semicolon").get_data(as_text=True)
    assert "town-subject" in only_town and "port-subject" not in only_town and ";" in only_town


def test_a_platform_administrator_does_not_read_an_agencys_operations(client: FlaskClient, operator: dict) -> None:
    """Quarantined payloads carry debtors' personal data: operating the platform does not open them."""
    code = AgencyFactory().code
    sign_in(client, operator["user"])
    for page in ("sync", "quarantine", "outbox"):
        assert client.get(f"/treasury/{code}/operations/{page}").status_code == 404, page
