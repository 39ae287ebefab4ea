"""Treasury staff: who may see which agency's payments, their recovery codes and invitations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.accounts.models import User
from app.agencies.models import Agency
from app.db import Base, UTCDateTime, utcnow
from app.payments.models import Payment, PaymentLine

#: Roles of a staff member in one agency, weakest first (after GOV.UK Pay's): "view" sees the
#: payments and exports them, "refund" may also refund, "admin" may also manage staff and settings.
ROLES = ("view", "refund", "admin")


def role_at_least(role: str, minimum: str) -> bool:
    """Whether ``role`` grants everything ``minimum`` does."""
    return ROLES.index(role) >= ROLES.index(minimum)


class StaffMembership(Base):
    """A person's role in one agency's treasury; a person may belong to several agencies."""

    __tablename__ = "staff_memberships"
    __table_args__ = (
        UniqueConstraint("user_id", "agency_id"),
        CheckConstraint(f"role IN {ROLES!r}", name="role_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="CASCADE"), index=True)
    #: One of ROLES.
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship()
    agency: Mapped[Agency] = relationship()


class StaffRecoveryCode(Base):
    """A one-time code that stands in for the authenticator; only an argon2 hash of it is kept."""

    __tablename__ = "staff_recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: argon2id hash of the normalised code (lower case, no dashes); never the code. A code made
    #: before argon2 holds "sha256+" and argon2id of its old SHA-256 hex, or, until its owner next
    #: passes the second factor, that bare SHA-256 hex (app.treasury.access.second_factor).
    code_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: When it was used; a used code never works again.
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class StaffInvitation(Base):
    """An e-mailed invitation to join an agency's staff, for an address with no account yet."""

    __tablename__ = "staff_invitations"
    __table_args__ = (CheckConstraint(f"role IN {ROLES!r}", name="role_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="CASCADE"), index=True)
    #: Lower case; only an account with this address can accept.
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(16))
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Set once accepted; the link then stops working.
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    agency: Mapped[Agency] = relationship()


# The history pages payments newest first by (created_at, id) and finds an agency's payments
# through their lines: these two indexes keep page 10 000 as fast as page 1. They are declared
# here, beside the queries that need them, rather than in the payments package.
Index("ix_payments_created_at_id", Payment.created_at, Payment.id)
Index("ix_payment_lines_agency_id_payment_id", PaymentLine.agency_id, PaymentLine.payment_id)
