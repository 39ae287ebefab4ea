"""Staff management: invitations by e-mail, roles, the last administrator, the CLI, demo staff."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.accounts.models import User
from app.extensions import db
from app.treasury.models import StaffInvitation, StaffMembership
from tests.factories import PASSWORD, AgencyFactory, StaffMembershipFactory, UserFactory, staff_member
from tests.helpers import csrf_token, log_in, page_text
from tests.mail.smtp import SMTPServer
from tests.treasury.helpers import enrol, sign_in


def role_of(user_id: int, agency_id: int) -> str | None:
    return db.session.scalar(
        select(StaffMembership.role).where(StaffMembership.user_id == user_id, StaffMembership.agency_id == agency_id)
    )


def invite(client: FlaskClient, code: str, email: str, role: str):
    token = csrf_token(client, f"/treasury/{code}/staff")
    return client.post(f"/treasury/{code}/staff/invite", data={"email": email, "role": role, "csrf_token": token})


def test_an_invitation_by_email_leads_through_registration_to_membership(
    client: FlaskClient, app: Flask, mailbox: SMTPServer
) -> None:
    agency = AgencyFactory(name_en="Municipality of Testville")
    code, agency_id = agency.code, agency.id
    sign_in(client, staff_member(agency, "admin", full_name="Anna Admin"))

    response = invite(client, code, "New.Clerk@Example.org", "view")
    assert response.status_code == 303
    assert "We sent an invitation to New.Clerk@Example.org" in page_text(client.get(f"/treasury/{code}/staff"))
    mail = mailbox.only("new.clerk@example.org")
    assert "Municipality of Testville" in mail.subject
    assert "Anna Admin" in mail.text and "View only" in mail.text
    link = mail.link_path("/treasury/invitations/")

    # The new clerk registers, confirms the address, logs in and follows the link.
    clerk = app.test_client()
    clerk.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    clerk.post("/register", data={
        "email": "new.clerk@example.org", "password": PASSWORD, "password_confirm": PASSWORD,
        "full_name": "New Clerk", "language": "en", "accept": "y", "csrf_token": csrf_token(clerk, "/register"),
    })  # fmt: skip
    clerk_user = db.session.scalar(select(User).where(User.email == "new.clerk@example.org"))
    assert clerk_user is not None, "registration failed"
    clerk_user.email_verified_at = clerk_user.created_at  # the confirmation e-mail is tested in accounts
    db.session.commit()
    clerk_id = clerk_user.id
    log_in(clerk, "new.clerk@example.org", PASSWORD)

    anonymous = app.test_client()
    assert anonymous.get(link).headers["Location"].startswith("/login?next=")

    offer = clerk.get(link)
    assert offer.status_code == 200
    assert "You are invited to the treasury staff of Municipality of Testville, as: View only." in page_text(offer)
    accepted = clerk.post(link, data={"csrf_token": csrf_token(clerk, link)})
    assert accepted.status_code == 303
    assert role_of(clerk_id, agency_id) == "view"

    # A treasury page now asks for the second factor to be set up, and then opens.
    assert clerk.get(f"/treasury/{code}/payments").headers["Location"].startswith("/treasury/2fa/setup")
    enrol(clerk)
    assert clerk.get(f"/treasury/{code}/payments").status_code == 200
    # The link works once.
    assert "already been accepted" in page_text(clerk.get(link))


def test_an_invitation_for_another_address_or_expired_does_not_grant(
    client: FlaskClient, app: Flask, mailbox: SMTPServer, clock: time_machine.Traveller
) -> None:
    agency = AgencyFactory()
    code, agency_id = agency.code, agency.id
    sign_in(client, staff_member(agency, "admin"))
    invite(client, code, "invited@example.org", "refund")
    link = mailbox.only("invited@example.org").link_path("/treasury/invitations/")

    other = UserFactory(email="someone.else@example.org")
    other_id = other.id
    stranger = app.test_client()
    log_in(stranger, "someone.else@example.org", PASSWORD)
    refused = stranger.post(link, data={"csrf_token": csrf_token(stranger, link)})
    assert refused.status_code == 400 and "sent to another e-mail address" in page_text(refused)
    assert role_of(other_id, agency_id) is None

    UserFactory(email="invited@example.org")
    clock.shift(timedelta(days=8))
    late = app.test_client()
    log_in(late, "invited@example.org", PASSWORD)
    assert "This invitation has expired" in page_text(late.get(link))


def test_inviting_an_existing_account_grants_at_once_and_tells_them(client: FlaskClient, mailbox: SMTPServer) -> None:
    agency = AgencyFactory()
    code, agency_id = agency.code, agency.id
    existing = UserFactory(email="clerk@example.org")
    existing_id = existing.id
    sign_in(client, staff_member(agency, "admin"))
    response = invite(client, code, "clerk@example.org", "refund")
    assert response.status_code == 303
    assert role_of(existing_id, agency_id) == "refund"
    assert "You have been added to the treasury" in mailbox.only("clerk@example.org").subject
    assert db.session.scalar(select(StaffInvitation.id)) is None


def test_a_revoked_invitation_link_stops_working(client: FlaskClient, app: Flask, mailbox: SMTPServer) -> None:
    agency = AgencyFactory()
    code = agency.code
    sign_in(client, staff_member(agency, "admin"))
    invite(client, code, "late@example.org", "view")
    link = mailbox.only("late@example.org").link_path("/treasury/invitations/")
    invitation_id = db.session.scalar(select(StaffInvitation.id))
    token = csrf_token(client, f"/treasury/{code}/staff")
    assert (
        client.post(
            f"/treasury/{code}/staff/invitations/{invitation_id}/revoke", data={"csrf_token": token}
        ).status_code
        == 303
    )
    UserFactory(email="late@example.org")
    late = app.test_client()
    log_in(late, "late@example.org", PASSWORD)
    assert "not valid, or the invitation was cancelled" in page_text(late.get(link))


def test_an_admin_changes_roles_and_removes_staff_but_not_the_last_admin(client: FlaskClient) -> None:
    agency = AgencyFactory()
    code, agency_id = agency.code, agency.id
    admin = staff_member(agency, "admin")
    admin_id = admin.id
    colleague = StaffMembershipFactory(agency=agency, role="view")
    colleague_id, colleague_user = colleague.id, colleague.user_id
    own_id = db.session.scalar(select(StaffMembership.id).where(StaffMembership.user_id == admin_id))
    sign_in(client, admin)
    staff_page = f"/treasury/{code}/staff"

    def post(path: str, **data: str):
        return client.post(path, data={"csrf_token": csrf_token(client, staff_page), **data})

    assert post(f"{staff_page}/{colleague_id}/role", role="refund").status_code == 303
    assert role_of(colleague_user, agency_id) == "refund"

    # The only administrator can neither step down nor leave.
    post(f"{staff_page}/{own_id}/role", role="view")
    assert role_of(admin_id, agency_id) == "admin"
    assert "at least one administrator" in page_text(client.get(staff_page))
    post(f"{staff_page}/{own_id}/remove")
    assert role_of(admin_id, agency_id) == "admin"

    # With a second administrator, stepping down is fine.
    post(f"{staff_page}/{colleague_id}/role", role="admin")
    assert post(f"{staff_page}/{own_id}/role", role="view").status_code == 303
    assert role_of(admin_id, agency_id) == "view"
    assert client.get(staff_page).status_code == 404  # a viewer has no staff page


def test_removing_a_member_ends_their_access(client: FlaskClient, app: Flask) -> None:
    agency = AgencyFactory()
    code = agency.code
    admin = staff_member(agency, "admin")
    viewer = staff_member(agency, "view")
    membership_id = db.session.scalar(select(StaffMembership.id).where(StaffMembership.user_id == viewer.id))
    sign_in(client, admin)
    other = app.test_client()
    other.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    sign_in(other, viewer)  # each person's codes are their own: the same moment is fine
    assert other.get(f"/treasury/{code}/payments").status_code == 200
    staff_page = f"/treasury/{code}/staff"
    client.post(f"{staff_page}/{membership_id}/remove", data={"csrf_token": csrf_token(client, staff_page)})
    assert other.get(f"/treasury/{code}/payments").status_code == 404


def test_cli_grants_revokes_and_names_platform_admins(app: Flask, db_session: None) -> None:
    agency = AgencyFactory(code="testville")
    user = UserFactory(email="cli@example.org")
    user_id, agency_id = user.id, agency.id
    runner = app.test_cli_runner()

    granted = runner.invoke(args=["treasury", "grant", "CLI@example.org", "testville", "refund"])
    assert granted.exit_code == 0, granted.output
    assert role_of(user_id, agency_id) == "refund"
    assert runner.invoke(args=["treasury", "grant", "cli@example.org", "testville", "boss"]).exit_code != 0
    unknown = runner.invoke(args=["treasury", "grant", "nobody@example.org", "testville", "view"])
    assert unknown.exit_code != 0 and "no account" in unknown.output

    revoked = runner.invoke(args=["treasury", "revoke", "cli@example.org", "testville"])
    assert revoked.exit_code == 0, revoked.output
    assert role_of(user_id, agency_id) is None
    assert runner.invoke(args=["treasury", "revoke", "cli@example.org", "testville"]).exit_code != 0

    made = runner.invoke(args=["treasury", "platform-admin", "cli@example.org"])
    assert made.exit_code == 0, made.output
    assert db.session.get(User, user_id).is_platform_admin is True
    runner.invoke(args=["treasury", "platform-admin", "--remove", "cli@example.org"])
    db.session.expire_all()
    assert db.session.get(User, user_id).is_platform_admin is False


def test_demo_setup_creates_an_enrolled_administrator_per_agency(app: Flask, db_session: None) -> None:
    runner = app.test_cli_runner()
    first = runner.invoke(args=["demo", "setup"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(args=["demo", "setup"])
    assert again.exit_code == 0, again.output
    line = next(line for line in first.output.splitlines() if "treasury-eastcoast@example.org" in line)
    secret = line.split("TOTP key:")[1].strip()
    assert secret in again.output  # the same key: repeating changes nothing
    assert pyotp.TOTP(secret).now().isdigit()
    user = db.session.scalar(select(User).where(User.email == "treasury-eastcoast@example.org"))
    assert user.totp_confirmed_at is not None and secret not in user.totp_secret
    assert db.session.scalar(select(StaffMembership.role).where(StaffMembership.user_id == user.id)) == "admin"


def test_an_invitation_never_changes_the_role_of_someone_already_on_the_staff(
    client: FlaskClient, app: Flask, mailbox: SMTPServer
) -> None:
    agency = AgencyFactory()
    code, agency_id = agency.code, agency.id
    sign_in(client, staff_member(agency, "admin"))
    invite(client, code, "boss@example.org", "view")
    link = mailbox.only("boss@example.org").link_path("/treasury/invitations/")
    boss = staff_member(agency, "admin", email="boss@example.org")  # made admin meanwhile
    boss_id = boss.id
    other = app.test_client()
    other.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    sign_in(other, boss)
    assert other.post(link, data={"csrf_token": csrf_token(other, link)}).status_code == 303
    assert role_of(boss_id, agency_id) == "admin"
