"""Treasury: staff access and roles, the staff's second factor, invitations, payment history, export.

Agency scope is decided here and only here (``membership_for``): a view asks for the agency by
code and gets nothing unless the current person holds a role good enough in it. Payments are
always read *through* the agency: a payment appears only if it has a line of the agency, and
only that agency's lines and amounts are ever read for it.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import logging
import re
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import IO, Any, Literal
from zoneinfo import ZoneInfo

import pyotp
import segno
from flask import current_app, render_template, url_for
from flask_babel import force_locale
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from markupsafe import Markup
from sqlalchemy import (
    BigInteger,
    Numeric,
    Select,
    Text,
    and_,
    case,
    cast,
    exists,
    func,
    join,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError

from app.accounts.models import User
from app.agencies.models import Agency
from app.audit.models import AuditEntry
from app.audit.services import record
from app.catalog.models import CatalogItem
from app.db import UTCDateTime, utcnow
from app.debts.models import Debt, Debtor, Installment
from app.domain.money import Money, minor_unit_exponent
from app.domain.withholdings import DEFAULT_KEY, LineSplit, Withholding, split_line, withholdings_for_kind
from app.encryption import encrypt_secret, decrypt_secret
from app.extensions import db
from app.i18n import gettext
from app.mail import MailDeliveryError, send_mail
from app.outbox.models import OutboxMessage
from app.erp_writeback.handlers import TOPIC_ERP_PAYMENT_ACK, TOPIC_ERP_REFUND_ACK, TOPIC_ERP_SALE_ACK
from app.receipts.handlers import TOPIC_RECEIPT_EMAIL
from app.payments.models import Payment, PaymentLine, ProviderCharge, Refund
from app.treasury.models import ROLES, StaffInvitation, StaffMembership, StaffRecoveryCode, role_at_least

log = logging.getLogger("civicpay.treasury")

#: Issuer shown by authenticator apps next to the account name.
TOTP_ISSUER = "Civic Pay Treasury"
RECOVERY_CODE_COUNT = 10


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


# -- the second factor --------------------------------------------------------------------------


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret)  # RFC 6238 defaults: SHA-1, 6 digits, 30-second steps


def start_totp_enrolment(user: User) -> str:
    """The secret the person is enrolling with: created once and kept (encrypted) until confirmed.

    Reloading the set-up page shows the same secret, so a code already scanned keeps working.
    """
    if user.totp_confirmed_at is not None:
        raise TreasuryError(gettext("Your authenticator is already set up."))
    if user.totp_secret is None:
        user.totp_secret = encrypt_secret(pyotp.random_base32())
        db.session.commit()
    return decrypt_secret(user.totp_secret)


def provisioning_uri(user: User, secret: str) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    return _totp(secret).provisioning_uri(name=user.email, issuer_name=TOTP_ISSUER)


def qr_code_svg(uri: str, title: str) -> Markup:
    """The URI as an inline SVG QR code, titled for screen readers."""
    svg = segno.make(uri, error="m").svg_inline(scale=4, border=2, dark="#000", light="#fff")
    # segno's inline SVG has no accessible name; give it one and say it is an image.
    labelled = svg.replace("<svg ", f'<svg role="img" aria-label="{Markup.escape(title)}" ', 1)
    return Markup(labelled)  # noqa: S704 - segno's own markup plus an escaped label


def _matching_step(secret: str, code: str, now: datetime, after_step: int | None) -> int | None:
    """The time step (now, or one either side for clock drift) whose code this is, if unused."""
    code = re.sub(r"\s", "", code)
    if not re.fullmatch(r"\d{6}", code):
        return None
    totp = _totp(secret)
    current = totp.timecode(now)
    for step in (current - 1, current, current + 1):
        if after_step is not None and step <= after_step:
            continue  # a code is accepted once: a shoulder-surfed or replayed code fails
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _normalise_recovery_code(code: str) -> str:
    return re.sub(r"[\s-]", "", code).lower()


def _hash_recovery_code(code: str) -> str:
    return hashlib.sha256(_normalise_recovery_code(code).encode()).hexdigest()


def _new_recovery_codes(user: User, now: datetime) -> list[str]:
    """Replace the person's recovery codes with new ones; returns them (the only time they exist)."""
    db.session.execute(StaffRecoveryCode.__table__.delete().where(StaffRecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = secrets.token_hex(5)  # 40 bits each; ten of them, each usable once
        codes.append(f"{raw[:5]}-{raw[5:]}")
        db.session.add(StaffRecoveryCode(user_id=user.id, code_hash=_hash_recovery_code(raw), created_at=now))
    return codes


def confirm_totp_enrolment(user: User, code: str, now: datetime) -> list[str] | None:
    """Finish enrolment if ``code`` comes from the new authenticator; returns the recovery codes."""
    if user.totp_secret is None or user.totp_confirmed_at is not None:
        return None
    step = _matching_step(decrypt_secret(user.totp_secret), code, now, None)
    if step is None:
        log.warning("Refused an authenticator set-up code for user %s", user.id)
        return None
    user.totp_confirmed_at = now
    user.totp_last_step = step
    codes = _new_recovery_codes(user, now)
    record("staff.2fa_enrolled", agency_id=None, subject=user.email, actor_user_id=user.id)
    db.session.commit()
    log.info("User %s set up the treasury second factor", user.id)
    return codes


SecondFactorResult = Literal["totp", "recovery_code", "refused"]


def verify_second_factor(user: User, code: str, now: datetime) -> SecondFactorResult:
    """Check a TOTP code, or else a recovery code (which is then used up); log a refusal.

    Neither the code nor any part of it is logged.
    """
    if user.totp_secret is None or user.totp_confirmed_at is None:
        return "refused"
    step = _matching_step(decrypt_secret(user.totp_secret), code, now, user.totp_last_step)
    if step is not None:
        # Compare-and-set, so two requests with the same code cannot both pass.
        claimed = db.session.execute(
            update(User)
            .where(User.id == user.id, or_(User.totp_last_step.is_(None), User.totp_last_step < step))
            .values(totp_last_step=step)
        ).rowcount
        db.session.commit()
        if claimed:
            log.info("User %s passed the treasury second factor", user.id)
            return "totp"
    elif _normalise_recovery_code(code) and re.fullmatch(r"[0-9a-f]{10}", _normalise_recovery_code(code)):
        used = db.session.execute(
            update(StaffRecoveryCode)
            .where(
                StaffRecoveryCode.user_id == user.id,
                StaffRecoveryCode.code_hash == _hash_recovery_code(code),
                StaffRecoveryCode.used_at.is_(None),
            )
            .values(used_at=now)
        ).rowcount
        db.session.commit()
        if used:
            log.warning("User %s passed the treasury second factor with a recovery code", user.id)
            record("staff.2fa_recovery_code_used", agency_id=None, subject=user.email, actor_user_id=user.id)
            db.session.commit()
            return "recovery_code"
    log.warning("Refused a treasury second-factor code for user %s", user.id)
    # Never the code itself: only that one was refused, for whom and from where.
    record("staff.2fa_failed", agency_id=None, subject=user.email, actor_user_id=user.id)
    db.session.commit()
    return "refused"


def remaining_recovery_codes(user: User) -> int:
    """How many unused recovery codes the person has left."""
    return db.session.scalar(
        select(func.count())
        .select_from(StaffRecoveryCode)
        .where(StaffRecoveryCode.user_id == user.id, StaffRecoveryCode.used_at.is_(None))
    ) or 0


def reset_second_factor(user: User) -> None:
    """Forget the person's authenticator and recovery codes: they enrol again at the next sign-in."""
    user.totp_secret = None
    user.totp_confirmed_at = None
    user.totp_last_step = None
    db.session.execute(StaffRecoveryCode.__table__.delete().where(StaffRecoveryCode.user_id == user.id))
    record("staff.2fa_reset", agency_id=None, subject=user.email)
    db.session.commit()
    log.warning("The treasury second factor of user %s was reset", user.id)


# -- staff: grant, change, remove, invite -------------------------------------------------------


def _agency_by_code(code: str) -> Agency:
    agency = db.session.scalar(select(Agency).where(Agency.code == code))
    if agency is None:
        raise TreasuryError(f"There is no agency with the code {code!r}.")
    return agency


def _user_by_email(email: str) -> User | None:
    return db.session.scalar(
        select(User).where(User.email == email.strip().lower(), User.deleted_at.is_(None))
    )


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
        record("staff.role_change", agency_id=agency.id, subject=user.email, details={"from": membership.role, "to": role})
        membership.role = role
    db.session.commit()
    log.info("User %s now has the %s role in %s", user.id, role, agency.code)
    return membership


def grant_by_email(email: str, agency_code: str, role: str) -> StaffMembership:
    """`flask treasury grant`: the account with this address gets the role in the agency."""
    user = _user_by_email(email)
    if user is None:
        raise TreasuryError(f"There is no account with the address {email}; invite it from the staff page instead.")
    return grant_role(user, _agency_by_code(agency_code), role)


def revoke_by_email(email: str, agency_code: str) -> bool:
    """`flask treasury revoke`: remove the person from the agency's staff; False if not a member."""
    user = _user_by_email(email)
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
    user = _user_by_email(email)
    if user is None:
        raise TreasuryError(f"There is no account with the address {email}.")
    user.is_platform_admin = value
    record("platform.admin", agency_id=None, subject=user.email, details={"platform_admin": value})
    db.session.commit()
    log.warning("User %s %s a platform administrator", user.id, "is now" if value else "is no longer")
    return user


def reset_second_factor_by_email(email: str) -> User:
    """`flask treasury reset-2fa`: the person enrols an authenticator again at the next sign-in."""
    user = _user_by_email(email)
    if user is None:
        raise TreasuryError(f"There is no account with the address {email}.")
    reset_second_factor(user)
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
    record("staff.revoke", agency_id=membership.agency_id, subject=membership.user.email, details={"role": membership.role})
    db.session.delete(membership)
    db.session.commit()


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
    db.session.commit()


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
    user = _user_by_email(email)
    agency_name = agency.name
    if user is not None and user.email_verified_at is not None:
        record("staff.invite", agency_id=agency.id, subject=email, details={"role": role, "outcome": "granted"})
        grant_role(user, agency, role)  # commits the audit entry with the membership
        mailed = _send_staff_mail(
            user.email,
            user.language,
            subject=lambda: gettext("You have been added to the treasury of %(agency)s", agency=agency_name(user.language)),
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
    db.session.commit()
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


def _send_staff_mail(to: str, language: str, *, subject, paragraphs, link: str) -> bool:  # noqa: ANN001
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
        db.session.commit()
        return InvitationCheck("valid", invitation)
    try:
        grant_role(user, invitation.agency, invitation.role)
    except IntegrityError:  # granted by an administrator at the same moment
        db.session.rollback()
    return InvitationCheck("valid", invitation)


def role_label(role: str) -> str:
    """The role in words."""
    labels = {
        "admin": gettext("Administrator"),
        "refund": gettext("View and refund"),
        "view": gettext("View only"),
    }
    return labels.get(role, role)


# -- payment history -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentFilters:
    """What the history (and its export) is narrowed to; None means "any"."""

    #: Local dates in the agency's time zone, both inclusive.
    date_from: date | None = None
    date_to: date | None = None
    status: str | None = None
    category: str | None = None
    kind: str | None = None
    #: minor units; compared with the agency's subtotal of the payment, both inclusive.
    amount_min_minor: int | None = None
    amount_max_minor: int | None = None
    #: A tax ID (digits, an EL/GR prefix allowed) or part of the payer's name.
    payer: str | None = None
    #: Compact RF reference of one of the agency's debts in the payment.
    rf_reference: str | None = None
    #: The provider's reference of the charge, or the portal's receipt number.
    reference: str | None = None
    channel: str | None = None


def parse_amount(text: str, currency: str) -> int:
    """Minor units from a typed amount: "12,50", "12.50", "1.234,50" or "1,234.50"; exact, no float.

    The last separator is the decimal mark when it has at most as many digits after it as the
    currency has decimals; any other separator groups thousands. Raises ValueError otherwise
    (and for more decimals than the currency has: an amount is never rounded silently).
    """
    cleaned = re.sub(r"[\s\u00a0\u202f€]", "", text or "")
    if not re.fullmatch(r"\d+(?:[.,]\d+)*", cleaned):
        raise ValueError(text)
    exponent = minor_unit_exponent(currency)
    whole, fraction = cleaned, ""
    marks = re.findall(r"[.,]", cleaned)
    if marks:
        last = max(cleaned.rfind("."), cleaned.rfind(","))
        tail = cleaned[last + 1 :]
        mixed = len(set(marks)) > 1
        if mixed or (len(marks) == 1 and len(tail) != 3):
            whole, fraction = cleaned[:last], tail
            if len(fraction) > exponent or (mixed and cleaned[last] in whole):
                raise ValueError(text)
        groups = re.split(r"[.,]", whole)
        if len(groups) > 1 and not all(len(group) == 3 for group in groups[1:]):
            raise ValueError(text)  # "1.23.4" is no way of writing a number
        if len(groups) > 1 and groups[0].startswith("0"):
            raise ValueError(text)  # "0,505" groups no thousands: it is a decimal with too many places
        whole = "".join(groups)
    minor = Decimal(f"{whole}.{fraction or '0'}").scaleb(exponent)
    return int(minor)  # exact: the fraction has at most ``exponent`` digits


def _agency_subtotal(agency_id: int):  # noqa: ANN202 - a scalar subquery
    return (
        select(func.sum(PaymentLine.amount_minor))
        .where(PaymentLine.payment_id == Payment.id, PaymentLine.agency_id == agency_id)
        .correlate(Payment)
        .scalar_subquery()
    )


def _local_midnight_utc(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filtered_payments(agency: Agency, filters: PaymentFilters) -> Select:
    """Payments with a line of the agency that match the filters, with the agency's subtotal."""
    subtotal = _agency_subtotal(agency.id)
    line_conditions = [PaymentLine.payment_id == Payment.id, PaymentLine.agency_id == agency.id]
    needs_debt = filters.category or filters.kind or filters.rf_reference or filters.payer
    if filters.category:
        line_conditions.append(Debt.category == filters.category)
    if filters.kind:
        line_conditions.append(Debt.kind == filters.kind)
    if filters.rf_reference:
        line_conditions.append(Debt.rf_reference == filters.rf_reference)
    if filters.payer:
        payer = filters.payer.strip()
        tax_id = re.sub(r"^(EL|GR)", "", re.sub(r"\s", "", payer.upper()))
        if tax_id.isdigit():
            line_conditions.append(Debtor.tax_id == tax_id)
        else:
            line_conditions.append(Debtor.name.ilike(f"%{_escape_like(payer)}%", escape="\\"))
    lines = select(PaymentLine.id).where(*line_conditions)
    if needs_debt:
        lines = lines.join(Debt, Debt.id == PaymentLine.debt_id)
    if filters.payer:
        lines = lines.join(Debtor, Debtor.id == Debt.debtor_id)

    statement = select(Payment, subtotal.label("agency_amount_minor")).where(exists(lines.correlate(Payment)))
    zone = ZoneInfo(agency.timezone)
    if filters.date_from:
        statement = statement.where(Payment.created_at >= literal(_local_midnight_utc(filters.date_from, zone), UTCDateTime()))
    if filters.date_to:
        end = _local_midnight_utc(filters.date_to + timedelta(days=1), zone)
        statement = statement.where(Payment.created_at < literal(end, UTCDateTime()))
    if filters.status:
        statement = statement.where(Payment.status == filters.status)
    if filters.channel:
        statement = statement.where(Payment.channel == filters.channel)
    if filters.reference:
        reference = filters.reference.strip()
        statement = statement.where(
            or_(Payment.reference == reference.upper(), Payment.provider_reference == reference)
        )
    if filters.amount_min_minor is not None:
        statement = statement.where(subtotal >= filters.amount_min_minor)
    if filters.amount_max_minor is not None:
        statement = statement.where(subtotal <= filters.amount_max_minor)
    return statement


@dataclass(frozen=True)
class Cursor:
    """A position in the history: the (created_at, id) of a payment, newest first."""

    created_at: datetime
    payment_id: int

    _EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

    def encode(self) -> str:
        """The cursor as a URL value: microseconds since 1970, a dot, the payment id."""
        micros = (self.created_at - self._EPOCH) // timedelta(microseconds=1)
        return f"{micros}.{self.payment_id}"

    @classmethod
    def decode(cls, text: str | None) -> Cursor | None:
        """Read a URL cursor; None for anything malformed."""
        match = re.fullmatch(r"(\d{1,19})\.(\d{1,19})", text or "")
        if not match:
            return None
        try:
            created_at = cls._EPOCH + timedelta(microseconds=int(match.group(1)))
        except OverflowError:
            return None
        return cls(created_at, int(match.group(2)))

    def key(self):  # noqa: ANN201 - a SQL tuple
        return tuple_(literal(self.created_at, UTCDateTime()), literal(self.payment_id))


@dataclass(frozen=True)
class HistoryRow:
    """One payment as the agency sees it: never another agency's amount."""

    payment: Payment
    #: minor units: the sum of this agency's lines of the payment.
    agency_amount_minor: int


@dataclass(frozen=True)
class HistoryPage:
    """One page of the history, with cursors to the pages either side (None at the ends)."""

    rows: list[HistoryRow]
    older: Cursor | None
    newer: Cursor | None


def payment_history(
    agency: Agency,
    filters: PaymentFilters,
    *,
    before: Cursor | None = None,
    after: Cursor | None = None,
    page_size: int | None = None,
) -> HistoryPage:
    """A page of the agency's payments, newest first, by keyset on (created_at, id); no OFFSET.

    ``before`` gives the page of payments older than that cursor; ``after`` the page of payments
    newer than it (read oldest first, then turned round); neither gives the newest page.
    """
    size = page_size or current_app.config["TREASURY_PAGE_SIZE"]
    position = tuple_(Payment.created_at, Payment.id)
    statement = _filtered_payments(agency, filters)
    if after is not None:
        statement = statement.where(position > after.key()).order_by(Payment.created_at.asc(), Payment.id.asc())
    else:
        if before is not None:
            statement = statement.where(position < before.key())
        statement = statement.order_by(Payment.created_at.desc(), Payment.id.desc())
    found = db.session.execute(statement.limit(size + 1)).all()
    more = len(found) > size
    rows = [HistoryRow(payment, amount or 0) for payment, amount in found[:size]]
    if after is not None:
        rows.reverse()
    if not rows:
        return HistoryPage([], None, None)
    first, last = rows[0].payment, rows[-1].payment
    has_older = more if after is None else True
    has_newer = (before is not None) if after is None else more
    return HistoryPage(
        rows,
        older=Cursor(last.created_at, last.id) if has_older else None,
        newer=Cursor(first.created_at, first.id) if has_newer else None,
    )


def filter_choices(agency: Agency) -> dict[str, list[str]]:
    """Values the agency's filters can offer: statuses, channels, categories and kinds in use."""
    from app.debts.models import CATEGORIES
    from app.payments.models import PAYMENT_STATUSES

    kinds = db.session.scalars(
        select(Debt.kind).where(Debt.agency_id == agency.id).distinct().order_by(Debt.kind)
    ).all()
    return {
        "statuses": list(PAYMENT_STATUSES),
        "channels": ["account", "guest", "autopay", "api"],
        "categories": list(CATEGORIES),
        "kinds": list(kinds),
    }


# -- one payment ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WriteBack:
    """The ERP write-back of a payment's lines for one agency."""

    #: "pending", "delivered", "dead", or "not_queued" (no message: e.g. the charge failed).
    status: str
    attempts: int = 0
    last_error: str | None = None
    delivered_at: datetime | None = None
    next_attempt_at: datetime | None = None


@dataclass(frozen=True)
class AgencyPayment:
    """A payment seen by one agency: its own lines and subtotal only."""

    payment: Payment
    lines: list[PaymentLine]
    amount_minor: int
    #: Write-back state per line id.
    write_back: dict[int, WriteBack] = field(default_factory=dict)
    #: Per line id: the line split into the agency's withholdings and what the agency keeps.
    withholdings: dict[int, LineSplit] = field(default_factory=dict)
    #: What happened to the payment, oldest first, as this agency may see it.
    timeline: list[TimelineEvent] = field(default_factory=list)


@dataclass(frozen=True)
class TimelineEvent:
    """One moment in a payment's life: ``kind`` names it for the page, ``details`` fill its sentence."""

    at: datetime
    kind: str
    details: dict[str, Any] = field(default_factory=dict)


def payment_timeline(agency: Agency, payment: Payment) -> list[TimelineEvent]:
    """The payment's story for the agency: started, its own card charge at the provider, each status
    change (by whom, or by the system: webhook, reconciler), refunds of its share, the ERP told, the
    receipt e-mailed. Another agency's charge, refunds and ERP messages are left out."""
    events = [TimelineEvent(payment.created_at, "started", {"channel": payment.channel, "provider": payment.provider})]
    for charge in db.session.scalars(
        select(ProviderCharge).where(ProviderCharge.payment_id == payment.id, ProviderCharge.agency_id == agency.id)
    ):
        events.append(TimelineEvent(charge.created_at, "charge_created", {"reference": charge.provider_reference or ""}))
        if charge.status in ("captured", "failed", "canceled") and charge.updated_at is not None:
            events.append(TimelineEvent(charge.updated_at, f"charge_{charge.status}", {"code": charge.failure_code or ""}))
    for entry, actor in db.session.execute(
        select(AuditEntry, User.full_name)
        .outerjoin(User, User.id == AuditEntry.actor_user_id)
        .where(AuditEntry.agency_id == agency.id, AuditEntry.subject == payment.reference, AuditEntry.action == "payment.status")
        .order_by(AuditEntry.at, AuditEntry.id)
    ):
        events.append(TimelineEvent(entry.at, "status", {**entry.details, "actor": actor or ""}))
    refund_references = []
    for refund, requested_by in db.session.execute(
        select(Refund, User.full_name)
        .outerjoin(User, User.id == Refund.requested_by_user_id)
        .where(Refund.payment_id == payment.id, Refund.agency_id == agency.id)
        .order_by(Refund.id)
    ):
        refund_references.append(refund.reference)
        details = {"amount_minor": refund.amount_minor, "status": refund.status, "reference": refund.reference}
        events.append(TimelineEvent(refund.created_at, "refund", {**details, "actor": requested_by or ""}))
    keys = [f"{TOPIC_ERP_PAYMENT_ACK}:{payment.reference}:{agency.code}"]
    keys += [f"{TOPIC_ERP_SALE_ACK}:{payment.reference}:{line_id}" for line_id in db.session.scalars(
        select(PaymentLine.id).where(PaymentLine.payment_id == payment.id, PaymentLine.agency_id == agency.id)
    )]
    keys += [f"{TOPIC_ERP_REFUND_ACK}:{reference}" for reference in refund_references]
    for message in db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.key.in_(keys), OutboxMessage.agency_id == agency.id)
    ):
        if message.status == "delivered" and message.delivered_at is not None:
            events.append(TimelineEvent(message.delivered_at, "erp_recorded", {"topic": message.topic}))
        elif message.status == "dead":
            events.append(TimelineEvent(message.next_attempt_at, "erp_failed", {"topic": message.topic}))
    receipt = db.session.scalar(select(OutboxMessage).where(OutboxMessage.key == f"{TOPIC_RECEIPT_EMAIL}:{payment.reference}"))
    if receipt is not None and receipt.status == "delivered" and receipt.delivered_at is not None:
        events.append(TimelineEvent(receipt.delivered_at, "receipt_sent"))
    return sorted(events, key=lambda event: event.at)


def _line_kind(line: PaymentLine) -> str:
    """The kind a line's withholdings follow: its debt's kind, or the kind of the item sold."""
    if line.debt is not None:
        return line.debt.kind
    return line.item.kind if line.item is not None else ""


def agency_payment(agency: Agency, reference: str) -> AgencyPayment | None:
    """The payment with this receipt number as the agency sees it; None unless it has a line of it."""
    payment = db.session.scalar(
        select(Payment).where(
            Payment.reference == reference.strip().upper(),
            exists().where(PaymentLine.payment_id == Payment.id, PaymentLine.agency_id == agency.id),
        )
    )
    if payment is None:
        return None
    lines = list(
        db.session.scalars(
            select(PaymentLine)
            .where(PaymentLine.payment_id == payment.id, PaymentLine.agency_id == agency.id)
            .order_by(PaymentLine.id)
        )
    )
    message = db.session.scalar(
        select(OutboxMessage).where(
            OutboxMessage.key == f"{TOPIC_ERP_PAYMENT_ACK}:{payment.reference}:{agency.code}",
            OutboxMessage.agency_id == agency.id,
        )
    )
    write_back: dict[int, WriteBack] = {}
    acknowledged: set[str] = set()
    if message is not None:
        acknowledged = {str(line.get("line_id")) for line in message.payload.get("lines", [])}
    sales = {
        sale.key: sale
        for sale in db.session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.key.in_(
                    [f"{TOPIC_ERP_SALE_ACK}:{payment.reference}:{line.id}" for line in lines if line.item_id is not None]
                ),
                OutboxMessage.agency_id == agency.id,
            )
        )
    }
    for line in lines:
        sale = sales.get(f"{TOPIC_ERP_SALE_ACK}:{payment.reference}:{line.id}")
        if sale is not None:  # an item sold is told to the ERP by a message of its own
            write_back[line.id] = WriteBack(sale.status, sale.attempts, sale.last_error, sale.delivered_at, sale.next_attempt_at)
        elif message is not None and f"{payment.reference}:{line.id}" in acknowledged:
            write_back[line.id] = WriteBack(
                message.status, message.attempts, message.last_error, message.delivered_at, message.next_attempt_at
            )
        else:
            write_back[line.id] = WriteBack("not_queued")
    split = _line_splitter(agency)
    # An item sold is withheld from by its kind ("ticket", "donation"), as a debt by its own.
    withholdings = {line.id: split(_line_kind(line), line.amount_minor) for line in lines}
    return AgencyPayment(
        payment, lines, sum(line.amount_minor for line in lines), write_back, withholdings, payment_timeline(agency, payment)
    )


