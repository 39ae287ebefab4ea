"""Catalog items for sale, seats held and issued against their capacity, tickets checked at the door.

Capacity is never oversold: every change to an item's seats starts by locking the item's row
(a row lock on PostgreSQL, the database write lock on SQLite), then counts the seats taken and
writes, all in one transaction. Two buyers of the last seat are served one after the other, and
the second finds it taken.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import and_, func, or_, select, update

from app.agencies.models import Agency
from app.audit.services import record
from app.catalog.models import CatalogItem, Ticket
from app.domain.orders import seats_left
from app.domain.references import readable_code
from app.extensions import db


class SoldOut(Exception):
    """Fewer seats are left than asked for; ``left`` says how many."""

    def __init__(self, item: CatalogItem, left: int) -> None:
        super().__init__(f"{item.code}: {left} left")
        self.item = item
        self.left = left


# -- buyers ---------------------------------------------------------------------------------------


def items_on_sale(now: datetime, agency_code: str | None = None) -> Sequence[CatalogItem]:
    """Items a visitor can buy now, by agency and name, optionally of one agency."""
    statement = (
        select(CatalogItem)
        .join(Agency, Agency.id == CatalogItem.agency_id)
        .where(
            CatalogItem.active.is_(True),
            or_(CatalogItem.available_from.is_(None), CatalogItem.available_from <= now),
            or_(CatalogItem.available_until.is_(None), CatalogItem.available_until > now),
        )
        .order_by(Agency.code, CatalogItem.name_el, CatalogItem.id)
    )
    if agency_code is not None:
        statement = statement.where(Agency.code == agency_code)
    return db.session.scalars(statement).all()


def item_for_sale(agency_code: str, item_code: str) -> CatalogItem | None:
    """The agency's item with this code (on sale or not; callers say why it cannot be bought)."""
    return db.session.scalar(
        select(CatalogItem)
        .join(Agency, Agency.id == CatalogItem.agency_id)
        .where(Agency.code == agency_code, CatalogItem.code == item_code, CatalogItem.active.is_(True))
    )


def _counting(now: datetime):
    """Seats that count against capacity at ``now``: issued, used, or held and not yet expired."""
    return or_(
        Ticket.status.in_(("issued", "used")),
        and_(Ticket.status == "held", Ticket.held_until > now),
    )


def seats_taken(item_id: int, now: datetime, *, excluding_quote_line: int | None = None) -> int:
    """Seats of the item that count against its capacity at ``now``."""
    statement = select(func.count(Ticket.id)).where(Ticket.item_id == item_id, _counting(now))
    if excluding_quote_line is not None:
        statement = statement.where(Ticket.quote_line_id != excluding_quote_line)
    return int(db.session.scalar(statement) or 0)


def seats_available(item: CatalogItem, now: datetime) -> int | None:
    """Seats still for sale, or None when the item has no capacity limit."""
    return seats_left(item.capacity, seats_taken(item.id, now)) if item.capacity is not None else None


def lock_item(item_id: int) -> CatalogItem:
    """The item, locked for the rest of the transaction (see the module's docstring)."""
    db.session.execute(
        update(CatalogItem)
        .where(CatalogItem.id == item_id)
        .values(capacity=CatalogItem.capacity)
        .execution_options(synchronize_session=False)
    )
    # FOR NO KEY UPDATE (key_share=True): order and payment lines that reference the item take KEY SHARE locks on
    # it, which a plain FOR UPDATE would wait for (two buyers then deadlock); this one does not.
    statement = select(CatalogItem).where(CatalogItem.id == item_id).with_for_update(key_share=True)
    return db.session.scalars(statement.execution_options(populate_existing=True)).one()


def new_ticket_code() -> str:
    """A random, readable ticket code such as ``TK-7KQ2-M9XA-3F``, read out at the door."""
    return readable_code("TK")


