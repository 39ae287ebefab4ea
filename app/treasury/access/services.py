"""Treasury staff: who is staff and where, roles, invitations, the CLI's grants, the demo staff.

Agency scope is decided here and only here (``membership_for``): a view asks for the agency by
code and gets nothing unless the current person holds a role good enough in it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import pyotp
from flask import current_app, render_template, url_for
from flask_babel import force_locale
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import (
    and_,
    exists,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from app.accounts.models import User
from app.agencies.models import Agency
from app.audit.services import record
from app.db import utcnow
from app.encryption import decrypt_secret, encrypt_secret
from app.extensions import db
from app.i18n import gettext
from app.mail import MailDeliveryError, send_mail
from app.treasury.models import ROLES, StaffInvitation, StaffMembership, role_at_least
from app.unit_of_work import commit_early

log = logging.getLogger("civicpay.treasury")


class TreasuryError(Exception):
    """A staff action that is not allowed; the message is a sentence for the person who tried."""


# -- who is staff, and where --------------------------------------------------------------------


def is_staff(user: User) -> bool:
    """Whether the person works in any agency's treasury (or operates the platform)."""
    if user.is_platform_admin:
        return True
    return db.session.scalar(select(exists().where(StaffMembership.user_id == user.id))) or False


@dataclass(frozen=True)
class AgencyAccess:
    """The current person's standing in one agency: a membership, or platform administration."""

    agency: Agency
    #: One of ROLES; None for a platform administrator who is not a member.
    role: str | None
    platform_admin: bool = False

    def can(self, minimum: str) -> bool:
        """Whether this access grants ``minimum`` (a role of ROLES)."""
        return self.role is not None and role_at_least(self.role, minimum)


def accessible_agencies(user: User) -> list[AgencyAccess]:
    """The agencies the person may open in the treasury, by code."""
    rows = db.session.execute(
        select(Agency, StaffMembership.role)
        .join(StaffMembership, StaffMembership.agency_id == Agency.id)
        .where(StaffMembership.user_id == user.id)
        .order_by(Agency.code)
    ).all()
    found = {agency.id: AgencyAccess(agency, role) for agency, role in rows}
    if user.is_platform_admin:
        for agency in db.session.scalars(select(Agency).order_by(Agency.code)):
            if agency.id not in found:
                found[agency.id] = AgencyAccess(agency, None, platform_admin=True)
            else:
                found[agency.id] = replace(found[agency.id], platform_admin=True)
    return sorted(found.values(), key=lambda access: access.agency.code)


def membership_for(
    user: User, agency_code: str, minimum: str, *, platform_admin_allowed: bool = False
) -> AgencyAccess | None:
    """The person's access to the agency if it grants ``minimum``; else None (the caller says 404).

    A platform administrator passes only where ``platform_admin_allowed`` (staff management):
    operating the platform does not mean reading a municipality's payments.
    """
    row = db.session.execute(
        select(Agency, StaffMembership.role)
        .outerjoin(
            StaffMembership,
            and_(StaffMembership.agency_id == Agency.id, StaffMembership.user_id == user.id),
        )
        .where(Agency.code == agency_code)
    ).first()
    if row is None:
        return None
    agency, role = row
    access = AgencyAccess(agency, role, platform_admin=user.is_platform_admin)
    if access.can(minimum):
        return access
    if platform_admin_allowed and user.is_platform_admin:
        return access
    return None


# -- staff: grant, change, remove, invite -------------------------------------------------------


def _agency_by_code(code: str) -> Agency:
    agency = db.session.scalar(select(Agency).where(Agency.code == code))
    if agency is None:
        raise TreasuryError(f"There is no agency with the code {code!r}.")
    return agency


def user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == email.strip().lower(), User.deleted_at.is_(None)))


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise TreasuryError(f"{role!r} is not a role; use one of {', '.join(ROLES)}.")


