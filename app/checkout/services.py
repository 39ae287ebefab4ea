"""Quoting a selection: the server computes every amount and stores it until the day ends."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from app.catalog.services import SoldOut, hold_seats, lock_item, order_hold_until
from app.checkout.models import Quote, QuoteLine
from app.debts.services import (
    BLOCK_IN_PROGRESS,
    BLOCK_NOT_ONLINE,
    PayableItem,
    agency_today,
    earlier_open_installments,
    find_user_items,
)
from app.domain.orders import OrderError, price_order
from app.domain.surcharges import SurchargeLine
from app.extensions import db
from app.sync.refresh import refresh_user_debts
from app.unit_of_work import end_read_only_transaction


class CheckoutError(Exception):
    """A selection or quote that cannot be paid; ``code`` names the reason for the views."""

    def __init__(self, code: str, **details: Any) -> None:
        super().__init__(code)
        self.code = code
        self.details = details


def end_of_local_day(item: PayableItem, now: datetime) -> datetime:
    """The instant the agency's current day ends, when surcharges may change."""
    zone = ZoneInfo(item.agency.timezone)
    tomorrow = agency_today(item.agency, now) + timedelta(days=1)
    return datetime.combine(tomorrow, time.min, tzinfo=zone)


def serialise_lines(lines: Iterable[SurchargeLine]) -> list[dict[str, Any]]:
    """Surcharge explanation lines as JSON-safe dicts (Decimals and enums as strings)."""

    def plain(value: Any) -> Any:
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, Enum):
            return value.value
        return value

    return [{key: plain(value) for key, value in asdict(line).items()} for line in lines]


def quote_debts(user_id: int, keys: Iterable[str], now: datetime) -> Quote:
    """Price the selected items for today and store the quote; refuse anything not payable."""
    keys = list(dict.fromkeys(key for key in keys if key))
    if not keys:
        raise CheckoutError("empty")
    # Ask the ERPs (briefly, where our copy is stale) so nobody pays an amount that just changed.
    changed = {
        (agency_id, external_id)
        for agency_id, outcome in refresh_user_debts(user_id, now).items()
        for external_id in outcome.changed
    }
    items = find_user_items(user_id, keys, now)
    missing = [key for key in keys if key not in items]
    if missing:
        # Someone else's debt, a paid one, or a tampered value: all look the same from here.
        raise CheckoutError("unknown")
    selected = [items[key] for key in keys]
    for item in selected:
        if (item.agency.id, item.debt.external_id) in changed:
            raise CheckoutError("changed", description=item.debt.description)
    for item in selected:
        if item.blocked == BLOCK_NOT_ONLINE:
            raise CheckoutError("not_online", description=item.debt.description)
        if item.blocked == BLOCK_IN_PROGRESS:
            raise CheckoutError("in_progress", description=item.debt.description)
        if item.agency.installments_in_order:
            chosen = {i.installment.id for i in selected if i.installment is not None}
            skipped = [inst for inst in earlier_open_installments(item) if inst.id not in chosen]
            if skipped:
                raise CheckoutError(
                    "installment_order",
                    description=item.debt.description,
                    number=skipped[0].number,
                )
    currencies = {item.debt.currency for item in selected}
    if len(currencies) != 1:
        raise CheckoutError("mixed_currency")
    return store_quote(selected, user_id=user_id, currency=currencies.pop(), now=now)


def store_quote(items: list[PayableItem], *, user_id: int | None, currency: str, now: datetime) -> Quote:
    """Store today's price of checked items as a quote (of an account, or of nobody for a guest)."""
    quote = Quote(
        token=secrets.token_urlsafe(32),
        user_id=user_id,
        currency=currency,
        total_minor=sum(item.total_minor for item in items),
        expires_at=min(end_of_local_day(item, now) for item in items),
        created_at=now,
        lines=[
            QuoteLine(
                agency_id=item.agency.id,
                debt_id=item.debt.id,
                installment_id=item.installment.id if item.installment else None,
                principal_minor=item.principal_minor,
                surcharge_minor=item.surcharge.amount_minor,
                amount_minor=item.total_minor,
                explanation=serialise_lines(item.surcharge.lines),
            )
            for item in items
        ],
    )
    db.session.add(quote)
    db.session.flush()
    return quote


