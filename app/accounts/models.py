"""Citizen accounts and the tax IDs they have proven are theirs."""

from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import ForeignKey, String, UniqueConstraint
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

    tax_ids: Mapped[list[TaxIdLink]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )


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

    user: Mapped[User] = relationship(back_populates="tax_ids")
