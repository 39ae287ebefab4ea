"""Pricing an order of a catalog item: pure rules, no database.

A fixed-price item costs quantity × price; an open-amount item (a donation, a deposit) costs
what the payer chose, within the item's range, one unit at a time. Every amount is computed
here from the item, never taken from a form.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: The longest answer kept for a question (a name on a ticket, a licence number).
ANSWER_MAX_LENGTH = 120


class OrderError(ValueError):
    """An order that cannot be priced; ``code`` names the reason, ``details`` fill the sentence."""

    def __init__(self, code: str, **details: Any) -> None:
        super().__init__(code)
        self.code = code
        self.details = details


@dataclass(frozen=True)
class PricedOrder:
    """What an order costs: units, the price of one, and the total, in minor units."""

    quantity: int
    unit_minor: int
    total_minor: int
    answers: dict[str, str]


def price_order(
    *,
    price_minor: int | None,
    min_minor: int | None,
    max_minor: int | None,
    max_per_order: int,
    quantity: int,
    chosen_minor: int | None,
    questions: Sequence[Mapping[str, Any]] = (),
    answers: Mapping[str, str] | None = None,
) -> PricedOrder:
    """Price an order of one item; raises OrderError("quantity" | "amount_missing" |
    "amount_too_low" | "amount_too_high" | "answer_missing" | "answer_too_long")."""
    if price_minor is not None:
        if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= max_per_order:
            raise OrderError("quantity", most=max_per_order)
        unit = price_minor
    else:
        if quantity != 1:
            raise OrderError("quantity", most=1)
        if min_minor is None or max_minor is None:
            raise ValueError("An open-amount item needs a minimum and a maximum.")
        if chosen_minor is None:
            raise OrderError("amount_missing", least=min_minor, most=max_minor)
        if chosen_minor < min_minor:
            raise OrderError("amount_too_low", least=min_minor, most=max_minor)
        if chosen_minor > max_minor:
            raise OrderError("amount_too_high", least=min_minor, most=max_minor)
        unit = chosen_minor
    kept: dict[str, str] = {}
    given = answers or {}
    for question in questions:
        key = str(question["key"])
        answer = " ".join(str(given.get(key) or "").split())
        if not answer and question.get("required"):
            raise OrderError("answer_missing", key=key)
        if len(answer) > ANSWER_MAX_LENGTH:
            raise OrderError("answer_too_long", key=key, most=ANSWER_MAX_LENGTH)
        if answer:
            kept[key] = answer
    return PricedOrder(quantity=quantity, unit_minor=unit, total_minor=unit * quantity, answers=kept)


def seats_left(capacity: int | None, taken: int) -> int | None:
    """Seats still for sale (never below 0), or None when the item has no capacity limit."""
    if capacity is None:
        return None
    return max(capacity - taken, 0)
