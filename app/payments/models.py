"""Payments and their lines: what was charged, for which debts, through which provider."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.agencies.models import Agency
from app.db import Base, UTCDateTime, utcnow
from app.debts.models import Debt, Installment

PAYMENT_STATUSES = ("pending", "succeeded", "failed")


class Payment(Base):
    """One card payment for a selection of debts, possibly across agencies."""

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint(f"status IN {PAYMENT_STATUSES!r}", name="status_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Public receipt number, e.g. "CP-7KQ2-M9XA-3F"; unique.
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    #: The quote this payment charges; a failed attempt leaves the quote open for a retry.
    quote_id: Mapped[int | None] = mapped_column(ForeignKey("quotes.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    currency: Mapped[str] = mapped_column(String(3))
    #: minor units, > 0: the sum of the lines.
    amount_minor: Mapped[int] = mapped_column(Integer)
    #: Card provider name ("sandbox", later "stripe").
    provider: Mapped[str] = mapped_column(String(32))
    #: The provider's id of the charge, once known.
    provider_reference: Mapped[str | None] = mapped_column(String(100))
    card_brand: Mapped[str | None] = mapped_column(String(20))
    card_last4: Mapped[str | None] = mapped_column(String(4))
    #: A sentence for the citizen when the charge failed.
    failure_reason: Mapped[str | None] = mapped_column(String(300))
    #: Provider-independent channel: "account", later "guest", "autopay", "api".
    channel: Mapped[str] = mapped_column(String(16), default="account")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    lines: Mapped[list[PaymentLine]] = relationship(
        back_populates="payment", order_by="PaymentLine.id", cascade="all, delete-orphan"
    )


class PaymentLine(Base):
    """One debt or installment paid by a payment."""

    __tablename__ = "payment_lines"
    __table_args__ = (
        CheckConstraint("amount_minor = principal_minor + surcharge_minor", name="adds_up"),
        CheckConstraint("principal_minor > 0", name="principal_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(
        ForeignKey("payments.id", ondelete="CASCADE"), index=True
    )
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    debt_id: Mapped[int] = mapped_column(ForeignKey("debts.id"), index=True)
    installment_id: Mapped[int | None] = mapped_column(ForeignKey("installments.id"))
    #: minor units: the principal this line pays off.
    principal_minor: Mapped[int] = mapped_column(Integer)
    #: minor units: the late surcharge charged with it.
    surcharge_minor: Mapped[int] = mapped_column(Integer)
    #: minor units: principal + surcharge.
    amount_minor: Mapped[int] = mapped_column(Integer)
    #: Surcharge explanation lines, kept for the receipt.
    explanation: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    payment: Mapped[Payment] = relationship(back_populates="lines")
    agency: Mapped[Agency] = relationship()
    debt: Mapped[Debt] = relationship()
    installment: Mapped[Installment | None] = relationship()
