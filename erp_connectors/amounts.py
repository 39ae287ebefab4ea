"""Amounts written by people and by ERP exports, read exactly: one strict parser for the whole portal.

Every amount the portal reads from text goes through ``parse_amount`` (a Decimal) or
``parse_minor_units`` (an int of minor units for a currency's exponent). Both wrap Babel's
``parse_decimal(text, locale, strict=True)``, which refuses grouping in the wrong places
("12.34" in Greek, "1,23,456" in English), and add what Babel lets through: ``Decimal`` itself
would read "NaN", "Infinity" and "1E5", Babel reads ",50" and "12," as numbers, and neither
knows how many decimals a currency has. An amount is never rounded: more decimals than allowed
is an error, not an approximation.

People type amounts in Greek ("1.234,56") or in English ("1,234.56"); both are tried, and what
they mean must not differ ("1.234" can only be 1234 in euros: 1.234 would have three decimals).
An ERP export says which separators it uses (``parse_with_separators``).

This module lives in ``erp_connectors``, the lowest layer, so that the connectors (which never
import the portal) and the portal (``app.domain.amounts`` re-exports it) share one parser.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal

from babel.numbers import NumberFormatError, parse_decimal

#: The languages a typed amount is read in, in this order.
TYPED_LOCALES = ("el", "en")
#: Currency marks people copy from a notice along with the amount.
_CURRENCY_MARKS = re.compile(r"€|EUR", re.IGNORECASE)
#: Spaces people group thousands with (a space, a no-break space, a narrow no-break space).
_SPACES = re.compile(r"[ \u00a0\u202f]+")
#: What an amount may hold once currency marks and spaces are gone: a sign, digits and the two
#: separators, starting and ending with a digit. Anything else (letters of "NaN" or "1E5",
#: control characters) is refused before Babel and ``Decimal`` see it.
_AMOUNT_SHAPE = re.compile(r"-?[0-9](?:[0-9.,]*[0-9])?")
#: A reasonable bound: no amount the portal handles has more digits than this.
MAX_LENGTH = 40

#: Babel's symbols of the locales used here: (decimal, group).
_SYMBOLS = {"el": (",", "."), "en": (".", ",")}


class AmountError(ValueError):
    """Text that is not an amount; the message is a sentence a person can read."""


def _decimals(value: Decimal) -> int:
    """How many decimals ``value`` was written with ("12,50" has two, "12" none)."""
    exponent = value.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _cleaned(text: str | None, *, allow_negative: bool, spaces_group: bool) -> str:
    """The text without currency marks and surrounding spaces, checked for the shape of an amount."""
    if text is None or not text.strip():
        raise AmountError("There is no amount: the text is empty.")
    if len(text) > MAX_LENGTH:
        raise AmountError(f"{text[:MAX_LENGTH]!r}… is too long to be an amount.")
    if any(ord(char) < 32 or ord(char) == 127 for char in text):
        raise AmountError(f"{text!r} contains a control character, so it is not an amount.")
    cleaned = _CURRENCY_MARKS.sub(" ", text).strip()
    if spaces_group:
        cleaned = _SPACES.sub(" ", cleaned)
    if not _AMOUNT_SHAPE.fullmatch(cleaned.replace(" ", "") if spaces_group else cleaned):
        raise AmountError(f"{text!r} is not an amount: write digits, with a comma or a point for the decimals.")
    if cleaned.startswith("-") and not allow_negative:
        raise AmountError(f"{text!r} is negative; an amount here is never below zero.")
    return cleaned


def _parse_in(cleaned: str, locale: str) -> Decimal | None:
    """Babel's strict reading of ``cleaned`` in ``locale``; None when it is not a number written there."""
    decimal_symbol, group_symbol = _SYMBOLS[locale]
    if " " in cleaned:
        # Spaces group thousands: as strictly as the locale's own group symbol does.
        if group_symbol in cleaned:
            return None
        cleaned = cleaned.replace(" ", group_symbol)
    try:
        return parse_decimal(cleaned, locale=locale, strict=True)
    except NumberFormatError:
        return None


