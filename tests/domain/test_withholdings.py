"""Tests for app.domain.withholdings: shares of a line for third parties that add up exactly."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.withholdings import (
    InvalidWithholding,
    Withholding,
    check_withholding_settings,
    reverse_in_proportion,
    split_by_weight,
    split_line,
    withholdings_for_kind,
)


def percent(name: str, rate: str) -> Withholding:
    return Withholding(name, percent=Decimal(rate))


def fixed(name: str, minor: int) -> Withholding:
    return Withholding(name, fixed_minor=minor)


SPLITS = [
    pytest.param(10000, [percent("Fund X", "2")], [200], 9800, id="two-per-cent-of-100"),
    pytest.param(125, [percent("Fund X", "2")], [3], 122, id="2.50-cents-rounds-half-up-to-3"),
    pytest.param(124, [percent("Fund X", "2")], [2], 122, id="2.48-cents-rounds-down-to-2"),
    pytest.param(1, [percent("Fund X", "49.99")], [0], 1, id="less-than-half-a-cent-is-nothing"),
    pytest.param(1, [percent("Fund X", "50")], [1], 0, id="exactly-half-a-cent-rounds-up"),
    pytest.param(12345, [percent("Fund X", "2"), percent("Fund Y", "3.5")], [247, 432], 11666, id="two-percentages"),
    pytest.param(12345, [percent("Fund X", "2"), fixed("Fund Y", 50)], [247, 50], 12048, id="percentage-and-fixed"),
    pytest.param(40, [fixed("Stamp", 50)], [40], 0, id="fixed-larger-than-the-line-is-capped"),
    pytest.param(100, [percent("Fund X", "80"), fixed("Stamp", 50)], [80, 20], 0, id="fixed-capped-at-what-is-left"),
    pytest.param(
        100, [fixed("Stamp", 50), percent("Fund X", "80")], [50, 50], 0, id="percentage-capped-at-what-is-left"
    ),
    pytest.param(100, [percent("Fund X", "100")], [100], 0, id="everything-withheld"),
    pytest.param(0, [percent("Fund X", "2"), fixed("Stamp", 50)], [0, 0], 0, id="an-empty-line"),
    pytest.param(9999, [], [], 9999, id="no-withholdings"),
]


@pytest.mark.parametrize(("line", "withholdings", "shares", "remainder"), SPLITS)
def test_worked_examples(line: int, withholdings: list[Withholding], shares: list[int], remainder: int) -> None:
    split = split_line(line, "EUR", withholdings)
    assert [share.amount_minor for share in split.shares] == shares
    assert [share.name for share in split.shares] == [item.name for item in withholdings]
    assert split.remainder_minor == remainder
    assert split.withheld_minor + split.remainder_minor == line


def test_a_currency_without_minor_units_rounds_to_whole_units() -> None:
    split = split_line(125, "JPY", [percent("Fund X", "2")])  # 2.5 yen
    assert (split.shares[0].amount_minor, split.remainder_minor) == (3, 122)


@pytest.mark.parametrize("line", [0, 1, 2, 3, 7, 99, 100, 101, 333, 12345, 999_999_99])
def test_the_parts_always_add_up_to_the_line_and_none_is_negative(line: int) -> None:
    menu = [percent("A", "0.5"), percent("B", "33.333"), fixed("C", 7), percent("D", "66.67"), fixed("E", 10**9)]
    for size in range(len(menu) + 1):
        for chosen in itertools.permutations(menu, size):
            split = split_line(line, "EUR", chosen)
            assert split.withheld_minor + split.remainder_minor == line
            assert all(share.amount_minor >= 0 for share in split.shares) and split.remainder_minor >= 0


@pytest.mark.parametrize(
    ("line", "error"), [(-1, ValueError), (Decimal("1.5"), TypeError), (1.5, TypeError), (True, TypeError)]
)
def test_a_line_is_whole_non_negative_minor_units(line: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        split_line(line, "EUR", [percent("Fund X", "2")])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "arguments",
    [
        {"name": "", "percent": Decimal("2")},
        {"name": "Fund X"},
        {"name": "Fund X", "percent": Decimal("2"), "fixed_minor": 50},
        {"name": "Fund X", "percent": Decimal("0")},
        {"name": "Fund X", "percent": Decimal("100.01")},
        {"name": "Fund X", "percent": Decimal("NaN")},
        {"name": "Fund X", "fixed_minor": 0},
        {"name": "Fund X", "fixed_minor": -5},
        {"name": "Fund X", "fixed_minor": True},
        {"name": "x" * 101, "fixed_minor": 5},
    ],
)
def test_a_withholding_is_a_named_percentage_or_a_positive_amount(arguments: dict) -> None:
    with pytest.raises(InvalidWithholding):
        Withholding(**arguments)


SETTINGS = {
    "default": [{"name": "Ταμείο Χ", "percent": "2"}],
    "traffic_fine": [{"name": "Fund Y", "fixed_minor": 50}, {"name": "Fund Z", "percent": "0.5"}],
    "parking": [],
}


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("traffic_fine", [fixed("Fund Y", 50), percent("Fund Z", "0.5")]),
        ("property_fee", [percent("Ταμείο Χ", "2")]),  # not listed: the default list
        ("parking", []),  # listed empty: nothing withheld, not the default
    ],
)
def test_a_kind_takes_its_own_list_or_else_the_default(kind: str, expected: list[Withholding]) -> None:
    assert withholdings_for_kind(SETTINGS, kind) == expected


def test_no_settings_mean_no_withholdings() -> None:
    assert withholdings_for_kind({}, "property_fee") == []
    assert withholdings_for_kind(None, "property_fee") == []


def test_settings_round_trip_through_their_stored_form() -> None:
    assert check_withholding_settings(SETTINGS) == SETTINGS
    assert check_withholding_settings(None) == {}


@pytest.mark.parametrize(
    "settings",
    [
        {"default": [{"name": "A", "percent": "60"}, {"name": "B", "percent": "40.01"}]},
        {"default": [{"name": "A", "percent": 2.5}]},  # a float percentage would lose exactness
        {"default": [{"name": "A", "percent": "two"}]},
        {"default": {"name": "A", "percent": "2"}},
        {"default": ["A; 2%"]},
    ],
)
def test_settings_that_cannot_be_applied_are_refused(settings: dict) -> None:
    with pytest.raises(InvalidWithholding):
        check_withholding_settings(settings)


# -- reversing a split in proportion (refunds) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "held", "taken"),
    [
        pytest.param(
            5000, [247, 432, 100, 11566], [100, 175, 41, 4684], id="the-two-cents-left-go-to-the-largest-remainders"
        ),
        pytest.param(1, [5, 5], [1, 0], id="a-tie-goes-to-the-earlier-part"),
        pytest.param(779, [247, 432, 100, 0], [247, 432, 100, 0], id="everything-held-is-taken-whole"),
        pytest.param(3, [0, 2, 0, 1], [0, 2, 0, 1], id="an-empty-part-gives-nothing"),
        pytest.param(0, [10, 20], [0, 0], id="nothing-refunded"),
    ],
)
def test_a_refund_reverses_each_part_in_proportion(amount: int, held: list[int], taken: list[int]) -> None:
    assert reverse_in_proportion(amount, held) == taken


@pytest.mark.parametrize(
    ("amount", "held", "error"),
    [
        (11, [5, 5], ValueError),
        (-1, [5], ValueError),
        (1, [-1, 3], ValueError),
        (1.5, [5], TypeError),
        (1, [], ValueError),
    ],
)
def test_a_reversal_never_takes_more_than_is_held(amount: object, held: list[int], error: type[Exception]) -> None:
    with pytest.raises(error):
        reverse_in_proportion(amount, held)  # type: ignore[arg-type]


@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=8).filter(sum), st.data())
def test_reversals_add_up_exactly_and_stay_within_each_part(held: list[int], data: st.DataObject) -> None:
    amount = data.draw(st.integers(0, sum(held)))
    taken = reverse_in_proportion(amount, held)
    assert sum(taken) == amount
    assert all(0 <= part <= still for part, still in zip(taken, held, strict=True))
    # Each part is its exact share rounded down or up: never a cent further from proportion.
    for part, still in zip(taken, held, strict=True):
        assert abs(part * sum(held) - amount * still) < sum(held)


@given(st.lists(st.integers(1, 10**6), min_size=1, max_size=6), st.lists(st.integers(1, 100), max_size=10))
def test_any_series_of_partial_refunds_ends_at_zero_and_never_below(held: list[int], percents: list[int]) -> None:
    still = list(held)
    for percent in percents:
        amount = sum(still) * percent // 100
        for index, part in enumerate(reverse_in_proportion(amount, still)):
            still[index] -= part
        assert all(part >= 0 for part in still)
    for index, part in enumerate(reverse_in_proportion(sum(still), still)):  # the rest, refunded
        still[index] -= part
    assert still == [0] * len(held)


@given(st.integers(0, 10**9), st.lists(st.integers(0, 10**6), min_size=1, max_size=8).filter(sum))
def test_split_by_weight_adds_up_and_gives_a_zero_weight_nothing(amount: int, weights: list[int]) -> None:
    parts = split_by_weight(amount, weights)
    assert sum(parts) == amount
    assert all(part == 0 for part, weight in zip(parts, weights, strict=True) if weight == 0)
