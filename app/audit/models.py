"""The audit log table: rows are written once and never changed or deleted.

The ORM refuses changes (app.audit.events) and so does the database itself: migration 0011 puts
triggers on the table that refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL), except the one
update a foreign key makes when an actor's account row is deleted (``actor_user_id`` set null).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, utcnow


class AuditEntry(Base):
    """Who did what, when, from where, to which subject of which agency."""

    __tablename__ = "audit_entries"
    __table_args__ = (
        # The audit page lists one agency's entries newest first, by keyset on (at, id).
        Index("ix_audit_entries_agency_id_at_id", "agency_id", "at", "id"),
        # The platform's audit page lists every agency's entries newest first, by the same keyset.
        Index("ix_audit_entries_at_id", "at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: When it happened, UTC.
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: The person who acted; null for the system (a webhook, the worker) or an erased account.
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    #: The agency concerned; null for actions outside any agency (e.g. setting up 2FA).
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))
    #: Dotted name of what happened: "staff.invite", "settings.update", "payment.status", ...
    action: Mapped[str] = mapped_column(String(64), index=True)
    #: What it happened to: a payment reference, an e-mail address, an agency code.
    subject: Mapped[str | None] = mapped_column(String(254))
    #: The particulars (old and new values); never a secret, a code or a password.
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: The client address of the request, when there was one (IPv6 fits in 45 characters).
    ip_address: Mapped[str | None] = mapped_column(String(45))
