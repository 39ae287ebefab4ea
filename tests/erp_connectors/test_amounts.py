"""The one amount parser: exact, strict about grouping, never fooled by what Decimal would accept."""

from __future__ import annotations

from decimal import Decimal

import pytest
from babel.numbers import format_decimal
from hypothesis import given
from hypothesis import strategies as st

from erp_connectors.amounts import (
    AmountError,
    parse_amount,
    parse_minor_units,
    parse_with_separators,
    to_minor_units,
)


@pytest.mark.parametrize(
    ("typed", "minor"),
    [
        ("12,50", 1250),
        ("12.50", 1250),
        ("1.234,56", 123456),
        ("1,234.56", 123456),
        ("1.234", 123400),  # a Greek thousands point: 1.234 euros would have three decimals
        ("1,234", 123400),
        ("120,505", 12050500),
        ("1 234,56", 123456),
        ("1\u00a0234,56", 123456),
        ("€ 80", 8000),
        ("120,00 €", 12000),
        ("120 EUR", 12000),
        ("0,07", 7),
        ("0.5", 50),
    ],
)
def test_amounts_typed_in_greek_or_english_are_read_exactly(typed: str, minor: int) -> None:
    assert parse_minor_units(typed, 2) == minor


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("\u00a0", "empty"),
        ("12\x0050", "control character"),
        ("NaN", "not an amount"),
        ("Infinity", "not an amount"),
        ("inf", "not an amount"),
        ("1E5", "not an amount"),
        ("1e-2", "not an amount"),
        ("0x10", "not an amount"),
        ("١٢٣", "not an amount"),  # digits, but not ones anyone types an amount in here
        ("12,5055", "more than 2 decimals"),
        ("0,505", "more than 2 decimals"),
        ("12.34.56", "point and comma"),
        ("1,234,56", "point and comma"),
        ("12,345,6", "point and comma"),
        (",50", "not an amount"),
        ("120.", "not an amount"),
        ("-120", "negative"),
        ("1" * 41, "too long"),
    ],
)
def test_what_is_not_an_amount_is_refused_with_a_sentence(typed: str, says: str) -> None:
    with pytest.raises(AmountError, match=says):
        parse_minor_units(typed, 2)


def test_an_amount_two_languages_read_differently_is_refused() -> None:
    """With three decimals (Bahraini dinars), "1.234" and "1,000" mean one thing in Greek and another in English."""
    with pytest.raises(AmountError, match="could be 1234 or 1.234"):
        parse_minor_units("1.234", 3)
    with pytest.raises(AmountError, match="could be"):
        parse_minor_units("1,000", 3)
    assert parse_minor_units("1.234,000", 3) == 1_234_000


@pytest.mark.parametrize("typed", ["10,005", "1.234", "1,234"])
def test_unsure_amounts_can_be_refused_rather_than_read_as_thousands(typed: str) -> None:
    with pytest.raises(AmountError, match="unclear"):
        parse_minor_units(typed, 2, refuse_unsure=True)
    assert parse_minor_units("1.234,00", 2, refuse_unsure=True) == 123400
    assert parse_minor_units("1,234.00", 2, refuse_unsure=True) == 123400


def test_currencies_without_decimals() -> None:
    assert parse_minor_units("1.200", 0) == 1200
    with pytest.raises(AmountError):
        parse_minor_units("12,5", 0)


def test_minor_units_never_round() -> None:
    assert to_minor_units(Decimal("12.500"), 2) == 1250
    with pytest.raises(AmountError):
        to_minor_units(Decimal("12.505"), 2)


@pytest.mark.parametrize(
    ("text", "decimal_separator", "thousands_separator", "minor"),
    [
        ("1.234,56", ",", ".", 123456),
        ("1234,56", ",", ".", 123456),
        ("-12,50", ",", ".", -1250),
        ("1,234.56", ".", ",", 123456),
        ("1234.5", ".", None, 123450),
        ("1'234.50", ".", "'", 123450),
        ("1 234,50", ",", " ", 123450),
    ],
)
def test_an_export_is_read_with_its_own_separators(
    text: str, decimal_separator: str, thousands_separator: str | None, minor: int
) -> None:
    assert (
        parse_with_separators(text, decimal_separator=decimal_separator, thousands_separator=thousands_separator)
        == minor
    )


@pytest.mark.parametrize("text", ["12.34", "1.234,5,6", "1,234.56", "€ 12,50", "1.234", "12,345"])
def test_an_export_refuses_separators_it_does_not_use(text: str) -> None:
    with pytest.raises(AmountError, match="not an amount written with ','"):
        parse_with_separators(text, decimal_separator=",", thousands_separator=None)


# -- properties -------------------------------------------------------------------------------------

amounts_minor = st.integers(min_value=0, max_value=10**13)


@given(
    minor=amounts_minor,
    locale=st.sampled_from(["el", "en"]),
    pattern=st.sampled_from(["#,##0.00", "0.00", "#,##0.##", "0.##"]),
)
def test_any_amount_formatted_in_greek_or_english_parses_back_exactly(minor: int, locale: str, pattern: str) -> None:
    text = format_decimal(Decimal(minor).scaleb(-2), format=pattern, locale=locale, decimal_quantization=True)
    assert parse_minor_units(text, 2) == minor
    assert parse_amount(text, max_decimals=2) == Decimal(minor).scaleb(-2)


@given(minor=amounts_minor, locale=st.sampled_from(["el", "en"]), exponent=st.integers(min_value=0, max_value=2))
def test_any_amount_with_all_its_decimals_parses_back_for_any_currency(minor: int, locale: str, exponent: int) -> None:
    pattern = "#,##0" + ("." + "0" * exponent if exponent else "")
    text = format_decimal(Decimal(minor).scaleb(-exponent), format=pattern, locale=locale)
    assert parse_minor_units(text, exponent) == minor


@given(
    minor=st.integers(min_value=-(10**13), max_value=10**13),
    separators=st.sampled_from([(",", "."), (".", ","), (",", None), (".", None), (".", "'"), (",", " ")]),
)
def test_any_amount_written_with_an_exports_separators_parses_back(minor: int, separators: tuple) -> None:
    decimal_separator, thousands_separator = separators
    whole, cents = divmod(abs(minor), 100)
    grouped = f"{whole:,}".replace(",", thousands_separator or "")
    text = f"{'-' if minor < 0 else ''}{grouped}{decimal_separator}{cents:02d}"
    assert (
        parse_with_separators(text, decimal_separator=decimal_separator, thousands_separator=thousands_separator)
        == minor
    )


@given(text=st.text(max_size=60))
def test_random_text_raises_nothing_but_the_parsers_own_error(text: str) -> None:
    for parse in (
        lambda: parse_minor_units(text, 2),
        lambda: parse_amount(text),
        lambda: parse_with_separators(text, decimal_separator=",", thousands_separator="."),
    ):
        try:
            value = parse()
        except AmountError as error:
            assert str(error)  # a sentence, never empty
        else:
            assert Decimal(value).is_finite()


@given(text=st.from_regex(r"-?[0-9., ]{1,20}", fullmatch=True), exponent=st.integers(min_value=0, max_value=3))
def test_text_made_of_digits_and_separators_is_read_exactly_or_refused(text: str, exponent: int) -> None:
    try:
        minor = parse_minor_units(text, exponent, allow_negative=True)
    except AmountError:
        return
    # What was read has no more decimals than allowed and is the same number in whole units.
    assert isinstance(minor, int)
    assert parse_amount(text, max_decimals=exponent, allow_negative=True).scaleb(exponent) == minor