def grant_role(user: User, agency: Agency, role: str) -> StaffMembership:
    """Give the person ``role`` in the agency (a new membership, or a changed one)."""
    _check_role(role)
    membership = db.session.scalar(
        select(StaffMembership).where(StaffMembership.user_id == user.id, StaffMembership.agency_id == agency.id)
    )
    if membership is None:
        membership = StaffMembership(user_id=user.id, agency_id=agency.id, role=role, created_at=utcnow())
        db.session.add(membership)
        record("staff.grant", agency_id=agency.id, subject=user.email, details={"role": role})
    elif membership.role != role:
        _keep_an_administrator(membership, role)
        record(
            "staff.role_change", agency_id=agency.id, subject=user.email, details={"from": membership.role, "to": role}
        )
        membership.role = role
    db.session.flush()
    log.info("User %s now has the %s role in %s", user.id, role, agency.code)
    return membership


def grant_by_email(email: str, agency_code: str, role: str) -> StaffMembership:
    """`flask treasury grant`: the account with this address gets the role in the agency."""
    user = user_by_email(email)
    if user is None:
        raise TreasuryError(f"There is no account with the address {email}; invite it from the staff page instead.")
    return grant_role(user, _agency_by_code(agency_code), role)


def revoke_by_email(email: str, agency_code: str) -> bool:
    """`flask treasury revoke`: remove the person from the agency's staff; False if not a member."""
    user = user_by_email(email)
    agency = _agency_by_code(agency_code)
    if user is None:
        return False
    membership = db.session.scalar(
        select(StaffMembership).where(StaffMembership.user_id == user.id, StaffMembership.agency_id == agency.id)
    )
    if membership is None:
        return False
    remove_member(membership)
    return True


def set_platform_admin(email: str, value: bool = True) -> User:
    """`flask treasury platform-admin`: make (or stop making) the account a platform administrator."""
    user = user_by_email(email)
    if user is None:
        raise TreasuryError(f"There is no account with the address {email}.")
    user.is_platform_admin = value
    record("platform.admin", agency_id=None, subject=user.email, details={"platform_admin": value})
    db.session.flush()
    log.warning("User %s %s a platform administrator", user.id, "is now" if value else "is no longer")
    return user


def _keep_an_administrator(membership: StaffMembership, new_role: str | None) -> None:
    """Refuse to demote or remove the agency's last administrator: nobody could manage staff."""
    if membership.role != "admin" or new_role == "admin":
        return
    admins = db.session.scalar(
        select(func.count())
        .select_from(StaffMembership)
        .where(StaffMembership.agency_id == membership.agency_id, StaffMembership.role == "admin")
    )
    if admins <= 1:
        raise TreasuryError(
            gettext("An agency needs at least one administrator. Make someone else an administrator first.")
        )


def staff_of(agency: Agency) -> Sequence[StaffMembership]:
    """The agency's staff, by e-mail address."""
    return db.session.scalars(
        select(StaffMembership)
        .join(User, User.id == StaffMembership.user_id)
        .where(StaffMembership.agency_id == agency.id)
        .order_by(User.email)
    ).all()


def pending_invitations(agency: Agency) -> Sequence[StaffInvitation]:
    """Invitations of the agency not accepted yet, newest first."""
    return db.session.scalars(
        select(StaffInvitation)
        .where(StaffInvitation.agency_id == agency.id, StaffInvitation.accepted_at.is_(None))
        .order_by(StaffInvitation.created_at.desc(), StaffInvitation.id.desc())
    ).all()


def _agency_membership(agency: Agency, membership_id: int) -> StaffMembership:
    membership = db.session.scalar(
        select(StaffMembership).where(StaffMembership.id == membership_id, StaffMembership.agency_id == agency.id)
    )
    if membership is None:
        raise LookupError(membership_id)
    return membership


def change_member_role(agency: Agency, membership_id: int, role: str) -> StaffMembership:
    """Change a staff member's role in the agency; LookupError if not one of its staff."""
    membership = _agency_membership(agency, membership_id)
    return grant_role(membership.user, agency, role)


def remove_member(membership: StaffMembership) -> None:
    """Take the person off the agency's staff (the last administrator stays)."""
    _keep_an_administrator(membership, None)
    log.info("User %s removed from the staff of agency %s", membership.user_id, membership.agency_id)
    record(
        "staff.revoke", agency_id=membership.agency_id, subject=membership.user.email, details={"role": membership.role}
    )
    db.session.delete(membership)
    db.session.flush()


def remove_agency_member(agency: Agency, membership_id: int) -> None:
    """Remove one of the agency's staff; LookupError if not one of its staff."""
    remove_member(_agency_membership(agency, membership_id))


