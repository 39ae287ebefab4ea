"""Failed guest look-ups per payment code, kept in the database so a lock survives a restart."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, utcnow


class GuestLookupFailure(Base):
    """Wrong second factors typed for one payment code, and the lock they led to.

    Codes that match no debt get a row too: a locked code must look the same whether or not
    it exists. The code itself is not stored, only its SHA-256.
    """

    __tablename__ = "guest_lookup_failures"
    __table_args__ = (CheckConstraint("failures >= 0", name="failures_not_negative"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: SHA-256 (hex) of the normalised payment code.
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: Failed look-ups since the last success or the end of the last lock, >= 0.
    failures: Mapped[int] = mapped_column(Integer, default=0)
    #: Until when every look-up of the code is refused; null when not locked.
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_failed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
