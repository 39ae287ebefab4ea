"""Second factors of guest look-ups: which one an agency asks for, and how typed ones compare."""

from __future__ import annotations

import pytest

from app.domain.second_factors import (
    FACTOR_AMOUNT,
    FACTOR_PLATE,
    FACTOR_TAX_ID_LAST4,
    InvalidFactorSettings,
    check_factor_settings,
    expected_factor,
    factor_for_kind,
    factor_matches,
    parse_typed_amount,
    typed_factor,
)


@pytest.mark.parametrize(
    ("settings", "kind", "factor"),
    [
        (None, "traffic_fine", FACTOR_TAX_ID_LAST4),
        ({}, "property_fee", FACTOR_TAX_ID_LAST4),
        ({"traffic_fine": "plate"}, "traffic_fine", FACTOR_PLATE),
        ({"traffic_fine": "plate"}, "water_bill", FACTOR_TAX_ID_LAST4),
        ({"default": "amount", "traffic_fine": "plate"}, "water_bill", FACTOR_AMOUNT),
        ({"default": "amount", "traffic_fine": "plate"}, "traffic_fine", FACTOR_PLATE),
    ],
)
def test_the_kind_setting_wins_over_the_default(settings, kind: str, factor: str) -> None:
    assert factor_for_kind(settings, kind) == factor


def test_unknown_factor_settings_are_refused_with_a_sentence() -> None:
    assert check_factor_settings({"traffic_fine": "plate"}) == {"traffic_fine": "plate"}
    with pytest.raises(InvalidFactorSettings, match="use one of tax_id_last4, plate, amount"):
        check_factor_settings({"traffic_fine": "licence"})
    with pytest.raises(InvalidFactorSettings):
        check_factor_settings(["plate"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("typed", "minor"),
    [
        ("120,50", 12050),
        ("120.50", 12050),
        ("120", 12000),
        ("120,5", 12050),
        ("0,75", 75),
        ("€ 80", 8000),
        ("80 €", 8000),
        ("80 EUR", 8000),
        ("1.234,56", 123456),
        ("1,234.56", 123456),
        ("1.234", 123400),  # a Greek thousands point
        ("120,505", 12050500),  # three digits after a lone separator group thousands
        ("1 234,56", 123456),
        ("1.234.567", 123456700),
    ],
)
def test_amounts_as_people_type_them(typed: str, minor: int) -> None:
    assert parse_typed_amount(typed) == minor


@pytest.mark.parametrize("typed", ["", "abc", "12,345,6", "1.2.3", "120,5055", ",50", "120.", "-120", "12.34.56"])
def test_unclear_amounts_match_nothing(typed: str) -> None:
    assert parse_typed_amount(typed) is None


def test_currencies_without_cents() -> None:
    assert parse_typed_amount("1.200", exponent=0) == 1200
    assert parse_typed_amount("12,5", exponent=0) is None


@pytest.mark.parametrize(
    ("factor", "typed", "matches"),
    [
        (FACTOR_TAX_ID_LAST4, "2606", True),
        (FACTOR_TAX_ID_LAST4, " 26 06 ", True),
        (FACTOR_TAX_ID_LAST4, "147382606", True),  # the whole tax ID ends the same
        (FACTOR_TAX_ID_LAST4, "2607", False),
        (FACTOR_TAX_ID_LAST4, "606", False),
        (FACTOR_PLATE, "ika-1234", True),
        (FACTOR_PLATE, "ΙΚΑ1234", True),
        (FACTOR_PLATE, "IKA 1243", False),
        (FACTOR_AMOUNT, "80,00", True),
        (FACTOR_AMOUNT, "80", True),
        (FACTOR_AMOUNT, "80,01", False),
        ("unknown_factor", "2606", False),  # a broken setting fails closed
    ],
)
def test_typed_factor_against_the_debt(factor: str, typed: str, matches: bool) -> None:
    expected = expected_factor(factor, tax_id="147382606", vehicle_plate="ΙΚΑ 1234", principal_minor=8000)
    assert factor_matches(expected, typed_factor(factor, typed)) is matches


def test_a_debt_without_a_plate_never_matches_a_plate() -> None:
    expected = expected_factor(FACTOR_PLATE, tax_id="147382606", vehicle_plate=None, principal_minor=8000)
    assert expected is None
    assert factor_matches(expected, typed_factor(FACTOR_PLATE, "")) is False
    assert factor_matches(None, None) is False
