"""Payments and their lines: what was charged, for which debts, through which provider."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.agencies.models import Agency
from app.catalog.models import CatalogItem
from app.db import Base, UTCDateTime, utcnow
from app.debts.models import Debt, Installment

PAYMENT_STATUSES = ("pending", "succeeded", "failed", "partially_refunded", "refunded")


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
    #: pending → succeeded | failed; succeeded → partially_refunded → refunded.
    status: Mapped[str] = mapped_column(String(24), default="pending")
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
    #: Stripe: the customer and the SetupIntent that collected the card (one card entry per payment).
    provider_customer: Mapped[str | None] = mapped_column(String(100))
    provider_setup: Mapped[str | None] = mapped_column(String(100))

    lines: Mapped[list[PaymentLine]] = relationship(
        back_populates="payment", order_by="PaymentLine.id", cascade="all, delete-orphan"
    )
    charges: Mapped[list[ProviderCharge]] = relationship(
        back_populates="payment", order_by="ProviderCharge.id", cascade="all, delete-orphan"
    )


class PaymentLine(Base):
    """One debt or installment paid by a payment, or one order of a catalog item."""

    __tablename__ = "payment_lines"
    __table_args__ = (
        CheckConstraint("amount_minor = principal_minor + surcharge_minor", name="adds_up"),
        CheckConstraint("principal_minor > 0", name="principal_positive"),
        CheckConstraint("(debt_id IS NULL) <> (item_id IS NULL)", name="debt_or_item"),
        CheckConstraint("item_id IS NULL OR surcharge_minor = 0", name="items_have_no_surcharge"),
        CheckConstraint("quantity >= 1", name="quantity_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"), index=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    debt_id: Mapped[int | None] = mapped_column(ForeignKey("debts.id"), index=True)
    installment_id: Mapped[int | None] = mapped_column(ForeignKey("installments.id"))
    #: The catalog item bought, for a line that is not a debt.
    item_id: Mapped[int | None] = mapped_column(ForeignKey("catalog_items.id"), index=True)
    #: Units of the item bought (1 for a debt or an open amount), >= 1.
    quantity: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    #: The payer's answers to the item's questions, as on the order.
    answers: Mapped[dict[str, str] | None] = mapped_column(JSON)
    #: minor units: the principal this line pays off (an item: what it costs).
    principal_minor: Mapped[int] = mapped_column(Integer)
    #: minor units: the late surcharge charged with it.
    surcharge_minor: Mapped[int] = mapped_column(Integer)
    #: minor units: principal + surcharge.
    amount_minor: Mapped[int] = mapped_column(Integer)
    #: Surcharge explanation lines, kept for the receipt.
    explanation: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    payment: Mapped[Payment] = relationship(back_populates="lines")
    agency: Mapped[Agency] = relationship()
    debt: Mapped[Debt | None] = relationship()
    installment: Mapped[Installment | None] = relationship()
    item: Mapped[CatalogItem | None] = relationship()

    def title(self, language: str) -> str:
        """What the line paid for, in words: the debt's description or the item's name."""
        if self.item is not None:
            return self.item.name(language)
        return self.debt.description if self.debt is not None else ""

    @property
    def code(self) -> str:
        """The line's identifier for people: the debt's RF reference or ERP id, or the item's code."""
        if self.item is not None:
            return self.item.code
        if self.debt is None:
            return ""
        return self.debt.rf_reference or self.debt.external_id


CHARGE_STATUSES = ("creating", "requires_action", "authorized", "captured", "failed", "canceled")


class ProviderCharge(Base):
    """One agency's share of a payment as charged at the provider (a Stripe PaymentIntent).

    A basket across agencies is one card entry but one charge per agency, so each agency's money
    and history stay its own. The row is written before the provider is called, so a retry finds it.
    """

    __tablename__ = "provider_charges"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint(f"status IN {CHARGE_STATUSES!r}", name="status_known"),
        UniqueConstraint("payment_id", "agency_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"), index=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    #: minor units, > 0: the sum of this agency's lines of the payment.
    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    #: The PaymentIntent id, once created; unique.
    provider_reference: Mapped[str | None] = mapped_column(String(100), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="creating")
    #: The provider's decline or error code when the charge failed.
    failure_code: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    payment: Mapped[Payment] = relationship(back_populates="charges")
    agency: Mapped[Agency] = relationship()


class ProviderEvent(Base):
    """A webhook event already processed (its id), so a repeated delivery changes nothing."""

    __tablename__ = "provider_events"

    #: The provider's event id, e.g. "evt_...".
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    type: Mapped[str] = mapped_column(String(100))
    #: The agency whose endpoint received it.
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


REFUND_STATUSES = ("pending", "succeeded", "failed")


class Refund(Base):
    """Money given back from one agency's share of a payment, by its staff, with a reason."""

    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint(f"status IN {REFUND_STATUSES!r}", name="status_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Public number, e.g. "RF-CP-7KQ2-M9XA-3F-1"; unique.
    reference: Mapped[str] = mapped_column(String(48), unique=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"), index=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    #: minor units, > 0; never more than the agency's share still refundable when it was asked.
    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    #: Why, in the staff member's words (shown to the citizen).
    reason: Mapped[str] = mapped_column(String(500))
    #: Whether the refund reopened the agency's debts of the payment (agency setting, full refunds).
    reopened_debts: Mapped[bool] = mapped_column(default=False)
    requested_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    provider_reference: Mapped[str | None] = mapped_column(String(100))
    failure_code: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    payment: Mapped[Payment] = relationship()
    agency: Mapped[Agency] = relationship()
