"""Citizen accounts and the tax IDs they have proven are theirs."""

from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, UTCDateTime, utcnow


class User(UserMixin, Base):
    """A citizen with an account on the portal."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Stored lower-case; the login name.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    #: argon2id hash (argon2-cffi); never the password.
    password_hash: Mapped[str] = mapped_column(String(200))
    full_name: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(5), default="el")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: When the owner proved the e-mail address by the signed link; null until then.
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: E.164, optional.
    phone: Mapped[str | None] = mapped_column(String(32))
    notify_email: Mapped[bool] = mapped_column(Boolean, default=True)
    notify_sms: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Changes on every password change: signed reset links made before it stop working.
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Set when the account was deleted: personal data is then pseudonymised, payments stay.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Operates the platform: may manage the staff of every agency (not see their payments).
    is_platform_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: Treasury staff's TOTP secret (RFC 6238), Fernet-encrypted (app.encryption); never shown
    #: again once enrolment is confirmed.
    totp_secret: Mapped[str | None] = mapped_column(String(255))
    #: When the staff member proved the authenticator works; null while enrolling.
    totp_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The last 30-second time step whose code was accepted: a code is never accepted twice.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)

    tax_ids: Mapped[list[TaxIdLink]] = relationship(back_populates="user", cascade="all, delete-orphan")


class TaxIdLink(Base):
    """A tax ID an account may act for; only proven links show debts."""

    __tablename__ = "tax_id_links"
    __table_args__ = (UniqueConstraint("user_id", "country", "tax_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    country: Mapped[str] = mapped_column(String(2))
    tax_id: Mapped[str] = mapped_column(String(32))
    #: When the proof succeeded; null while the claim is unproven.
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: How the claim was (or is being) proven: "email_code", "sms_code", "notice".
    proof_method: Mapped[str | None] = mapped_column(String(16))
    #: SHA-256 of the one-time code sent; never the code.
    code_hash: Mapped[str | None] = mapped_column(String(64))
    code_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: Too many wrong codes lock the claim until then.
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(back_populates="tax_ids")
