"""format_money writes exactly what Babel's format_currency writes, from integer minor units."""

from __future__ import annotations

from decimal import Decimal

import pytest
from babel.numbers import format_currency, get_currency_precision
from hypothesis import given
from hypothesis import strategies as st

from app.domain.money import format_money

#: Greek and English (the portal's), and locales with other separators and groupings (Indian 2-digit groups).
LOCALES = ["el", "en", "de", "fr", "de_CH", "hi", "ar", "ja"]
#: Two, zero and three decimal places.
CURRENCIES = ["EUR", "USD", "GBP", "JPY", "BHD"]


def babel_text(amount_minor: int, currency: str, locale: str) -> str:
    return format_currency(Decimal(amount_minor).scaleb(-get_currency_precision(currency)), currency, locale=locale)


@given(
    amount=st.integers(-(10**15), 10**15) | st.sampled_from([0, 1, -1, 99, 100, 999_999, 1_000_000]),
    currency=st.sampled_from(CURRENCIES),
    locale=st.sampled_from(LOCALES),
)
def test_same_text_as_babel(amount: int, currency: str, locale: str) -> None:
    assert format_money(amount, currency, locale) == babel_text(amount, currency, locale)


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "text"),
    [
        (123456789, "EUR", "el", "1.234.567,89\xa0€"),
        (-5, "EUR", "en", "-€0.05"),
        (1234500, "JPY", "en", "¥1,234,500"),
    ],
)
def test_worked_examples(amount: int, currency: str, locale: str, text: str) -> None:
    assert format_money(amount, currency, locale) == text


@pytest.mark.parametrize(("amount", "currency"), [(1.5, "EUR"), (True, "EUR"), (100, "EURO"), (100, "XYZ")])
def test_refuses_what_money_refuses(amount: object, currency: str) -> None:
    with pytest.raises((TypeError, ValueError)):
        format_money(amount, currency, "el")  # type: ignore[arg-type]
