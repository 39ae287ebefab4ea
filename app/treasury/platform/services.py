"""Platform administration: the agencies on the portal, adding one with its first administrator.

Platform administrators (``users.is_platform_admin``, named with `flask treasury platform-admin`)
run the portal for every agency: they add agencies and manage staff, and read the audit entries
of the platform; they do not read an agency's payments (see ``access.services.membership_for``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import and_, func, select
from sqlalchemy.exc import IntegrityError

from app.accounts.models import User
from app.agencies.models import Agency
from app.audit.services import record
from app.extensions import db
from app.i18n import gettext
from app.outbox.models import OutboxMessage
from app.sync.models import QuarantinedRecord
from app.treasury.access.services import InvitationOutcome, TreasuryError, invite_staff
from app.treasury.models import StaffInvitation, StaffMembership

log = logging.getLogger("civicpay.treasury")

#: An agency code: lower-case Latin letters, digits and inner hyphens, 2 to 40 characters.
AGENCY_CODE = re.compile(r"[a-z][a-z0-9-]{0,38}[a-z0-9]")
#: First path segments of treasury pages that are not agencies: no agency may take them.
RESERVED_CODES = frozenset({"platform", "2fa", "invitations"})
#: A new agency pulls nothing until its ERP connector is configured (`flask erp configure`).
NEW_AGENCY_CONNECTOR = {"type": "push"}


@dataclass(frozen=True)
class AgencyOverview:
    """An agency as the platform sees it: its staff and what waits for someone."""

    agency: Agency
    staff: int
    administrators: int
    pending_invitations: int
    open_quarantine: int
    dead_messages: int


def agencies_overview() -> list[AgencyOverview]:
    """Every agency, by code, with the counts the platform's agencies page shows."""

    def counts(statement) -> dict[int, int]:
        return {agency_id: count for agency_id, count in db.session.execute(statement)}

    staff = counts(select(StaffMembership.agency_id, func.count()).group_by(StaffMembership.agency_id))
    admins = counts(
        select(StaffMembership.agency_id, func.count())
        .where(StaffMembership.role == "admin")
        .group_by(StaffMembership.agency_id)
    )
    invitations = counts(
        select(StaffInvitation.agency_id, func.count())
        .where(StaffInvitation.accepted_at.is_(None))
        .group_by(StaffInvitation.agency_id)
    )
    quarantine = counts(
        select(QuarantinedRecord.agency_id, func.count())
        .where(QuarantinedRecord.status == "open")
        .group_by(QuarantinedRecord.agency_id)
    )
    dead = counts(
        select(OutboxMessage.agency_id, func.count())
        .where(and_(OutboxMessage.status == "dead", OutboxMessage.agency_id.is_not(None)))
        .group_by(OutboxMessage.agency_id)
    )
    return [
        AgencyOverview(
            agency,
            staff.get(agency.id, 0),
            admins.get(agency.id, 0),
            invitations.get(agency.id, 0),
            quarantine.get(agency.id, 0),
            dead.get(agency.id, 0),
        )
        for agency in db.session.scalars(select(Agency).order_by(Agency.code))
    ]


def agency_codes() -> dict[int, str]:
    """Every agency's code by its id (the platform's audit page and export)."""
    return {agency_id: code for agency_id, code in db.session.execute(select(Agency.id, Agency.code))}


def code_problem(code: str) -> str | None:
    """Why ``code`` cannot be a new agency's code, in a sentence; None if it can."""
    if not AGENCY_CODE.fullmatch(code):
        return gettext(
            "Use 2 to 40 lower-case Latin letters, digits and hyphens, starting with a letter, like eastcoast-water."
        )
    if code in RESERVED_CODES:
        return gettext("This code is used by the treasury's own pages; choose another.")
    if db.session.scalar(select(Agency.id).where(Agency.code == code)) is not None:
        return gettext("An agency with this code already exists.")
    return None


def known_timezone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone, like Europe/Athens."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return "/" in name or name == "UTC"


@dataclass(frozen=True)
class NewAgency:
    """An agency just added, and what inviting its first administrator did."""

    agency: Agency
    invitation: InvitationOutcome


def create_agency(
    *,
    code: str,
    name_el: str,
    name_en: str,
    timezone: str,
    currency: str,
    admin_email: str,
    created_by: User,
) -> NewAgency:
    """Add an agency and invite its first administrator, in one transaction with its audit entry.

    The agency starts push-only (it pulls from no ERP until `flask erp configure` points it at
    one). The invitation goes through the staff invitation service: an account that exists joins
    at once, any other address is e-mailed a link. TreasuryError (a sentence) if the code is taken.
    """
    code = code.strip().lower()
    problem = code_problem(code)
    if problem is not None:
        raise TreasuryError(problem)
    agency = Agency(
        code=code,
        name_el=name_el.strip(),
        name_en=name_en.strip(),
        timezone=timezone,
        currency=currency.upper(),
        connector=dict(NEW_AGENCY_CONNECTOR),
    )
    db.session.add(agency)
    try:
        db.session.flush()
    except IntegrityError:  # the same code added at the same moment by someone else
        db.session.rollback()
        raise TreasuryError(gettext("An agency with this code already exists.")) from None
    admin_email = admin_email.strip().lower()
    record(
        "platform.agency_create",
        agency_id=agency.id,
        subject=code,
        details={
            "name_el": agency.name_el,
            "name_en": agency.name_en,
            "timezone": timezone,
            "currency": agency.currency,
            "administrator": admin_email,
        },
        actor_user_id=created_by.id,
    )
    # invite_staff commits early, before it e-mails: the agency, this entry and the invitation (or
    # membership) together.
    outcome = invite_staff(agency, admin_email, "admin", created_by)
    log.warning("agency %s added by platform administrator %s", code, created_by.id)
    return NewAgency(agency, outcome)
