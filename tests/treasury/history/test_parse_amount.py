"""Amounts typed in the treasury (filters, withholdings): exact, either decimal mark, never guessed."""

from __future__ import annotations

import pytest

from app.domain.amounts import parse_currency_amount as parse_amount


@pytest.mark.parametrize(
    ("typed", "minor"),
    [
        ("12,50", 1250),
        ("12.50", 1250),
        ("1.234,50", 123450),
        ("1,234.50", 123450),
        ("1.234", 123400),  # a thousands group
        ("€ 80", 8000),
        ("0,50", 50),
        ("0.5", 50),
    ],
)
def test_amounts_read_exactly(typed: str, minor: int) -> None:
    assert parse_amount(typed, "EUR") == minor


@pytest.mark.parametrize("typed", ["0,505", "0.505", "00,505", "12,5050", "1.23.4", "abc", "", "1,2,3"])
def test_amounts_that_cannot_be_meant_are_refused(typed: str) -> None:
    with pytest.raises(ValueError):
        parse_amount(typed, "EUR")