def revoke_invitation(agency: Agency, invitation_id: int) -> None:
    """Cancel a pending invitation; LookupError if it is not the agency's or already accepted."""
    invitation = db.session.scalar(
        select(StaffInvitation).where(
            StaffInvitation.id == invitation_id,
            StaffInvitation.agency_id == agency.id,
            StaffInvitation.accepted_at.is_(None),
        )
    )
    if invitation is None:
        raise LookupError(invitation_id)
    record("staff.invitation_revoke", agency_id=agency.id, subject=invitation.email, details={"role": invitation.role})
    db.session.delete(invitation)
    db.session.flush()


_INVITATION_SALT = "civicpay.treasury.invitation"


def _invitation_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_INVITATION_SALT)


def _external_url(endpoint: str, **values: Any) -> str:
    public = current_app.config.get("PUBLIC_URL")
    if public:
        return public.rstrip("/") + url_for(endpoint, **values)
    return url_for(endpoint, _external=True, **values)


@dataclass(frozen=True)
class InvitationOutcome:
    """What inviting an address did: "granted" (it had an account) or "invited" (e-mail sent)."""

    status: Literal["granted", "invited"]
    #: False when the e-mail could not be sent (the operator's log says why).
    mailed: bool = True


def invite_staff(agency: Agency, email: str, role: str, invited_by: User) -> InvitationOutcome:
    """Add the address to the agency's staff: at once if it has an account, else by e-mailed link."""
    _check_role(role)
    email = email.strip().lower()
    user = user_by_email(email)
    agency_name = agency.name
    if user is not None and user.email_verified_at is not None:
        record("staff.invite", agency_id=agency.id, subject=email, details={"role": role, "outcome": "granted"})
        grant_role(user, agency, role)
        commit_early("the person is told by e-mail that they are on the staff: that must be true first")
        mailed = _send_staff_mail(
            user.email,
            user.language,
            subject=lambda: gettext(
                "You have been added to the treasury of %(agency)s", agency=agency_name(user.language)
            ),
            paragraphs=lambda: [
                gettext("Hello %(name)s,", name=user.full_name),
                gettext(
                    "%(inviter)s added you to the treasury staff of %(agency)s as: %(role)s.",
                    inviter=invited_by.full_name,
                    agency=agency_name(user.language),
                    role=role_label(role),
                ),
                gettext("Log in to Civic Pay and open the treasury; you will set up a second sign-in step first."),
            ],
            link=_external_url("treasury.index"),
        )
        return InvitationOutcome("granted", mailed)

    invitation = StaffInvitation(
        agency_id=agency.id, email=email, role=role, invited_by_id=invited_by.id, created_at=utcnow()
    )
    db.session.add(invitation)
    record("staff.invite", agency_id=agency.id, subject=email, details={"role": role, "outcome": "invited"})
    commit_early("the invitation must exist before its link is e-mailed")
    token = _invitation_serializer().dumps({"invitation": invitation.id, "email": email})
    link = _external_url("treasury.accept_invitation", token=token)
    language = invited_by.language
    days = current_app.config["TREASURY_INVITATION_MAX_AGE"] // 86400
    mailed = _send_staff_mail(
        email,
        language,
        subject=lambda: gettext("Invitation to the treasury of %(agency)s on Civic Pay", agency=agency_name(language)),
        paragraphs=lambda: [
            gettext(
                "%(inviter)s invites you to the treasury staff of %(agency)s on Civic Pay, as: %(role)s.",
                inviter=invited_by.full_name,
                agency=agency_name(language),
                role=role_label(role),
            ),
            gettext(
                "If you have no Civic Pay account yet, create one with this e-mail address first. "
                "Then log in and open this link to accept (it works for %(days)s days):",
                days=days,
            ),
        ],
        link=link,
    )
    log.info("Invitation %s to agency %s sent by user %s", invitation.id, agency.code, invited_by.id)
    return InvitationOutcome("invited", mailed)