# -- CSV export -------------------------------------------------------------------------------------


def csv_header() -> list[str]:
    """The export's column titles, in the request's language."""
    return [
        gettext("Date"),
        gettext("Receipt number"),
        gettext("Status"),
        gettext("Channel"),
        gettext("Provider"),
        gettext("Provider reference"),
        gettext("Card last four digits"),
        gettext("Debt ID"),
        gettext("RF reference"),
        gettext("Category"),
        gettext("Kind"),
        gettext("Installment"),
        gettext("Payer tax ID"),
        gettext("Payer name"),
        gettext("Principal"),
        gettext("Surcharge"),
        gettext("Amount"),
        gettext("Withheld"),
        gettext("Net to agency"),
        gettext("Currency"),
    ]


def _decimal_text(amount_minor: int, currency: str, decimal_mark: str) -> str:
    """Minor units as the export writes them: "1234.50" (or "1234,50"), the currency's decimals."""
    text = str(Money(amount_minor, currency).to_decimal())
    return text.replace(".", decimal_mark)


def export_rows(agency: Agency, filters: PaymentFilters, batch_size: int | None = None) -> Iterator[list[list[Any]]]:
    """The agency's lines of the filtered payments, newest payment first, a batch at a time.

    Each row has the columns of ``csv_header``: the date as a naive datetime in the agency's
    time zone, amounts as ints of minor units, the installment number as an int (or None), and
    text everywhere else (None where a line has no debt); each export writes these values its
    own way. "Withheld" and "Net to agency" split the line by the agency's withholdings for the
    debt's kind (they add up to it).

    Payments are read by keyset in batches, and each batch's lines in one more query, as plain
    tuples (never ORM objects): the memory used does not grow with the number of rows.
    """
    size = batch_size or current_app.config["TREASURY_EXPORT_BATCH_SIZE"]
    zone = ZoneInfo(agency.timezone)
    split = _line_splitter(agency)
    base = _filtered_payments(agency, filters).with_only_columns(
        Payment.id, Payment.created_at, maintain_column_froms=True
    )
    position = tuple_(Payment.created_at, Payment.id)
    cursor: Cursor | None = None
    while True:
        statement = base
        if cursor is not None:
            statement = statement.where(position < cursor.key())
        batch = db.session.execute(
            statement.order_by(Payment.created_at.desc(), Payment.id.desc()).limit(size)
        ).all()
        if not batch:
            return
        order = {payment_id: index for index, (payment_id, _created) in enumerate(batch)}
        lines = db.session.execute(
            select(
                PaymentLine.payment_id,
                Payment.created_at,
                Payment.reference,
                Payment.status,
                Payment.channel,
                Payment.provider,
                Payment.provider_reference,
                Payment.card_last4,
                _line_code.label("external_id"),
                Debt.rf_reference,
                Debt.category,
                _line_kind_column.label("kind"),
                Installment.number,
                Debtor.tax_id,
                Debtor.name,
                PaymentLine.principal_minor,
                PaymentLine.surcharge_minor,
                PaymentLine.amount_minor,
                PaymentLine.id,
            )
            .select_from(PaymentLine)
            .join(Payment, Payment.id == PaymentLine.payment_id)
            # Outer joins: a line is a debt or a catalog item.
            .outerjoin(Debt, Debt.id == PaymentLine.debt_id)
            .outerjoin(CatalogItem, CatalogItem.id == PaymentLine.item_id)
            .outerjoin(Debtor, Debtor.id == Debt.debtor_id)
            .outerjoin(Installment, Installment.id == PaymentLine.installment_id)
            .where(PaymentLine.payment_id.in_(list(order)), PaymentLine.agency_id == agency.id)
        ).all()
        lines = sorted(lines, key=lambda row: (order[row.payment_id], row.id))
        yield [_export_row(row, zone, split, agency.currency) for row in lines]
        last_id, last_created = batch[-1]
        cursor = Cursor(last_created, last_id)
        if len(batch) < size:
            return


