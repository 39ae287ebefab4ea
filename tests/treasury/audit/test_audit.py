"""The audit log in the treasury: every staff action is recorded, and the log page searches,
pages and exports one agency's entries only."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.audit.services import AuditFilters, audit_page
from app.extensions import db
from app.treasury.access import services
from app.treasury.models import StaffInvitation, StaffMembership
from tests.factories import PASSWORD, AgencyFactory, UserFactory, staff_member
from tests.helpers import csrf_token, log_in, page_text
from tests.mail.smtp import SMTPServer
from tests.treasury.helpers import enrol, pass_second_factor, sign_in


def _entries(action: str) -> list[AuditEntry]:
    db.session.expire_all()
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


@pytest.fixture()
def office(db_session: None) -> dict:
    """An agency and its administrator, signed in by the test."""
    agency = AgencyFactory()
    admin = staff_member(agency, "admin")
    return {"agency_id": agency.id, "code": agency.code, "admin": admin, "admin_id": admin.id}


def _post(client: FlaskClient, office: dict, path: str, **data: str):
    token = csrf_token(client, f"/treasury/{office['code']}/staff")
    return client.post(f"/treasury/{office['code']}{path}", data={"csrf_token": token, **data})


def test_inviting_granting_changing_and_removing_staff_are_recorded(
    client: FlaskClient, office: dict, mailbox: SMTPServer
) -> None:
    sign_in(client, office["admin"])
    colleague_id = UserFactory(email="clerk@example.org").id

    assert _post(client, office, "/staff/invite", email="clerk@example.org", role="view").status_code == 303
    [invite] = _entries("staff.invite")
    [grant] = _entries("staff.grant")
    assert (invite.subject, invite.details) == ("clerk@example.org", {"role": "view", "outcome": "granted"})
    assert (grant.subject, grant.details) == ("clerk@example.org", {"role": "view"})
    for entry in (invite, grant):
        assert (entry.agency_id, entry.actor_user_id, entry.ip_address) == (
            office["agency_id"],
            office["admin_id"],
            "127.0.0.1",
        )

    membership_id = db.session.scalar(select(StaffMembership.id).where(StaffMembership.user_id == colleague_id))
    assert _post(client, office, f"/staff/{membership_id}/role", role="refund").status_code == 303
    [change] = _entries("staff.role_change")
    assert (change.subject, change.details, change.actor_user_id) == (
        "clerk@example.org",
        {"from": "view", "to": "refund"},
        office["admin_id"],
    )

    assert _post(client, office, f"/staff/{membership_id}/remove").status_code == 303
    [removal] = _entries("staff.revoke")
    assert (removal.subject, removal.details, removal.agency_id) == (
        "clerk@example.org",
        {"role": "refund"},
        office["agency_id"],
    )

    assert _post(client, office, "/staff/invite", email="new@example.org", role="admin").status_code == 303
    invited = _entries("staff.invite")[-1]
    assert (invited.subject, invited.details) == ("new@example.org", {"role": "admin", "outcome": "invited"})
    invitation_id = db.session.scalar(select(StaffInvitation.id).where(StaffInvitation.email == "new@example.org"))
    assert _post(client, office, f"/staff/invitations/{invitation_id}/revoke").status_code == 303
    [cancelled] = _entries("staff.invitation_revoke")
    assert (cancelled.subject, cancelled.actor_user_id) == ("new@example.org", office["admin_id"])


def test_refused_changes_leave_no_entry(client: FlaskClient, office: dict) -> None:
    sign_in(client, office["admin"])
    own = db.session.scalar(select(StaffMembership.id).where(StaffMembership.user_id == office["admin_id"]))
    _post(client, office, f"/staff/{own}/role", role="view")  # the last administrator stays
    assert _entries("staff.role_change") == []


def test_accepting_an_invitation_is_recorded_as_the_invited_person(app: Flask, office: dict) -> None:
    with app.test_request_context():
        from app.agencies.models import Agency

        agency = db.session.get(Agency, office["agency_id"])
        invitation = StaffInvitation(agency_id=agency.id, email="joiner@example.org", role="view")
        db.session.add(invitation)
        db.session.commit()
        joiner = UserFactory(email="joiner@example.org")
        token = services._invitation_serializer().dumps({"invitation": invitation.id, "email": "joiner@example.org"})
        assert services.accept_invitation(token, joiner).status == "valid"
        db.session.commit()  # as the request that accepted it would
        joiner_id = joiner.id
    [accepted] = _entries("staff.invitation_accept")
    assert (accepted.actor_user_id, accepted.agency_id, accepted.details) == (
        joiner_id,
        office["agency_id"],
        {"role": "view"},
    )
    [grant] = _entries("staff.grant")
    assert grant.subject == "joiner@example.org"


def test_second_factor_enrolment_and_refused_codes_are_recorded(client: FlaskClient, db_session: None) -> None:
    user = staff_member(AgencyFactory(), "view", enrolled=False)
    user_id, email = user.id, user.email
    log_in(client, email, PASSWORD)
    enrol(client)
    [enrolled] = _entries("staff.2fa_enrolled")
    assert (enrolled.actor_user_id, enrolled.subject, enrolled.agency_id) == (user_id, email, None)

    client.post("/logout", data={"csrf_token": csrf_token(client, "/treasury")})
    log_in(client, email, PASSWORD)
    assert pass_second_factor(client, "000000").status_code == 400
    [failed] = _entries("staff.2fa_failed")
    assert (failed.actor_user_id, failed.subject, failed.ip_address) == (user_id, email, "127.0.0.1")
    assert "000000" not in str(failed.details)


# -- the page --------------------------------------------------------------------------------------


@pytest.fixture()
def logged(office: dict) -> dict:
    """Entries of the office's agency on three days, and one of another agency."""
    other = AgencyFactory()
    rows = [
        # (UTC time, action, subject)
        (datetime(2026, 2, 26, 9, tzinfo=UTC), "staff.invite", "anna@example.org"),
        (datetime(2026, 2, 27, 9, tzinfo=UTC), "payment.status", "CP-AAAA-1111-01"),
        (datetime(2026, 2, 27, 22, 30, tzinfo=UTC), "settings.update", office["code"]),  # 28 Feb in Athens
        (datetime(2026, 2, 28, 10, tzinfo=UTC), "staff.grant", "bob@example.org"),
        (datetime(2026, 2, 28, 11, tzinfo=UTC), "payment.status", "CP-BBBB-2222-02"),
    ]
    for at, action, subject in rows:
        db.session.add(
            AuditEntry(at=at, agency_id=office["agency_id"], action=action, subject=subject, details={"to": "x"})
        )
    db.session.add(
        AuditEntry(
            at=rows[0][0], agency_id=other.id, action="staff.invite", subject="elsewhere@example.org", details={}
        )
    )
    db.session.commit()
    return office


