"""Pricing an order of a catalog item: the amount always comes from the item, within its rules."""

from __future__ import annotations

import pytest

from app.domain.orders import ANSWER_MAX_LENGTH, OrderError, price_order, seats_left

FIXED = {"price_minor": 1500, "min_minor": None, "max_minor": None, "max_per_order": 4}
OPEN = {"price_minor": None, "min_minor": 500, "max_minor": 50000, "max_per_order": 1}
HOLDER = [{"key": "holder", "label_el": "Όνομα", "label_en": "Name", "required": True}]


@pytest.mark.parametrize(
    ("quantity", "total"),
    [(1, 1500), (2, 3000), (4, 6000)],
)
def test_a_fixed_price_costs_quantity_times_price(quantity: int, total: int) -> None:
    order = price_order(**FIXED, quantity=quantity, chosen_minor=None)
    assert (order.quantity, order.unit_minor, order.total_minor) == (quantity, 1500, total)


def test_a_chosen_amount_is_ignored_for_a_fixed_price() -> None:
    """A tampered form that sends its own price changes nothing."""
    assert price_order(**FIXED, quantity=2, chosen_minor=1).total_minor == 3000


@pytest.mark.parametrize("quantity", [0, -1, 5, True])
def test_a_quantity_outside_one_to_the_most_per_order_is_refused(quantity: int) -> None:
    with pytest.raises(OrderError) as refused:
        price_order(**FIXED, quantity=quantity, chosen_minor=None)
    assert refused.value.code == "quantity"
    assert refused.value.details["most"] == 4


@pytest.mark.parametrize(
    ("chosen", "code"),
    [(None, "amount_missing"), (499, "amount_too_low"), (50001, "amount_too_high"), (0, "amount_too_low")],
)
def test_an_open_amount_outside_its_range_is_refused(chosen: int | None, code: str) -> None:
    with pytest.raises(OrderError) as refused:
        price_order(**OPEN, quantity=1, chosen_minor=chosen)
    assert refused.value.code == code
    assert (refused.value.details["least"], refused.value.details["most"]) == (500, 50000)


@pytest.mark.parametrize("chosen", [500, 2050, 50000])
def test_an_open_amount_inside_its_range_is_what_the_payer_chose(chosen: int) -> None:
    assert price_order(**OPEN, quantity=1, chosen_minor=chosen).total_minor == chosen


def test_an_open_amount_is_one_unit() -> None:
    with pytest.raises(OrderError) as refused:
        price_order(**OPEN, quantity=3, chosen_minor=1000)
    assert refused.value.code == "quantity"


def test_required_answers_are_required_and_kept_tidy() -> None:
    with pytest.raises(OrderError) as refused:
        price_order(**FIXED, quantity=1, chosen_minor=None, questions=HOLDER, answers={"holder": "   "})
    assert refused.value.code == "answer_missing"
    order = price_order(
        **FIXED, quantity=1, chosen_minor=None, questions=HOLDER, answers={"holder": "  Μαρία   Π. ", "other": "x"}
    )
    assert order.answers == {"holder": "Μαρία Π."}  # spaces tidied, unknown keys dropped


def test_an_answer_too_long_is_refused() -> None:
    with pytest.raises(OrderError) as refused:
        price_order(
            **FIXED, quantity=1, chosen_minor=None, questions=HOLDER, answers={"holder": "x" * (ANSWER_MAX_LENGTH + 1)}
        )
    assert refused.value.code == "answer_too_long"


@pytest.mark.parametrize(("capacity", "taken", "left"), [(None, 5, None), (10, 3, 7), (2, 2, 0), (2, 5, 0)])
def test_seats_left(capacity: int | None, taken: int, left: int | None) -> None:
    assert seats_left(capacity, taken) == left