def _export_row(row: Any, zone: ZoneInfo, split: Callable[[str | None, int], LineSplit], currency: str) -> list[Any]:
    """One line of the export, in the columns of ``csv_header``."""
    parts = split(row.kind, row.amount_minor)
    return [
        row.created_at.astimezone(zone).replace(tzinfo=None),
        row.reference,
        row.status,
        row.channel,
        row.provider,
        row.provider_reference or "",
        row.card_last4 or "",
        row.external_id or "",
        row.rf_reference or "",
        row.category or "",
        row.kind or "",
        row.number,
        row.tax_id or "",
        row.name or "",
        row.principal_minor,
        row.surcharge_minor,
        row.amount_minor,
        parts.withheld_minor,
        parts.remainder_minor,
        currency,
    ]


def _line_splitter(agency: Agency) -> Callable[[str | None, int], LineSplit]:
    """Split a line of a kind by the agency's withholdings, reading each kind's list once.

    A line without a kind (not a debt) takes the "default" list, as an unlisted kind does.
    """
    settings = dict(agency.withholdings or {})
    currency = agency.currency
    by_kind: dict[str | None, list[Withholding]] = {}

    def split(kind: str | None, amount_minor: int) -> LineSplit:
        if kind not in by_kind:
            by_kind[kind] = withholdings_for_kind(settings, DEFAULT_KEY if kind is None else kind)
        return split_line(amount_minor, currency, by_kind[kind])

    return split