def parse_amount(
    text: str | None,
    *,
    max_decimals: int | None = None,
    locales: Sequence[str] = TYPED_LOCALES,
    allow_negative: bool = False,
    refuse_unsure: bool = False,
) -> Decimal:
    """The exact amount written in ``text`` in any of ``locales``; AmountError otherwise.

    "€ 1.234,56", "1,234.56", "1 234,56" and "120" are amounts; "12,345,6", "1.2.3", ",50",
    "NaN", "1E5" and "" are not. With ``max_decimals``, an amount written with more decimals
    than that is refused. When the locales read the text as two different amounts within the
    allowed decimals ("1.234" with three decimals allowed), it is refused as ambiguous. With
    ``refuse_unsure``, so is text that one locale reads with too many decimals ("10,005": ten
    euros and half a cent in Greek, ten thousand and five in English), where a slip of the
    keyboard would cost a thousand times the amount (a refund).
    """
    cleaned = _cleaned(text, allow_negative=allow_negative, spaces_group=True)
    readings: list[Decimal] = []
    too_precise = False
    for locale in locales:
        value = _parse_in(cleaned, locale)
        if value is None:
            continue
        if max_decimals is not None and _decimals(value) > max_decimals:
            too_precise = True
            continue
        if value not in readings:
            readings.append(value)
    if len(readings) == 1 and too_precise and refuse_unsure:
        raise AmountError(
            f"{text!r} is unclear: its last separator may mark decimals or thousands. "
            "Write the decimals too, for example 10.005,00 or 10,01."
        )
    if len(readings) == 1:
        return readings[0]
    if len(readings) > 1:
        raise AmountError(f"{text!r} could be {readings[0]} or {readings[1]}; write it without a thousands separator.")
    if too_precise:
        raise AmountError(f"{text!r} has more than {max_decimals} decimals; amounts are never rounded.")
    raise AmountError(f"{text!r} is not an amount like 1.234,56 or 1,234.56: check where the point and comma are.")


def to_minor_units(value: Decimal, exponent: int) -> int:
    """``value`` in minor units of a currency with ``exponent`` decimals; AmountError if it has more."""
    scaled = value.scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise AmountError(f"{value} has more than {exponent} decimals; amounts are never rounded.")
    return int(scaled)


def parse_minor_units(
    text: str | None,
    exponent: int = 2,
    *,
    locales: Sequence[str] = TYPED_LOCALES,
    allow_negative: bool = False,
    refuse_unsure: bool = False,
) -> int:
    """Minor units (for a currency with ``exponent`` decimals) of an amount as people type it."""
    value = parse_amount(
        text, max_decimals=exponent, locales=locales, allow_negative=allow_negative, refuse_unsure=refuse_unsure
    )
    return to_minor_units(value, exponent)


def parse_with_separators(
    text: str | None,
    *,
    decimal_separator: str,
    thousands_separator: str | None,
    exponent: int = 2,
    allow_negative: bool = True,
) -> int:
    """Minor units of an amount written with known separators (an ERP export's), strictly.

    The text may hold only digits, a leading minus (when allowed), the decimal separator and, if
    there is one, the thousands separator in its proper places; it is then read by Babel as the
    same amount written in English.
    """
    grouping = f" and {thousands_separator!r} between thousands" if thousands_separator else ""
    refusal = (
        f"{text!r} is not an amount written with {decimal_separator!r} before at most {exponent} decimals{grouping}."
    )
    stripped = (text or "").strip()
    allowed = {decimal_separator} | ({thousands_separator} if thousands_separator else set())
    if not stripped or any(char not in "0123456789-" and char not in allowed for char in stripped):
        raise AmountError(refusal)
    # One translation swaps both at once: "1.234,56" becomes "1,234.56", read as English.
    swap = {decimal_separator: "."} | ({thousands_separator: ","} if thousands_separator else {})
    english = stripped.translate(str.maketrans(swap))
    try:
        value = parse_amount(english, max_decimals=exponent, locales=("en",), allow_negative=allow_negative)
    except AmountError:
        raise AmountError(refusal) from None
    return to_minor_units(value, exponent)
