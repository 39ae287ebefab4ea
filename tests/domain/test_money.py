"""Tests for app.domain.money: integer minor units, exact sharing, locale formatting."""

from __future__ import annotations

import ast
import itertools
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_UP, Decimal
from pathlib import Path

import pytest

from app.domain import money as money_module
from app.domain.money import CurrencyMismatch, Money, format_money, minor_unit_exponent, sum_money


def eur(amount: int) -> Money:
    return Money(amount, "EUR")


# -- construction -------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "error"),
    [
        (12.5, "EUR", TypeError),  # a float is never an amount
        (True, "EUR", TypeError),  # bool is an int subclass but not money
        (Decimal("12"), "EUR", TypeError),  # Decimal means major units: use from_decimal
        ("12", "EUR", TypeError),
        (1, "eur", ValueError),  # codes are upper-case
        (1, "EURO", ValueError),
        (1, "E1R", ValueError),
        (1, "ZZZ", ValueError),  # three letters, but no such currency
        (1, None, TypeError),
    ],
)
def test_money_refuses_bad_amounts_and_currencies(amount, currency, error):
    with pytest.raises(error):
        Money(amount, currency)


def test_money_accepts_negative_differences_and_is_immutable():
    difference = Money(-250, "EUR")
    assert difference.amount == -250
    with pytest.raises(AttributeError):
        difference.amount = 0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("currency", "exponent"),
    [("EUR", 2), ("USD", 2), ("JPY", 0), ("BHD", 3)],
)
def test_minor_unit_exponent(currency, exponent):
    assert minor_unit_exponent(currency) == exponent


def test_minor_unit_exponent_refuses_unknown_currency():
    with pytest.raises(ValueError, match="ZZZ"):
        minor_unit_exponent("ZZZ")


@pytest.mark.parametrize(
    ("value", "currency", "rounding", "expected_minor"),
    [
        ("12.34", "EUR", ROUND_HALF_UP, 1234),
        (Decimal("12"), "EUR", ROUND_HALF_UP, 1200),  # 12 euros = 1200 cents
        (" 7.1 ", "EUR", ROUND_HALF_UP, 710),  # surrounding spaces from a form are harmless
        ("12.345", "EUR", ROUND_HALF_UP, 1235),  # 1234.5 cents, half goes up
        ("12.345", "EUR", ROUND_HALF_EVEN, 1234),  # 1234.5 cents, half goes to even 1234
        ("12.355", "EUR", ROUND_HALF_EVEN, 1236),  # 1235.5 cents, half goes to even 1236
        ("-12.345", "EUR", ROUND_HALF_UP, -1235),  # decimal's HALF_UP rounds away from zero
        ("12.349", "EUR", ROUND_DOWN, 1234),  # 1234.9 truncated
        ("12.341", "EUR", ROUND_UP, 1235),  # 1234.1 away from zero
        ("0.005", "EUR", ROUND_HALF_UP, 1),  # 0.5 cent → 1 cent
        ("0.004", "EUR", ROUND_HALF_UP, 0),  # 0.4 cent → nothing
        ("1234.5", "JPY", ROUND_HALF_UP, 1235),  # yen has no minor unit
        ("1234.5", "JPY", ROUND_HALF_EVEN, 1234),
        ("1.2345", "BHD", ROUND_HALF_UP, 1235),  # dinar has three decimals: 1234.5 fils → 1235
    ],
)
def test_from_decimal_rounds_to_the_minor_unit(value, currency, rounding, expected_minor):
    assert Money.from_decimal(value, currency, rounding=rounding) == Money(expected_minor, currency)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (0.1, TypeError),  # float
        (12, TypeError),  # ambiguous: 12 euros or 12 cents?
        (True, TypeError),
        ("12,34", ValueError),  # a comma is not a decimal point here
        ("twelve", ValueError),
        ("NaN", ValueError),
        ("Infinity", ValueError),
    ],
)
def test_from_decimal_refuses(value, error):
    with pytest.raises(error):
        Money.from_decimal(value, "EUR")


def test_from_decimal_refuses_unknown_rounding():
    with pytest.raises(ValueError, match="rounding"):
        Money.from_decimal("1.005", "EUR", rounding="HALF_UP")


@pytest.mark.parametrize(
    ("money", "expected"),
    [
        (Money(1234, "EUR"), "12.34"),
        (Money(-5, "EUR"), "-0.05"),
        (Money(0, "EUR"), "0.00"),
        (Money(1234, "JPY"), "1234"),
        (Money(1500, "BHD"), "1.500"),
    ],
)
def test_to_decimal(money, expected):
    assert money.to_decimal() == Decimal(expected)
    # The exponent is kept, so printing never drops the cents.
    assert str(money.to_decimal()) == expected


def test_zero_and_truthiness():
    assert Money.zero("EUR") == Money(0, "EUR")
    assert Money.zero("EUR").is_zero is True
    assert Money(1, "EUR").is_zero is False
    assert not Money.zero("EUR")
    assert Money(-1, "EUR")
    assert Money(1, "EUR")