ExportMethod = Literal["auto", "python", "copy"]


def export_csv(
    agency: Agency, filters: PaymentFilters, *, semicolon: bool = False, method: ExportMethod = "auto"
) -> Iterator[bytes]:
    """The export as UTF-8 CSV chunks: a byte order mark and the header first, then the rows.

    With ``semicolon`` the columns are separated by ";" and amounts written "12,50", as Excel
    set to Greek reads them; otherwise "," and "12.50". Rows end in CRLF (RFC 4180).

    On PostgreSQL ("auto") the rows are formatted by the database itself and streamed with
    ``COPY ... TO STDOUT`` (``_export_csv_copy``), byte for byte what the Python writer
    (``_export_csv_python``, used on SQLite) writes; ``method`` forces one of them.
    """
    delimiter = ";" if semicolon else ","
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerow(csv_header())
    yield ("\ufeff" + buffer.getvalue()).encode("utf-8")
    if method == "auto":
        method = "copy" if db.session.get_bind().dialect.name == "postgresql" else "python"
    if method == "copy":
        yield from _export_csv_copy(agency, filters, semicolon=semicolon)
    else:
        yield from _export_csv_python(agency, filters, semicolon=semicolon)


def _export_csv_python(agency: Agency, filters: PaymentFilters, *, semicolon: bool) -> Iterator[bytes]:
    """The export's rows written by Python's csv module, one chunk per batch of ``export_rows``."""
    delimiter, decimal_mark = (";", ",") if semicolon else (",", ".")
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    for batch in export_rows(agency, filters):
        for row in batch:
            row[_DATE_COLUMN] = row[_DATE_COLUMN].strftime("%Y-%m-%d %H:%M:%S")
            row[_INSTALLMENT_COLUMN] = "" if row[_INSTALLMENT_COLUMN] is None else str(row[_INSTALLMENT_COLUMN])
            for index in _TEXT_COLUMNS:
                row[index] = _inert(row[index])
            for index in _AMOUNT_COLUMNS:
                row[index] = _decimal_text(row[index], agency.currency, decimal_mark)
            writer.writerow(row)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        yield text.encode("utf-8")


