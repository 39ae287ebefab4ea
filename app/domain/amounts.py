"""Amounts typed by people, read exactly: the portal's side of the one strict parser.

The parser itself is ``erp_connectors.amounts`` (the lowest layer, so that ERP connectors, which
never import the portal, read amounts the same way); this module adds the currency.
"""

from __future__ import annotations

from app.domain.money import minor_unit_exponent
from erp_connectors.amounts import AmountError, parse_amount, parse_minor_units, to_minor_units

__all__ = ["AmountError", "parse_amount", "parse_currency_amount", "parse_minor_units", "to_minor_units"]


def parse_currency_amount(text: str | None, currency: str, *, refuse_unsure: bool = False) -> int:
    """Minor units of ``currency`` from an amount typed in Greek or English; AmountError otherwise.

    ``refuse_unsure`` refuses "10,005" and "1.234" (decimals in one language, thousands in the
    other) instead of reading the thousands: for money going out, such as a refund.
    """
    return parse_minor_units(text, minor_unit_exponent(currency), refuse_unsure=refuse_unsure)