@dataclass(frozen=True)
class ItemOrder:
    """What a buyer asks for one item: how many, or how much (an open amount), and the answers."""

    item_id: int
    quantity: int = 1
    chosen_minor: int | None = None
    answers: dict[str, str] | None = None


def quote_item(
    item_id: int,
    *,
    quantity: int,
    chosen_minor: int | None,
    answers: dict[str, str] | None,
    user_id: int | None,
    now: datetime,
) -> Quote:
    """Price an order of one catalog item (see quote_items)."""
    return quote_items([ItemOrder(item_id, quantity, chosen_minor, answers)], user_id=user_id, now=now)


def quote_items(orders: list[ItemOrder], *, user_id: int | None, now: datetime) -> Quote:
    """Price an order of one or more catalog items, hold their seats, store it as a quote: one transaction.

    Raises CheckoutError("empty" | "not_on_sale" | "account_required" | "mixed_currency" | "sold_out"
    | an OrderError code). Prices come from the items; only an open amount is the payer's, checked
    against its range. The items are locked in id order, so two baskets never deadlock.
    """
    if not orders:
        raise CheckoutError("empty")
    end_read_only_transaction()  # the items' locks come first (on SQLite: the write lock before any read)
    items = {item_id: lock_item(item_id) for item_id in sorted({order.item_id for order in orders})}
    lines: list[QuoteLine] = []
    expires_at = order_hold_until(now)
    for order in orders:
        item = items[order.item_id]
        if not item.on_sale(now):
            db.session.rollback()
            raise CheckoutError("not_on_sale", description=item.name_el)
        if item.requires_account and user_id is None:
            db.session.rollback()
            raise CheckoutError("account_required")
        try:
            priced = price_order(
                price_minor=item.price_minor,
                min_minor=item.min_minor,
                max_minor=item.max_minor,
                max_per_order=item.max_per_order,
                quantity=order.quantity,
                chosen_minor=order.chosen_minor,
                questions=item.questions or [],
                answers=order.answers,
            )
        except OrderError as error:
            db.session.rollback()
            raise CheckoutError(error.code, currency=item.currency, item_id=item.id, **error.details) from None
        if item.available_until is not None:
            expires_at = min(expires_at, item.available_until)
        lines.append(
            QuoteLine(
                agency_id=item.agency_id,
                item_id=item.id,
                quantity=priced.quantity,
                answers=priced.answers or None,
                principal_minor=priced.total_minor,
                surcharge_minor=0,
                amount_minor=priced.total_minor,
                explanation=[],
            )
        )
    if len({items[order.item_id].currency for order in orders}) != 1:
        db.session.rollback()
        raise CheckoutError("mixed_currency")
    quote = Quote(
        token=secrets.token_urlsafe(32),
        user_id=user_id,
        currency=items[orders[0].item_id].currency,
        total_minor=sum(line.amount_minor for line in lines),
        expires_at=expires_at,
        created_at=now,
        lines=lines,
    )
    db.session.add(quote)
    db.session.flush()
    for line in lines:
        item = items[line.item_id]
        if item.issues_tickets:
            try:
                hold_seats(item.id, line.id, line.quantity, expires_at, now)
            except SoldOut as sold_out:
                db.session.rollback()
                raise CheckoutError("sold_out", left=sold_out.left, item_id=item.id) from None
    db.session.flush()
    return quote


def quote_payer_email(quote_id: int | None) -> str | None:
    """The receipt address a guest gave on a quote, if any."""
    if quote_id is None:
        return None
    return db.session.scalar(select(Quote.payer_email).where(Quote.id == quote_id))


def get_user_quote(user_id: int, token: str) -> Quote | None:
    """The user's quote with this token, or None (also for another user's token)."""
    return db.session.scalar(select(Quote).where(Quote.token == token, Quote.user_id == user_id))