#: A line's identifier and kind in the export: its debt's, or the catalog item's (as ``_line_kind``).
_line_code = func.coalesce(Debt.external_id, CatalogItem.code)
_line_kind_column = func.coalesce(Debt.kind, CatalogItem.kind)

#: Columns of export_rows holding minor units, and those holding text from ERPs or providers.
_AMOUNT_COLUMNS = (14, 15, 16, 17, 18)
_TEXT_COLUMNS = (5, 7, 8, 12, 13)
_DATE_COLUMN = 0
_INSTALLMENT_COLUMN = 11
#: First characters that make a spreadsheet read a cell as a formula (see ``_inert``).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: Their character codes as SQL constants (constants, so the statement needs no expanding parameters).
_FORMULA_START_CODES = [literal_column(str(ord(start))) for start in _FORMULA_STARTS]
#: Bytes the COPY path hands on at once: large enough that a chunk costs little per row.
_COPY_CHUNK_BYTES = 256 * 1024


def _export_copy_statement(agency: Agency, filters: PaymentFilters, *, semicolon: bool) -> Select:
    """The export's rows as one SELECT of text columns, formatted exactly as ``_export_csv_python`` does.

    The payments are ``_filtered_payments`` itself (the history's filter and agency scope, not a
    copy of them); only the agency's lines of them are read. Every column is text or NULL: an
    empty value is NULL, since COPY writes an empty string as "" but NULL as nothing, as Python's
    csv module writes "".
    """
    decimal_mark = "," if semicolon else "."
    exponent = minor_unit_exponent(agency.currency)
    net = _withholdings_net_sql(agency, _line_kind_column, PaymentLine.amount_minor)

    def amount(minor: Any) -> Any:
        value = cast(minor, Numeric)
        if exponent:  # numeric × 0.01 has exactly two decimals, as Decimal.scaleb(-2) has
            value = value * literal_column(str(Decimal(1).scaleb(-exponent)))
        text = cast(value, Text)
        return func.replace(text, ".", decimal_mark) if decimal_mark != "." else text

    def plain(value: Any) -> Any:
        return func.nullif(value, "")

    def inert(value: Any) -> Any:
        # ascii() is the code of the first character: cheaper than taking it as text (1M rows: -0.3 s).
        return func.nullif(
            case((func.ascii(value).in_(_FORMULA_START_CODES), literal("'") + value), else_=value), ""
        )

    local = func.timezone(agency.timezone, func.timezone("UTC", Payment.created_at))
    columns = [
        func.to_char(local, "YYYY-MM-DD HH24:MI:SS"),
        plain(Payment.reference),
        plain(Payment.status),
        plain(Payment.channel),
        plain(Payment.provider),
        inert(Payment.provider_reference),
        plain(Payment.card_last4),
        inert(_line_code),
        inert(Debt.rf_reference),
        plain(Debt.category),
        plain(_line_kind_column),
        cast(Installment.number, Text),
        inert(Debtor.tax_id),
        inert(Debtor.name),
        amount(PaymentLine.principal_minor),
        amount(PaymentLine.surcharge_minor),
        amount(PaymentLine.amount_minor),
        amount(PaymentLine.amount_minor - net),
        amount(net),
        plain(literal(agency.currency, Text)),
    ]
    lines = (
        join(Payment, PaymentLine, and_(PaymentLine.payment_id == Payment.id, PaymentLine.agency_id == agency.id))
        .outerjoin(Debt, Debt.id == PaymentLine.debt_id)
        .outerjoin(CatalogItem, CatalogItem.id == PaymentLine.item_id)
        .outerjoin(Debtor, Debtor.id == Debt.debtor_id)
        .outerjoin(Installment, Installment.id == PaymentLine.installment_id)
    )
    return (
        _filtered_payments(agency, filters)
        .with_only_columns(*columns, maintain_column_froms=False)
        .select_from(lines)
        .order_by(Payment.created_at.desc(), Payment.id.desc(), PaymentLine.id.asc())
    )


