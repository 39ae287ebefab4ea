"""Quotes: the server-computed price of a selection, valid until the agency's day ends."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.agencies.models import Agency
from app.catalog.models import CatalogItem
from app.db import Base, UTCDateTime, utcnow
from app.debts.models import Debt, Installment

QUOTE_STATUSES = ("open", "used")


class Quote(Base):
    """A stored price for a selection of debts; payments charge exactly this, never a form value."""

    __tablename__ = "quotes"
    __table_args__ = (
        CheckConstraint("total_minor > 0", name="total_positive"),
        CheckConstraint(f"status IN {QUOTE_STATUSES!r}", name="status_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Unguessable id used in URLs.
    token: Mapped[str] = mapped_column(String(43), unique=True)
    #: The citizen's account; null for a guest, who reaches the quote by its token in the session.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    #: A guest's address for a copy of the receipt (and to find the receipt later); optional.
    payer_email: Mapped[str | None] = mapped_column(String(254))
    currency: Mapped[str] = mapped_column(String(3))
    #: minor units, > 0: sum of the lines.
    total_minor: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: End of the earliest-ending local day among the agencies in the selection.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    lines: Mapped[list[QuoteLine]] = relationship(
        back_populates="quote", order_by="QuoteLine.id", cascade="all, delete-orphan"
    )

    def is_expired(self, now: datetime) -> bool:
        """Whether the quote can no longer be paid at ``now``."""
        return now >= self.expires_at


class QuoteLine(Base):
    """One debt or installment in a quote, with the surcharge computed for the quote's day;
    or an order of a catalog item (quantity × price, or an open amount), which has no surcharge."""

    __tablename__ = "quote_lines"
    __table_args__ = (
        CheckConstraint("amount_minor = principal_minor + surcharge_minor", name="adds_up"),
        CheckConstraint("(debt_id IS NULL) <> (item_id IS NULL)", name="debt_or_item"),
        CheckConstraint("item_id IS NULL OR surcharge_minor = 0", name="items_have_no_surcharge"),
        CheckConstraint("quantity >= 1", name="quantity_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    quote_id: Mapped[int] = mapped_column(ForeignKey("quotes.id", ondelete="CASCADE"), index=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    debt_id: Mapped[int | None] = mapped_column(ForeignKey("debts.id"))
    installment_id: Mapped[int | None] = mapped_column(ForeignKey("installments.id"))
    #: The catalog item ordered, for a line that is not a debt.
    item_id: Mapped[int | None] = mapped_column(ForeignKey("catalog_items.id"))
    #: Units of the item ordered (1 for a debt or an open amount), >= 1.
    quantity: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    #: The payer's answers to the item's questions: {"holder": "Maria P."}.
    answers: Mapped[dict[str, str] | None] = mapped_column(JSON)
    #: minor units: the unpaid principal at quote time (an item: quantity × unit price).
    principal_minor: Mapped[int] = mapped_column(Integer)
    #: minor units: the late surcharge for the quote's day.
    surcharge_minor: Mapped[int] = mapped_column(Integer)
    #: minor units: principal + surcharge.
    amount_minor: Mapped[int] = mapped_column(Integer)
    #: The surcharge explanation as SurchargeLine data, for display in the citizen's language.
    explanation: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    quote: Mapped[Quote] = relationship(back_populates="lines")
    agency: Mapped[Agency] = relationship()
    debt: Mapped[Debt | None] = relationship()
    installment: Mapped[Installment | None] = relationship()
    item: Mapped[CatalogItem | None] = relationship()

    def title(self, language: str) -> str:
        """What the line pays for, in words: the debt's description or the item's name."""
        if self.item is not None:
            return self.item.name(language)
        return self.debt.description if self.debt is not None else ""