def _send_staff_mail(to: str, language: str, *, subject, paragraphs, link: str) -> bool:
    """Compose in ``language`` and send; a failure is logged and reported as False."""
    with force_locale(language):
        mail_subject = subject()
        texts = paragraphs()
        html = render_template("treasury/email.html", paragraphs=texts, link=link, language=language)
    body = "\n\n".join([*texts, link, "Civic Pay"]) + "\n"
    try:
        send_mail(to, mail_subject, body, html)
    except MailDeliveryError as error:
        log.error("Could not send a treasury staff e-mail: %s", error)
        return False
    return True


@dataclass(frozen=True)
class InvitationCheck:
    """An invitation link as read: "valid", "expired", "used", "invalid" or "wrong_account"."""

    status: Literal["valid", "expired", "used", "invalid", "wrong_account"]
    invitation: StaffInvitation | None = None


def check_invitation(token: str, user: User) -> InvitationCheck:
    """Whether the logged-in person can accept the invitation of this link."""
    serializer = _invitation_serializer()
    try:
        payload = serializer.loads(token, max_age=current_app.config["TREASURY_INVITATION_MAX_AGE"])
    except SignatureExpired:
        return InvitationCheck("expired")
    except BadSignature:
        return InvitationCheck("invalid")
    if not isinstance(payload, dict) or not isinstance(payload.get("invitation"), int):
        return InvitationCheck("invalid")
    invitation = db.session.get(StaffInvitation, payload["invitation"])
    if invitation is None or invitation.email != payload.get("email"):
        return InvitationCheck("invalid")  # revoked by an administrator
    if invitation.accepted_at is not None:
        return InvitationCheck("used", invitation)
    if invitation.email != user.email:
        return InvitationCheck("wrong_account", invitation)
    return InvitationCheck("valid", invitation)


def accept_invitation(token: str, user: User) -> InvitationCheck:
    """Accept the invitation of the link: the person joins the agency's staff with its role."""
    check = check_invitation(token, user)
    if check.status != "valid" or check.invitation is None:
        return check
    invitation = check.invitation
    claimed = db.session.execute(
        update(StaffInvitation)
        .where(StaffInvitation.id == invitation.id, StaffInvitation.accepted_at.is_(None))
        .values(accepted_at=utcnow())
    ).rowcount
    if not claimed:  # accepted by a second click in the meantime
        db.session.rollback()
        return InvitationCheck("used", invitation)
    existing = db.session.scalar(
        select(StaffMembership.id).where(
            StaffMembership.user_id == user.id, StaffMembership.agency_id == invitation.agency_id
        )
    )
    record(
        "staff.invitation_accept",
        agency_id=invitation.agency_id,
        subject=user.email,
        details={"role": invitation.role},
        actor_user_id=user.id,
    )
    if existing is not None:  # already on the staff: an invitation never changes a role
        return InvitationCheck("valid", invitation)
    try:
        with db.session.begin_nested():  # a savepoint: the race below undoes only the grant
            grant_role(user, invitation.agency, invitation.role)
    except IntegrityError:  # granted by an administrator at the same moment: on the staff either way
        pass
    return InvitationCheck("valid", invitation)


def role_label(role: str) -> str:
    """The role in words."""
    labels = {
        "admin": gettext("Administrator"),
        "refund": gettext("View and refund"),
        "view": gettext("View only"),
    }
    return labels.get(role, role)


# -- demo ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoStaff:
    """A demo treasury administrator: public password, and the TOTP secret for an authenticator."""

    email: str
    password: str
    agency_code: str
    totp_secret: str


DEMO_STAFF_PASSWORD = "demo-treasury-2026"


def ensure_demo_staff(agencies: Sequence[Agency]) -> list[DemoStaff]:
    """One administrator per demo agency, enrolled in TOTP already (safe to repeat)."""
    from app.accounts.services import ensure_user

    staff = []
    for agency in agencies:
        email = f"treasury-{agency.code}@example.org"
        user, _created = ensure_user(
            email=email,
            password=DEMO_STAFF_PASSWORD,
            full_name=f"Treasury {agency.name_en}",
            language="el",
            tax_ids=[],
        )
        if user.totp_secret is None or user.totp_confirmed_at is None:
            user.totp_secret = encrypt_secret(pyotp.random_base32())
            user.totp_confirmed_at = utcnow()
            db.session.flush()
        grant_role(user, agency, "admin")
        staff.append(DemoStaff(email, DEMO_STAFF_PASSWORD, agency.code, decrypt_secret(user.totp_secret)))
    return staff