def _withholdings_net_sql(agency: Agency, kind: Any, amount_minor: Any) -> Any:
    """SQL for what the agency keeps of a line (``split_line``'s remainder), as a bigint.

    Each share takes at most what is left, so what is left after the shares in order is
    ``greatest(greatest(amount - w1, 0) - w2, 0) ...``, where a percentage share is the line's
    amount times the rate, rounded half up. With the rate written N / D exactly (2.5 % is
    25 / 1000), that is ``(2 * amount * N + D) / (2 * D)`` in bigint integer division, which
    floors: exact, and cheaper than numeric; rates with more than six decimals use numeric.
    """
    settings = dict(agency.withholdings or {})
    amount = cast(amount_minor, BigInteger)

    def share(percent: Decimal) -> Any:
        places = max(0, -int(percent.as_tuple().exponent))
        if places > 6:  # 2 * (2^31) * N could pass the bigint range: numeric, rounded half away from 0
            return func.round(cast(amount_minor, Numeric) * literal_column(str(percent.scaleb(-2))))
        numerator, denominator = int(percent.scaleb(places)), 100 * 10**places
        doubled = 2 * amount * literal_column(str(numerator)) + literal_column(str(denominator))
        return doubled // literal_column(str(2 * denominator), BigInteger)  # integer division

    def remainder(withholdings: list[Withholding]) -> Any:
        left = amount
        for withholding in withholdings:
            if withholding.percent is not None:
                wanted = share(withholding.percent)
            else:
                wanted = literal_column(str(int(withholding.fixed_minor or 0)))
            left = func.greatest(left - wanted, 0)
        return cast(left, BigInteger)

    default = remainder(withholdings_for_kind(settings, DEFAULT_KEY))
    listed = [(kind == literal(name, Text), remainder(withholdings_for_kind(settings, name)))
              for name in sorted(settings) if name != DEFAULT_KEY]  # fmt: skip
    return case(*listed, else_=default) if listed else default