def hold_seats(item_id: int, quote_line_id: int, quantity: int, held_until: datetime, now: datetime) -> list[Ticket]:
    """Hold ``quantity`` seats of a ticket item for an order line until ``held_until``; raises SoldOut.

    Seats the line already holds are held again (a retry after a declined card keeps its seats
    if they are still free). Call inside the transaction that stores or claims the order.
    """
    item = lock_item(item_id)
    mine = db.session.scalars(select(Ticket).where(Ticket.quote_line_id == quote_line_id).order_by(Ticket.id)).all()
    if item.capacity is not None:
        left = seats_left(item.capacity, seats_taken(item.id, now, excluding_quote_line=quote_line_id))
        assert left is not None
        if left < quantity:
            raise SoldOut(item, left)
    tickets = list(mine[:quantity])
    for ticket in tickets:
        if ticket.status in ("held", "released"):
            ticket.status = "held"
            ticket.held_until = held_until
    for _ in range(quantity - len(tickets)):
        ticket = Ticket(
            item_id=item.id,
            quote_line_id=quote_line_id,
            code=new_ticket_code(),
            status="held",
            held_until=held_until,
            created_at=now,
        )
        db.session.add(ticket)
        tickets.append(ticket)
    db.session.flush()
    return tickets


def payment_hold_until(now: datetime) -> datetime:
    """How long seats stay held once a payment for them has started.

    Longer than the reconciler waits before giving up an unfinished card payment, so a payment
    still in flight never loses its seats; a payment given up releases them at once.
    """
    minutes = int(current_app.config["STRIPE_ABANDON_AFTER_MINUTES"]) + 15
    return now + timedelta(minutes=minutes)


def order_hold_until(now: datetime) -> datetime:
    """How long seats stay held for a buyer on the review page before paying."""
    return now + timedelta(minutes=int(current_app.config["CATALOG_HOLD_MINUTES"]))


def issue_tickets(quote_line_id: int, payment_line_id: int, now: datetime) -> list[Ticket]:
    """The paid line's held seats become tickets; call in the transaction that confirms the payment."""
    tickets = db.session.scalars(
        select(Ticket).where(Ticket.quote_line_id == quote_line_id, Ticket.status == "held").order_by(Ticket.id)
    ).all()
    for ticket in tickets:
        ticket.status = "issued"
        ticket.issued_at = now
        ticket.payment_line_id = payment_line_id
    return list(tickets)


def release_seats(quote_line_ids: Iterable[int]) -> None:
    """Free the seats held for these order lines (a declined or abandoned payment)."""
    _release(Ticket.quote_line_id, quote_line_ids, "held")


def tickets_of_payment_lines(payment_line_ids: Iterable[int]) -> Sequence[Ticket]:
    """The tickets issued for these paid lines, in order."""
    ids = list(payment_line_ids)
    if not ids:
        return []
    return db.session.scalars(select(Ticket).where(Ticket.payment_line_id.in_(ids)).order_by(Ticket.id)).all()


# -- at the door ----------------------------------------------------------------------------------

CHECK_ADMITTED = "admitted"
CHECK_ALREADY_USED = "already_used"
CHECK_NOT_VALID = "not_valid"
CHECK_UNKNOWN = "unknown"


@dataclass(frozen=True)
class TicketCheck:
    """What the door learnt of a ticket code."""

    outcome: str
    ticket: Ticket | None = None


def normalise_ticket_code(value: str | None) -> str:
    """A ticket code as printed (TK-7KQ2-M9XA-3F), however it was typed or scanned."""
    compact = "".join(ch for ch in (value or "").upper() if ch.isalnum())
    if len(compact) == 12 and compact.startswith("TK"):
        return f"TK-{compact[2:6]}-{compact[6:10]}-{compact[10:]}"
    return compact


def find_ticket(code: str, agency_ids: Iterable[int]) -> Ticket | None:
    """The ticket with this code, only if it belongs to one of these agencies."""
    return db.session.scalar(
        select(Ticket)
        .join(CatalogItem, CatalogItem.id == Ticket.item_id)
        .where(Ticket.code == normalise_ticket_code(code), CatalogItem.agency_id.in_(list(agency_ids)))
    )


