"""The second factor a guest gives with a payment code, and how a typed one is compared.

A payment code alone is printed on paper and may be seen by anyone, so a guest also gives
something else the notice tells them: the vehicle plate of a traffic fine, the last four
characters of the debtor's tax ID, or the amount. Which one is an agency setting per kind of
debt, e.g. ``{"default": "tax_id_last4", "traffic_fine": "plate"}``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping

from app.domain.amounts import AmountError, parse_minor_units
from app.domain.plates import normalise_plate

__all__ = [
    "DEFAULT_FACTOR",
    "FACTORS",
    "FACTOR_AMOUNT",
    "FACTOR_PLATE",
    "FACTOR_TAX_ID_LAST4",
    "InvalidFactorSettings",
    "check_factor_settings",
    "expected_factor",
    "factor_for_kind",
    "factor_matches",
    "parse_typed_amount",
    "typed_factor",
]

FACTOR_TAX_ID_LAST4 = "tax_id_last4"
FACTOR_PLATE = "plate"
FACTOR_AMOUNT = "amount"
FACTORS = (FACTOR_TAX_ID_LAST4, FACTOR_PLATE, FACTOR_AMOUNT)
#: Asked when an agency names no factor for a kind of debt.
DEFAULT_FACTOR = FACTOR_TAX_ID_LAST4
#: Characters of the tax ID the guest types.
TAX_ID_TAIL = 4

_NOT_ALPHANUMERIC = re.compile(r"[^0-9A-Z]", re.ASCII)


class InvalidFactorSettings(ValueError):
    """An agency's second-factor setting names an unknown factor; str() is a sentence."""


def check_factor_settings(settings: Mapping[str, str] | None) -> dict[str, str]:
    """Return the settings as a plain dict, or raise InvalidFactorSettings naming the mistake."""
    if settings is None:
        return {}
    if not isinstance(settings, Mapping):
        raise InvalidFactorSettings('The guest second factor setting is a mapping such as {"default": "tax_id_last4"}.')
    for kind, factor in settings.items():
        if factor not in FACTORS:
            raise InvalidFactorSettings(
                f"The guest second factor for {kind!r} is {factor!r}; use one of {', '.join(FACTORS)}."
            )
    return dict(settings)


def factor_for_kind(settings: Mapping[str, str] | None, kind: str) -> str:
    """The factor asked for debts of ``kind``: the kind's own setting, else the default."""
    settings = settings or {}
    return settings.get(kind) or settings.get("default") or DEFAULT_FACTOR


def parse_typed_amount(text: str, exponent: int = 2) -> int | None:
    """Minor units of an amount as people type it ("120,50", "120.50", "1.234,5", "€ 80"); None if unclear.

    Read by the portal's one amount parser (``app.domain.amounts``), in Greek or English. More
    decimals than the currency has are refused rather than rounded: the amount must match, not
    approximate.
    """
    try:
        return parse_minor_units(text, exponent)
    except AmountError:
        return None


def _tax_id_tail(value: str) -> str | None:
    compact = _NOT_ALPHANUMERIC.sub("", value.upper())
    return compact[-TAX_ID_TAIL:] if len(compact) >= TAX_ID_TAIL else None


def typed_factor(factor: str, typed: str, *, exponent: int = 2) -> str | None:
    """The typed factor in the form it is compared in, or None when it cannot match anything."""
    typed = typed or ""
    if factor == FACTOR_TAX_ID_LAST4:
        return _tax_id_tail(typed)
    if factor == FACTOR_PLATE:
        return normalise_plate(typed) or None
    if factor == FACTOR_AMOUNT:
        amount = parse_typed_amount(typed, exponent)
        return None if amount is None else str(amount)
    return None


def expected_factor(factor: str, *, tax_id: str, vehicle_plate: str | None, principal_minor: int) -> str | None:
    """What the guest must type for a debt, in compared form; None when the debt lacks it."""
    if factor == FACTOR_TAX_ID_LAST4:
        return _tax_id_tail(tax_id)
    if factor == FACTOR_PLATE:
        return (normalise_plate(vehicle_plate) or None) if vehicle_plate else None
    if factor == FACTOR_AMOUNT:
        return str(principal_minor)
    return None  # an unknown setting fails closed: nobody pays that kind as a guest


def factor_matches(expected: str | None, given: str | None) -> bool:
    """Whether the typed factor matches, in constant time, comparing even when one is missing."""
    # Digests have the same length whatever was typed, so the comparison time says nothing.
    left = hashlib.sha256((expected or "\x00missing").encode()).digest()
    right = hashlib.sha256((given or "\x00not given").encode()).digest()
    same = hmac.compare_digest(left, right)
    return same and expected is not None and given is not None