def _export_csv_copy(agency: Agency, filters: PaymentFilters, *, semicolon: bool) -> Iterator[bytes]:
    """The export's rows from PostgreSQL's ``COPY (SELECT ...) TO STDOUT``, in chunks of about 256 KB.

    COPY ends rows in LF and has no option for CRLF, so each LF outside a quoted value (a row's
    end; an LF inside a value stays) is turned into CRLF here. Quotes toggle "inside a value"
    (a doubled quote toggles twice), so counting them across chunks finds which LF is which.
    The COPY runs on the session's own connection and transaction.
    """
    connection = db.session.connection()
    dialect = connection.dialect
    compiled = _export_copy_statement(agency, filters, semicolon=semicolon).compile(
        dialect=dialect, compile_kwargs={"render_postcompile": True}
    )
    params = {}
    for name, value in compiled.params.items():
        processor = compiled.binds[name].type.bind_processor(dialect)
        params[name] = processor(value) if processor else value
    delimiter = ";" if semicolon else ","
    statement = f"COPY ({compiled.string}) TO STDOUT WITH (FORMAT csv, DELIMITER '{delimiter}', HEADER false, ENCODING 'UTF8')"
    # The statement is costly enough for PostgreSQL to JIT-compile it, per parallel worker: seconds
    # of compiling (2.1 s of a 1M-row export) to run simple expressions once each. Off for this
    # transaction only.
    connection.exec_driver_sql("SET LOCAL jit = off")
    driver = connection.connection.driver_connection
    inside_quotes = False
    pending = bytearray()
    with driver.cursor() as cursor, cursor.copy(statement, params) as copy:
        for block in copy:
            pending += block
            if len(pending) >= _COPY_CHUNK_BYTES:
                chunk, inside_quotes = _crlf_rows(bytes(pending), inside_quotes)
                pending.clear()
                yield chunk
    if pending:
        yield _crlf_rows(bytes(pending), inside_quotes)[0]