# -- arithmetic ---------------------------------------------------------------


def test_addition_subtraction_and_negation():
    assert eur(1050) + eur(275) == eur(1325)  # 10.50 + 2.75 = 13.25
    assert eur(1050) - eur(2000) == eur(-950)  # 10.50 - 20.00 = -9.50
    assert -eur(950) == eur(-950)
    assert -eur(-950) == eur(950)


def test_ordering_within_a_currency():
    assert eur(100) < eur(101)
    assert eur(101) > eur(100)
    assert eur(100) <= eur(100)
    assert eur(100) >= eur(100)
    assert sorted([eur(300), eur(-5), eur(20)]) == [eur(-5), eur(20), eur(300)]
    assert max([eur(300), eur(-5), eur(20)]) == eur(300)


@pytest.mark.parametrize(
    "operation",
    [
        lambda a, b: a + b,
        lambda a, b: a - b,
        lambda a, b: a < b,
        lambda a, b: a <= b,
        lambda a, b: a > b,
        lambda a, b: a >= b,
    ],
    ids=["add", "sub", "lt", "le", "gt", "ge"],
)
def test_different_currencies_refuse_to_mix(operation):
    with pytest.raises(CurrencyMismatch, match="EUR and USD"):
        operation(Money(100, "EUR"), Money(100, "USD"))


def test_currency_mismatch_is_a_value_error():
    assert issubclass(CurrencyMismatch, ValueError)


def test_equality_across_currencies_is_false_not_an_error():
    # 1.00 EUR and 1.00 USD are simply different values.
    assert Money(100, "EUR") != Money(100, "USD")
    assert Money(100, "EUR") == Money(100, "EUR")
    assert len({Money(100, "EUR"), Money(100, "EUR"), Money(100, "USD")}) == 2


@pytest.mark.parametrize(
    "operation",
    [lambda m: m + 1, lambda m: m - 1, lambda m: m < 1, lambda m: m + Decimal("1")],
    ids=["add-int", "sub-int", "lt-int", "add-decimal"],
)
def test_money_does_not_mix_with_bare_numbers(operation):
    with pytest.raises(TypeError):
        operation(eur(100))


def test_sum_money():
    # 1.00 + 2.50 - 0.50 = 3.00
    assert sum_money([eur(100), eur(250), eur(-50)], "EUR") == eur(300)
    assert sum_money([], "EUR") == Money(0, "EUR")
    assert sum_money((Money(n, "JPY") for n in (1, 2, 3)), "JPY") == Money(6, "JPY")


def test_sum_money_refuses_a_foreign_item():
    with pytest.raises(CurrencyMismatch, match="USD"):
        sum_money([eur(100), Money(100, "USD")], "EUR")
    # Even when every item agrees with each other, they must agree with the total's currency.
    with pytest.raises(CurrencyMismatch):
        sum_money([Money(100, "USD")], "EUR")


def test_sum_money_refuses_bare_numbers():
    with pytest.raises(TypeError):
        sum_money([eur(1), 2], "EUR")  # type: ignore[list-item]


# -- percent ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "rate", "rounding", "expected"),
    [
        (12000, Decimal("0.73"), ROUND_HALF_UP, 88),  # 12000 × 0.0073 = 87.6 → 88
        (12000, Decimal("0.73"), ROUND_DOWN, 87),  # 87.6 truncated
        (5000, Decimal("0.73"), ROUND_HALF_UP, 37),  # 5000 × 0.0073 = 36.5 → 37
        (5000, Decimal("0.73"), ROUND_HALF_EVEN, 36),  # 36.5 → even 36
        (12000, Decimal("20"), ROUND_HALF_UP, 2400),  # 20 % of 120.00 = 24.00
        (12000, 20, ROUND_HALF_UP, 2400),  # a whole-number rate may be an int
        (-5000, Decimal("0.73"), ROUND_HALF_UP, -37),  # -36.5 → away from zero
        (0, Decimal("0.73"), ROUND_HALF_UP, 0),
    ],
)
def test_percent(amount, rate, rounding, expected):
    assert eur(amount).percent(rate, rounding=rounding) == eur(expected)


@pytest.mark.parametrize("rate", [0.73, True, "0.73"])
def test_percent_refuses_non_decimal_rates(rate):
    with pytest.raises(TypeError):
        eur(100).percent(rate)


