"""Payments and their lines: what was charged, for which debts, through which provider."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Date, ForeignKey, Index, Integer, String, UniqueConstraint
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


class SplitEntry(Base):
    """One beneficiary's part of a payment line, fixed when the payment succeeded, or a refund's reversal of it.

    A succeeded payment writes, per line, one entry per withholding of the line's kind (in the
    order listed, at the rates then in force) and one for the agency's own part (beneficiary
    ""); they add up to the line. A refund writes negative entries against those same parts, in
    proportion to what each still holds, adding up to minus the refund. Entries are never changed:
    a later change of the agency's withholding settings leaves them, and so the settlement, as
    they were.
    """

    __tablename__ = "split_entries"
    __table_args__ = (
        CheckConstraint(
            "(refund_id IS NULL AND amount_minor >= 0) OR (refund_id IS NOT NULL AND amount_minor < 0)",
            name="sign_follows_source",
        ),
        CheckConstraint("position >= 0", name="position_not_negative"),
        CheckConstraint("percent IS NULL OR fixed_minor IS NULL", name="one_rate"),
        Index("ix_split_entries_agency_id_day", "agency_id", "day"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"), index=True)
    payment_line_id: Mapped[int] = mapped_column(ForeignKey("payment_lines.id", ondelete="CASCADE"), index=True)
    #: The refund that reversed part of the line; null for the payment's own entry.
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refunds.id", ondelete="CASCADE"), index=True)
    #: The line's kind (its debt's, or the catalog item's), as the settlement groups it.
    kind: Mapped[str] = mapped_column(String(64))
    #: The part's place in the line's split: 0.. for the withholdings in order, then the agency's part.
    position: Mapped[int] = mapped_column(Integer)
    #: Who the money is for: the withholding's beneficiary, or "" for the agency's own part.
    beneficiary: Mapped[str] = mapped_column(String(100))
    #: The rate in force when the payment succeeded: a percentage as text ("2.5"), or a fixed
    #: amount in minor units; both null for the agency's own part.
    percent: Mapped[str | None] = mapped_column(String(20))
    fixed_minor: Mapped[int | None] = mapped_column(Integer)
    #: minor units: >= 0 for a payment's part, < 0 for a refund's reversal.
    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    #: When the money moved: the payment's completion, or the refund's.
    booked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: The agency's local day of ``booked_at``, fixed when booked (the settlement's day).
    day: Mapped[date] = mapped_column(Date)


class SplitDayTotal(Base):
    """The split entries of one agency, local day, kind and beneficiary, summed as they are written.

    Kept in the same transaction as the entries (an upsert adding to the row), so the settlement
    report over a year reads a few thousand rows instead of every payment. ``verify_ledger``
    checks it against the entries.
    """

    __tablename__ = "split_day_totals"
    __table_args__ = (
        UniqueConstraint("agency_id", "day", "kind", "beneficiary"),
        CheckConstraint("lines >= 0", name="lines_not_negative"),
        CheckConstraint("collected_minor >= 0", name="collected_not_negative"),
        CheckConstraint("reversed_minor >= 0", name="reversed_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    #: The agency's local day the entries were booked on.
    day: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(64))
    #: The withholding's beneficiary, or "" for the agency's own part.
    beneficiary: Mapped[str] = mapped_column(String(100))
    currency: Mapped[str] = mapped_column(String(3))
    #: Payment lines booked that day (counted on the agency's own row only, so each line once).
    lines: Mapped[int] = mapped_column(Integer, default=0)
    #: minor units, >= 0: the payments' entries of the day.
    collected_minor: Mapped[int] = mapped_column(Integer, default=0)
    #: minor units, >= 0: the refunds' reversals of the day (their entries negated).
    reversed_minor: Mapped[int] = mapped_column(Integer, default=0)


class SandboxCharge(Base):
    """The sandbox provider's own record of a charge, by idempotency key: what Stripe keeps on its side.

    Written and committed by the sandbox before it answers, so a payment whose process stopped
    between the charge and our record of it can be finished by the reconciler, as with Stripe.
    """

    __tablename__ = "sandbox_charges"
    __table_args__ = (CheckConstraint("amount_minor > 0", name="amount_positive"),)

    #: The payer's idempotency key (the payment's reference).
    idempotency_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    #: "sbx_…", unique.
    provider_reference: Mapped[str] = mapped_column(String(100), unique=True)
    succeeded: Mapped[bool] = mapped_column()
    #: Stripe-style decline code when the test card declines.
    decline_code: Mapped[str | None] = mapped_column(String(64))
    #: minor units, > 0.
    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    card_brand: Mapped[str | None] = mapped_column(String(20))
    card_last4: Mapped[str | None] = mapped_column(String(4))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
