"""Catalog items an agency sells directly, and the tickets (seats) held and issued for them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.agencies.models import Agency
from app.db import Base, UTCDateTime, utcnow

#: What an item is; "ticket" items issue a ticket with a code per unit and may have a capacity.
ITEM_KINDS = ("ticket", "permit", "fee", "donation")


class CatalogItem(Base):
    """Something an agency sells at a fixed price, or an open amount within a range (a donation)."""

    __tablename__ = "catalog_items"
    __table_args__ = (
        UniqueConstraint("agency_id", "code"),
        CheckConstraint(f"kind IN {ITEM_KINDS!r}", name="kind_known"),
        CheckConstraint(
            "(price_minor IS NOT NULL AND price_minor > 0 AND min_minor IS NULL AND max_minor IS NULL)"
            " OR (price_minor IS NULL AND min_minor IS NOT NULL AND max_minor IS NOT NULL"
            " AND min_minor > 0 AND max_minor >= min_minor)",
            name="price_or_range",
        ),
        CheckConstraint("capacity IS NULL OR capacity >= 0", name="capacity_not_negative"),
        CheckConstraint("capacity IS NULL OR kind = 'ticket'", name="capacity_for_tickets"),
        CheckConstraint("max_per_order >= 1", name="max_per_order_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    #: Short slug, unique per agency, used in URLs and told to the ERP, e.g. "summer-concert".
    code: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(16))
    name_el: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    description_el: Mapped[str] = mapped_column(String(2000), default="")
    description_en: Mapped[str] = mapped_column(String(2000), default="")
    #: ISO 4217; the agency's currency.
    currency: Mapped[str] = mapped_column(String(3))
    #: minor units, > 0: the fixed price of one unit; null for an open amount.
    price_minor: Mapped[int | None] = mapped_column(Integer)
    #: minor units: the smallest and largest open amount a payer may choose; null for a fixed price.
    min_minor: Mapped[int | None] = mapped_column(Integer)
    max_minor: Mapped[int | None] = mapped_column(Integer)
    #: On sale from / until (UTC); null: no limit on that side.
    available_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    available_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Tickets only: how many may ever be sold (issued plus currently held); null: no limit.
    capacity: Mapped[int | None] = mapped_column(Integer)
    #: The most units one order may hold, >= 1 (1 for open amounts).
    max_per_order: Mapped[int] = mapped_column(Integer, default=10)
    #: Questions for the payer: [{"key": "holder", "label_el": "...", "label_en": "...",
    #: "required": true}]; the answers are kept on the order line and printed on the ticket.
    questions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    #: Only signed-in citizens may buy it (e.g. a permit tied to a person).
    requires_account: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    #: Hidden from buyers when false; items are never deleted once sold.
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    agency: Mapped[Agency] = relationship()

    @property
    def open_amount(self) -> bool:
        """Whether the payer chooses the amount (within min and max)."""
        return self.price_minor is None

    @property
    def issues_tickets(self) -> bool:
        """Whether each unit sold gets a ticket with a code checked at the door."""
        return self.kind == "ticket"

    def name(self, language: str) -> str:
        """The item's name in the given language (Greek for anything but English)."""
        return self.name_en if language == "en" else self.name_el

    def description(self, language: str) -> str:
        """The item's description in the given language."""
        return self.description_en if language == "en" else self.description_el

    def on_sale(self, now: datetime) -> bool:
        """Whether the item can be bought at ``now`` (active and inside its window)."""
        if not self.active:
            return False
        if self.available_from is not None and now < self.available_from:
            return False
        return not (self.available_until is not None and now >= self.available_until)


TICKET_STATUSES = ("held", "issued", "used", "released")


class Ticket(Base):
    """One seat of a ticket item: held while its buyer pays, issued once paid, used once at the door.

    A seat counts against the item's capacity while it is issued or used, or held and not yet
    past ``held_until``; a released seat (failed or abandoned payment) counts no more.
    """

    __tablename__ = "tickets"
    __table_args__ = (
        CheckConstraint(f"status IN {TICKET_STATUSES!r}", name="status_known"),
        CheckConstraint("status <> 'used' OR used_at IS NOT NULL", name="used_has_time"),
        Index("ix_tickets_item_id_status", "item_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("catalog_items.id"))
    #: The order line (of a quote) that holds the seat.
    quote_line_id: Mapped[int] = mapped_column(ForeignKey("quote_lines.id", ondelete="CASCADE"), index=True)
    #: The paid line, once issued.
    payment_line_id: Mapped[int | None] = mapped_column(ForeignKey("payment_lines.id"), index=True)
    #: Printed on the ticket and in its QR code, e.g. "TK-7KQ2-M9XA-3F"; unique.
    code: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="held")
    #: A held seat is free again after this instant.
    held_until: Mapped[datetime] = mapped_column(UTCDateTime)
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The staff member who let it in.
    used_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    item: Mapped[CatalogItem] = relationship()