def _subjects(client: FlaskClient, office: dict, **query: str) -> list[str]:
    response = client.get(f"/treasury/{office['code']}/audit", query_string=query)
    assert response.status_code == 200
    text = page_text(response)
    return [
        subject
        for subject in ("anna@", "CP-AAAA", office["code"] + "<", "bob@", "CP-BBBB", "elsewhere@")
        if subject in text
    ]


FILTERS = [
    pytest.param({}, ["anna@", "CP-AAAA", "{code}<", "bob@", "CP-BBBB"], id="none"),
    pytest.param({"date_from": "2026-02-28"}, ["{code}<", "bob@", "CP-BBBB"], id="from-local-day"),
    pytest.param({"date_to": "2026-02-27"}, ["anna@", "CP-AAAA"], id="to-local-day"),
    pytest.param({"date_from": "2026-02-27", "date_to": "2026-02-27"}, ["CP-AAAA"], id="one-day"),
    pytest.param({"action": "payment.status"}, ["CP-AAAA", "CP-BBBB"], id="action"),
    pytest.param({"action": "staff."}, ["anna@", "bob@"], id="any-staff-action"),
    pytest.param({"subject": "cp-bbbb"}, ["CP-BBBB"], id="subject-any-case"),
    pytest.param({"subject": "%"}, [], id="subject-wildcard-is-literal"),
]


@pytest.mark.parametrize(("query", "expected"), FILTERS)
def test_the_page_filters_the_agencys_entries(
    client: FlaskClient, logged: dict, query: dict, expected: list[str]
) -> None:
    sign_in(client, logged["admin"])
    found = _subjects(client, logged, **query)
    assert found == [subject.replace("{code}", logged["code"]) for subject in expected]


def test_the_export_holds_exactly_the_filtered_entries(client: FlaskClient, logged: dict) -> None:
    sign_in(client, logged["admin"])
    response = client.get(f"/treasury/{logged['code']}/audit.csv", query_string={"action": "payment.status"})
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith(f'attachment; filename="audit-{logged["code"]}-')
    body = response.get_data()
    assert body.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert table[0] == ["Date", "Staff member", "Action", "Subject", "Details", "IP address"]
    assert [row[3] for row in table[1:]] == ["CP-BBBB-2222-02", "CP-AAAA-1111-01"]
    assert table[1][0] == "2026-02-28 13:00:00"  # Athens time


def test_pages_follow_each_other_by_keyset_without_gaps_or_repeats(app_ctx: Flask, logged: dict) -> None:
    seen, position, pages = [], None, 0
    while True:
        page = audit_page(logged["agency_id"], "Europe/Athens", AuditFilters(), before=position, page_size=2)
        seen.extend(row.entry.subject for row in page.rows)
        pages += 1
        if page.older is None:
            break
        position = page.older
    assert pages == 3
    assert seen == ["CP-BBBB-2222-02", "bob@example.org", logged["code"], "CP-AAAA-1111-01", "anna@example.org"]


def test_the_page_links_to_the_next_page(client: FlaskClient, logged: dict) -> None:
    for number in range(50):
        db.session.add(
            AuditEntry(at=datetime(2026, 2, 28, 12, tzinfo=UTC) + timedelta(minutes=number), agency_id=logged["agency_id"],
                       action="staff.grant", subject=f"person{number}@example.org", details={})
        )  # fmt: skip
    db.session.commit()
    sign_in(client, logged["admin"])
    first = page_text(client.get(f"/treasury/{logged['code']}/audit"))
    assert "person49@" in first and "anna@" not in first
    older = first.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
    second = page_text(client.get(older))
    assert "anna@" in second and "person49@" not in second