# -- allocate and split -------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "ratios", "expected"),
    [
        # 100/3 = 33.33 each; the one spare cent goes to the first (ties by position).
        (100, [1, 1, 1], [34, 33, 33]),
        # 100×1/3 = 33 r 1, 100×2/3 = 66 r 2: the spare cent goes to the larger remainder.
        (100, [1, 2], [33, 67]),
        # A zero ratio gets nothing, even when cents are left over.
        (100, [1, 0, 2], [33, 0, 67]),
        (10, [0, 1], [0, 10]),
        # 5×3/10 = 1 r 5 and 5×7/10 = 3 r 5: tie, the earlier part gets the spare cent.
        (5, [3, 7], [2, 3]),
        (1000, [50, 30, 20], [500, 300, 200]),  # divides exactly
        (1, [1, 1, 1], [1, 0, 0]),
        (0, [1, 1], [0, 0]),
        (7, [1], [7]),
        # The mirror image of 100 → [33, 67].
        (-100, [1, 2], [-33, -67]),
        (-100, [1, 1, 1], [-34, -33, -33]),
    ],
)
def test_allocate_table(amount, ratios, expected):
    assert eur(amount).allocate(ratios) == [eur(part) for part in expected]


@pytest.mark.parametrize(
    ("amount", "n", "expected"),
    [
        (1234, 3, [412, 411, 411]),  # 1234 = 3 × 411 + 1
        (100, 3, [34, 33, 33]),  # 100 = 3 × 33 + 1
        (2, 4, [1, 1, 0, 0]),
        (0, 2, [0, 0]),
        (1000, 1, [1000]),
        (-5, 3, [-2, -2, -1]),  # larger magnitudes first for negative amounts too
    ],
)
def test_split_table(amount, n, expected):
    assert eur(amount).split(n) == [eur(part) for part in expected]


def test_split_keeps_the_currency():
    assert Money(1001, "JPY").split(2) == [Money(501, "JPY"), Money(500, "JPY")]


@pytest.mark.parametrize(
    ("ratios", "error"),
    [
        ([], ValueError),  # nothing to share into
        ([0, 0], ValueError),
        ([1, -1], ValueError),
        ([1.5, 1], TypeError),
        ([True, 1], TypeError),
        ("12", TypeError),
    ],
)
def test_allocate_refuses_bad_ratios(ratios, error):
    with pytest.raises(error):
        eur(100).allocate(ratios)


@pytest.mark.parametrize(("n", "error"), [(0, ValueError), (-2, ValueError), (2.0, TypeError)])
def test_split_refuses_bad_counts(n, error):
    with pytest.raises(error):
        eur(100).split(n)


RATIO_SETS = [
    [1],
    [1, 1],
    [1, 2],
    [3, 7],
    [1, 1, 1],
    [1, 0, 2],
    [0, 5, 0],
    [2, 3, 5, 7],
    [50, 30, 20],
    [1, 1, 1, 1, 1, 1, 1],
    [97, 1, 1, 1],
]


def test_allocate_always_adds_up_and_stays_within_a_cent_of_the_exact_share():
    for amount, ratios in itertools.product(range(-250, 251), RATIO_SETS):
        parts = [part.amount for part in eur(amount).allocate(ratios)]
        total = sum(ratios)
        assert sum(parts) == amount, (amount, ratios, parts)
        for part, ratio in zip(parts, ratios, strict=True):
            # |part - amount × ratio / total| < 1, kept in integers.
            assert abs(part * total - amount * ratio) < total, (amount, ratios, parts)
            if ratio == 0:
                assert part == 0


def test_split_always_adds_up_into_near_equal_parts_largest_first():
    for amount, n in itertools.product(range(-250, 251), range(1, 13)):
        parts = [part.amount for part in eur(amount).split(n)]
        assert len(parts) == n
        assert sum(parts) == amount, (amount, n, parts)
        assert max(parts) - min(parts) <= 1, (amount, n, parts)
        magnitudes = [abs(part) for part in parts]
        assert magnitudes == sorted(magnitudes, reverse=True), (amount, n, parts)


# -- formatting ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "expected"),
    [
        (1234, "EUR", "el", "12,34\xa0€"),  # Greek: decimal comma, symbol after a no-break space
        (1234, "EUR", "en", "€12.34"),
        (12345678900, "EUR", "el", "123.456.789,00\xa0€"),  # dots group thousands in Greek
        (123456789, "EUR", "en", "€1,234,567.89"),
        (-1234, "EUR", "el", "-12,34\xa0€"),
        (-1234, "EUR", "en", "-€12.34"),
        (0, "EUR", "el", "0,00\xa0€"),
        (1234, "JPY", "en", "¥1,234"),  # no decimals for yen
        (1234, "JPY", "el", "1.234\xa0JP¥"),
        (1500, "BHD", "en", "BHD1.500"),  # three decimals for dinar
    ],
)
def test_format(amount, currency, locale, expected):
    assert Money(amount, currency).format(locale) == expected
    assert format_money(amount, currency, locale) == expected


def test_format_money_refuses_unknown_currency():
    with pytest.raises(ValueError):
        format_money(100, "ZZZ", "el")


def test_module_is_pure():
    tree = ast.parse(Path(money_module.__file__).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    # Domain rules must run without a web app or a database.
    assert imported.isdisjoint({"flask", "flask_babel", "flask_sqlalchemy", "sqlalchemy", "werkzeug"})
