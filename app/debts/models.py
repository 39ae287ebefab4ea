"""Debtors, debts and the installments of settled debts, as synced from the agencies' ERPs."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.agencies.models import Agency
from app.db import Base, UTCDateTime, utcnow

CATEGORIES = ("certified", "settled", "uncertified")
DEBT_STATUSES = ("open", "paid", "cancelled")


class Debtor(Base):
    """A person or business identified by its tax ID in one country."""

    __tablename__ = "debtors"
    __table_args__ = (UniqueConstraint("country", "tax_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: ISO 3166 alpha-2 of the tax authority.
    country: Mapped[str] = mapped_column(String(2))
    #: National tax ID without the country prefix (Greek AFM: 9 digits).
    tax_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))


class Debt(Base):
    """One debt of a debtor to an agency, a copy of the ERP's record."""

    __tablename__ = "debts"
    __table_args__ = (
        UniqueConstraint("agency_id", "external_id"),
        UniqueConstraint("agency_id", "rf_reference"),
        CheckConstraint("principal_minor >= 0", name="principal_not_negative"),
        CheckConstraint("paid_minor >= 0 AND paid_minor <= principal_minor", name="paid_within_principal"),
        CheckConstraint(f"category IN {CATEGORIES!r}", name="category_known"),
        CheckConstraint(f"status IN {DEBT_STATUSES!r}", name="status_known"),
        # Only held debts are looked up by their payment: a partial index costs the others nothing.
        Index(
            "ix_debts_pending_payment_id",
            "pending_payment_id",
            postgresql_where=text("pending_payment_id IS NOT NULL"),
            sqlite_where=text("pending_payment_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: No index of its own: the unique (agency_id, external_id) index serves look-ups by agency.
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    #: The ERP's own id of the debt; unique per agency.
    external_id: Mapped[str] = mapped_column(String(64), index=True)
    debtor_id: Mapped[int] = mapped_column(ForeignKey("debtors.id"), index=True)
    category: Mapped[str] = mapped_column(String(16))
    #: Slug of the kind of debt, e.g. "property_fee", "traffic_fine", "water_bill".
    kind: Mapped[str] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(String(300))
    currency: Mapped[str] = mapped_column(String(3))
    #: minor units, >= 0: the amount owed before any surcharge.
    principal_minor: Mapped[int] = mapped_column(Integer)
    #: minor units, 0..principal_minor: already paid (at the counter or online).
    paid_minor: Mapped[int] = mapped_column(Integer, default=0)
    due_date: Mapped[date] = mapped_column(Date)
    #: ISO 11649 creditor reference, compact form.
    #: Indexed on its own (not only per agency): guests look a debt up by its code alone.
    rf_reference: Mapped[str] = mapped_column(String(25), index=True)
    status: Mapped[str] = mapped_column(String(16), default="open")
    vehicle_plate: Mapped[str | None] = mapped_column(String(16))
    #: The debtor's e-mail and phone as this agency's ERP holds them; kept per agency on the debt
    #: because debtors are shared across agencies and one agency must not rewrite another's.
    contact_email: Mapped[str | None] = mapped_column(String(254))
    contact_phone: Mapped[str | None] = mapped_column(String(32))
    #: The payment holding this debt while a card charge is under way (null when free).
    pending_payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Hash of the ERP record as last applied ("j1:" + BLAKE2b-128 hex of its canonical JSON): an
    #: unchanged record is skipped on this alone. Earlier forms are recognised once and rewritten
    #: (app.sync.hashing).
    content_hash: Mapped[str | None] = mapped_column(String(64))
    #: Why a debt stopped being open without an online payment: "paid_at_agency", "cancelled", "vanished".
    closed_reason: Mapped[str | None] = mapped_column(String(32))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Set when the ERP closed the debt while an online payment held it; treasury must look.
    review_reason: Mapped[str | None] = mapped_column(String(300))

    agency: Mapped[Agency] = relationship(lazy="joined")
    debtor: Mapped[Debtor] = relationship()
    installments: Mapped[list[Installment]] = relationship(
        back_populates="debt", order_by="Installment.number", cascade="all, delete-orphan"
    )

    @property
    def unpaid_minor(self) -> int:
        """minor units still owed on the principal."""
        return self.principal_minor - self.paid_minor


class Installment(Base):
    """One installment of a settled debt (an arrangement); each is payable on its own."""

    __tablename__ = "installments"
    __table_args__ = (
        UniqueConstraint("debt_id", "number"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("paid_minor >= 0 AND paid_minor <= amount_minor", name="paid_within_amount"),
        CheckConstraint(f"status IN {DEBT_STATUSES!r}", name="status_known"),
        Index(
            "ix_installments_pending_payment_id",
            "pending_payment_id",
            postgresql_where=text("pending_payment_id IS NOT NULL"),
            sqlite_where=text("pending_payment_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: No index of its own: the unique (debt_id, number) index serves look-ups by debt.
    debt_id: Mapped[int] = mapped_column(ForeignKey("debts.id", ondelete="CASCADE"))
    #: 1-based order within the arrangement.
    number: Mapped[int] = mapped_column(Integer)
    due_date: Mapped[date] = mapped_column(Date)
    #: minor units, > 0.
    amount_minor: Mapped[int] = mapped_column(Integer)
    #: minor units, 0..amount_minor.
    paid_minor: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="open")
    pending_payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))

    debt: Mapped[Debt] = relationship(back_populates="installments")

    @property
    def unpaid_minor(self) -> int:
        """minor units still owed on this installment."""
        return self.amount_minor - self.paid_minor