def _crlf_rows(data: bytes, inside_quotes: bool) -> tuple[bytes, bool]:
    """``data`` with each LF outside quotes made CRLF; and whether it ends inside quotes."""
    if b'"' not in data:
        return (data if inside_quotes else data.replace(b"\n", b"\r\n")), inside_quotes
    parts = data.split(b'"')
    start = 1 if inside_quotes else 0  # parts[start::2] lie outside quotes
    parts[start::2] = [part.replace(b"\n", b"\r\n") for part in parts[start::2]]
    return b'"'.join(parts), inside_quotes != (len(parts) % 2 == 0)


def export_xlsx(agency: Agency, filters: PaymentFilters, target: IO[bytes]) -> int:
    """Write the export as an XLSX workbook to ``target``; returns the number of lines written.

    The rows are those of ``export_rows`` (the CSV's, column for column). XlsxWriter's
    constant-memory mode flushes each row to a temporary file as it is written, so memory does
    not grow with the export. Dates are Excel dates in the agency's time zone, amounts numbers
    with the currency's decimals, and text is always written as text, so a name like
    "=HYPERLINK(...)" from an ERP stays a name and never becomes a formula.
    """
    import xlsxwriter

    decimals = minor_unit_exponent(agency.currency)
    amount_pattern = "#,##0" + ("." + "0" * decimals if decimals else "") + f' "{agency.currency}"'
    workbook = xlsxwriter.Workbook(
        target,
        {"constant_memory": True, "strings_to_numbers": False, "strings_to_formulas": False, "strings_to_urls": False},
    )
    try:
        sheet = workbook.add_worksheet(gettext("Payments")[:31])
        bold = workbook.add_format({"bold": True})
        date_format = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        amount_format = workbook.add_format({"num_format": amount_pattern})
        header = csv_header()
        sheet.set_column(_DATE_COLUMN, _DATE_COLUMN, 19)
        sheet.set_column(1, len(header) - 1, 16)
        sheet.freeze_panes(1, 0)
        for column, title in enumerate(header):
            sheet.write_string(0, column, title, bold)
        row_number = 0
        for batch in export_rows(agency, filters):
            for row in batch:
                row_number += 1
                for column, value in enumerate(row):
                    if column == _DATE_COLUMN:
                        sheet.write_datetime(row_number, column, value, date_format)
                    elif column in _AMOUNT_COLUMNS:
                        # Excel keeps numbers as binary floating point; the Decimal is exact up to here.
                        sheet.write_number(row_number, column, Money(value, agency.currency).to_decimal(), amount_format)
                    elif column == _INSTALLMENT_COLUMN:
                        if value is not None:
                            sheet.write_number(row_number, column, value)
                    else:
                        sheet.write_string(row_number, column, value)
    finally:
        workbook.close()
    return row_number


def _inert(text: str) -> str:
    """Text a spreadsheet will not run as a formula (OWASP's CSV injection advice): '=1+1 stays text."""
    return "'" + text if text[:1] in _FORMULA_STARTS else text


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
            db.session.commit()
        grant_role(user, agency, "admin")
        staff.append(DemoStaff(email, DEMO_STAFF_PASSWORD, agency.code, decrypt_secret(user.totp_secret)))
    return staff