def use_ticket(code: str, agency_ids: Iterable[int], staff_user_id: int, now: datetime) -> TicketCheck:
    """Let a ticket in once: the first check marks it used, any later one says when it was used."""
    agency_ids = list(agency_ids)
    ticket = find_ticket(code, agency_ids)
    if ticket is None:
        db.session.rollback()
        return TicketCheck(CHECK_UNKNOWN)
    # Compare-and-set: of two doors scanning one ticket at once, exactly one admits it.
    result = db.session.execute(
        update(Ticket)
        .where(Ticket.id == ticket.id, Ticket.status == "issued")
        .values(status="used", used_at=now, used_by_user_id=staff_user_id)
        .execution_options(synchronize_session=False)
    )
    admitted = result.rowcount == 1
    ticket = db.session.get(Ticket, ticket.id, populate_existing=True)
    assert ticket is not None
    outcome = CHECK_ADMITTED if admitted else CHECK_ALREADY_USED if ticket.status == "used" else CHECK_NOT_VALID
    if outcome != CHECK_NOT_VALID:
        # Who let whom in, and every second try with the same ticket, for the agency's audit log.
        record("ticket.check", agency_id=ticket.item.agency_id, subject=ticket.code, details={"outcome": outcome},
               actor_user_id=staff_user_id)  # fmt: skip
    db.session.flush()
    return TicketCheck(outcome, ticket)


# -- staff ----------------------------------------------------------------------------------------


def agency_items(agency_id: int) -> Sequence[CatalogItem]:
    """Every item of the agency, on sale or not, newest first."""
    return db.session.scalars(
        select(CatalogItem)
        .where(CatalogItem.agency_id == agency_id)
        .order_by(CatalogItem.created_at.desc(), CatalogItem.id.desc())
    ).all()


def agency_item(agency_id: int, item_id: int) -> CatalogItem | None:
    """The agency's item with this id, or None (also for another agency's item)."""
    return db.session.scalar(select(CatalogItem).where(CatalogItem.id == item_id, CatalogItem.agency_id == agency_id))


def sales_counts(item_ids: Iterable[int], now: datetime) -> dict[int, dict[str, int]]:
    """Per item: tickets issued (incl. used), used, and held right now."""
    ids = list(item_ids)
    counts: dict[int, dict[str, int]] = {item_id: {"issued": 0, "used": 0, "held": 0} for item_id in ids}
    if not ids:
        return counts
    rows = db.session.execute(
        select(Ticket.item_id, Ticket.status, func.count(Ticket.id))
        .where(Ticket.item_id.in_(ids), or_(Ticket.status.in_(("issued", "used")), Ticket.held_until > now))
        .group_by(Ticket.item_id, Ticket.status)
    ).all()
    for item_id, status, count in rows:
        if status in ("issued", "used"):
            counts[item_id]["issued"] += count
        if status in ("used", "held"):
            counts[item_id][status] += count
    return counts


class ItemCodeTaken(ValueError):
    """Another item of the agency already has this code."""


def save_item(agency: Agency, values: dict[str, Any], item: CatalogItem | None = None) -> CatalogItem:
    """Create or update an item of the agency from checked form values, audited, in one transaction.

    Raises ItemCodeTaken (nothing saved) when another item of the agency has the code.
    """
    code = values["code"]
    clash = db.session.scalar(
        select(CatalogItem.id).where(CatalogItem.agency_id == agency.id, CatalogItem.code == code)
    )
    if clash is not None and (item is None or clash != item.id):
        db.session.rollback()
        raise ItemCodeTaken(code)
    created = item is None
    if item is None:
        item = CatalogItem(agency_id=agency.id, currency=agency.currency)
        db.session.add(item)
    for key, value in values.items():
        setattr(item, key, value)
    db.session.flush()
    record(
        "catalog.item_saved", agency_id=agency.id, subject=item.code, details={"new": created, "active": item.active}
    )
    db.session.flush()
    return item


def void_tickets(payment_line_ids: Iterable[int]) -> None:
    """Tickets of refunded lines let nobody in any more, and their seats are for sale again."""
    _release(Ticket.payment_line_id, payment_line_ids, "issued")


def _release(column, ids: Iterable[int], status: str) -> None:
    """Tickets in ``status`` whose ``column`` is one of ``ids`` become released (their seat is free)."""
    ids = list(ids)
    if ids:
        db.session.execute(
            update(Ticket)
            .where(column.in_(ids), Ticket.status == status)
            .values(status="released")
            .execution_options(synchronize_session=False)
        )
