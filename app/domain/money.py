"""Money as an integer of minor units plus an ISO 4217 currency code.

Amounts never pass through float: Decimal appears only inside a calculation,
with the rounding rule named at the call.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import cache

from babel import Locale
from babel.numbers import (
    format_currency,
    get_currency_precision,
    get_currency_symbol,
    get_decimal_symbol,
    get_group_symbol,
    list_currencies,
)

__all__ = [
    "CurrencyMismatch",
    "Money",
    "format_money",
    "minor_unit_exponent",
    "sum_money",
]

_CURRENCY_CODE = re.compile(r"[A-Z]{3}")

#: The rounding modes the decimal module knows; anything else is a typo in a setting.
_ROUNDING_MODES = frozenset(
    {
        decimal.ROUND_05UP,
        decimal.ROUND_CEILING,
        decimal.ROUND_DOWN,
        decimal.ROUND_FLOOR,
        decimal.ROUND_HALF_DOWN,
        decimal.ROUND_HALF_EVEN,
        decimal.ROUND_HALF_UP,
        decimal.ROUND_UP,
    }
)


class CurrencyMismatch(ValueError):
    """Two amounts in different currencies were combined or compared."""


@cache
def _known_currencies() -> frozenset[str]:
    # Babel's list is CLDR's; loading it once keeps Money() cheap in tight loops.
    return frozenset(list_currencies())


def _check_currency(currency: object) -> str:
    if not isinstance(currency, str):
        raise TypeError(f"A currency must be given as a code such as 'EUR', not {currency!r}.")
    if not _CURRENCY_CODE.fullmatch(currency):
        raise ValueError(f"{currency!r} is not a currency code: use three upper-case letters such as 'EUR'.")
    if currency not in _known_currencies():
        raise ValueError(f"{currency!r} is not a currency code known to ISO 4217.")
    return currency


def _check_rounding(rounding: str) -> str:
    if rounding not in _ROUNDING_MODES:
        raise ValueError(f"{rounding!r} is not a rounding mode of the decimal module, such as 'ROUND_HALF_UP'.")
    return rounding


def minor_unit_exponent(currency: str) -> int:
    """Return how many decimal places the currency's minor unit has (EUR 2, JPY 0)."""
    # CLDR's figures (via Babel) are the ones the formatter uses too, so amounts
    # we round and amounts we print always agree.
    return get_currency_precision(_check_currency(currency))


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in integer minor units (cents) of one currency; negative for differences."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        # bool is an int subclass, and True cents is always a bug, never an amount.
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError(f"A money amount is a whole number of minor units (cents), not {self.amount!r}.")
        _check_currency(self.currency)

    # -- construction -----------------------------------------------------

    @classmethod
    def zero(cls, currency: str) -> Money:
        """Return nothing of the currency."""
        return cls(0, currency)

    @classmethod
    def from_decimal(cls, value: Decimal | str, currency: str, rounding: str = ROUND_HALF_UP) -> Money:
        """Round a major-unit amount (e.g. Decimal("12.345")) to the currency's minor units."""
        # float is refused because 0.1 + 0.2 already carries an error; int is refused
        # because 1234 is ambiguous between 1234 euros and 1234 cents.
        if isinstance(value, str):
            try:
                value = Decimal(value.strip())
            except decimal.InvalidOperation:
                raise ValueError(f"{value!r} is not a number such as '12.34'.") from None
        elif not isinstance(value, Decimal):
            raise TypeError(
                f"Give the amount as a Decimal or a string such as '12.34', not {type(value).__name__}; "
                "for minor units use Money(amount, currency)."
            )
        if not value.is_finite():
            raise ValueError(f"{value} is not an amount of money.")
        exponent = minor_unit_exponent(currency)
        minor = value.scaleb(exponent).quantize(Decimal(1), rounding=_check_rounding(rounding))
        return cls(int(minor), currency)

    # -- reading ----------------------------------------------------------

    def to_decimal(self) -> Decimal:
        """Return the amount in major units, e.g. Decimal("12.34") for 1234 cents."""
        return Decimal(self.amount).scaleb(-minor_unit_exponent(self.currency))

    @property
    def is_zero(self) -> bool:
        """Whether the amount is exactly nothing."""
        return self.amount == 0

    def __bool__(self) -> bool:
        return self.amount != 0

    def format(self, locale: str) -> str:
        """Return the amount as the locale writes it, e.g. '12,34\xa0€' in el, '€12.34' in en."""
        return format_currency(self.to_decimal(), self.currency, locale=locale)

    def __str__(self) -> str:
        return f"{self.to_decimal()} {self.currency}"

    # -- arithmetic -------------------------------------------------------

    def _same_currency(self, other: Money, action: str) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"Cannot {action} amounts in {self.currency} and {other.currency}.")

    def __add__(self, other: object) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "add")
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: object) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "subtract")
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    # Ordering is written out rather than dataclass(order=True), which would
    # compare (amount, currency) tuples and silently rank 5 USD against 3 EUR.
    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "compare")
        return self.amount < other.amount

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "compare")
        return self.amount <= other.amount

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "compare")
        return self.amount > other.amount

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "compare")
        return self.amount >= other.amount

    # -- sharing out ------------------------------------------------------

    def allocate(self, ratios: Sequence[int]) -> list[Money]:
        """Share the amount by integer ratios; the parts always add up exactly to the whole."""
        if isinstance(ratios, (str, bytes)) or not isinstance(ratios, Sequence):
            raise TypeError("Ratios must be a sequence of whole numbers, such as [1, 2].")
        for ratio in ratios:
            if isinstance(ratio, bool) or not isinstance(ratio, int):
                raise TypeError(f"Ratios must be whole numbers, not {ratio!r}.")
            if ratio < 0:
                raise ValueError(f"Ratios cannot be negative, but {ratio} was given.")
        total = sum(ratios)
        if total == 0:
            raise ValueError("At least one ratio must be greater than zero.")

        # Share out the magnitude and put the sign back afterwards, so -5 splits
        # as the mirror image of 5 instead of rounding towards minus infinity.
        sign = -1 if self.amount < 0 else 1
        magnitude = abs(self.amount)
        parts = [magnitude * ratio // total for ratio in ratios]
        remainders = [magnitude * ratio % total for ratio in ratios]
        leftover = magnitude - sum(parts)
        # Largest remainder method: the cents lost to flooring go to the parts
        # that lost the most; ties go to the earlier part so the result is stable.
        # A zero ratio has remainder 0 and never receives a cent, since each
        # remainder is < total and they sum to leftover * total.
        by_remainder = sorted(range(len(ratios)), key=lambda index: (-remainders[index], index))
        for index in by_remainder[:leftover]:
            parts[index] += 1
        return [Money(sign * part, self.currency) for part in parts]

    def split(self, n: int) -> list[Money]:
        """Split into n parts as equal as possible, larger parts first, adding up exactly."""
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"The number of parts must be a whole number, not {n!r}.")
        if n < 1:
            raise ValueError(f"An amount can be split into one part or more, not {n}.")
        return self.allocate([1] * n)

    def percent(self, rate: Decimal | int, rounding: str = ROUND_HALF_UP) -> Money:
        """Return rate per cent of the amount (rate=Decimal("0.73") means 0.73 %), rounded once."""
        if isinstance(rate, (bool, float)) or not isinstance(rate, (Decimal, int)):
            raise TypeError(f"Give the rate as a Decimal such as Decimal('0.73'), not {rate!r}.")
        rate = Decimal(rate)
        if not rate.is_finite():
            raise ValueError(f"{rate} is not a rate.")
        exact = Decimal(self.amount) * rate / 100
        return Money(int(exact.quantize(Decimal(1), rounding=_check_rounding(rounding))), self.currency)


def sum_money(items: Iterable[Money], currency: str) -> Money:
    """Add up amounts that must all be in the given currency; an empty sum is zero."""
    # The currency is an argument, not taken from the first item, so that an
    # empty basket still has a currency and a stray item cannot set it.
    total = Money.zero(currency)
    for item in items:
        if not isinstance(item, Money):
            raise TypeError(f"Only Money can be summed, not {item!r}.")
        if item.currency != currency:
            raise CurrencyMismatch(f"Cannot add an amount in {item.currency} to a total in {currency}.")
        total = Money(total.amount + item.amount, currency)
    return total


def format_money(amount_minor: int, currency: str, locale: str) -> str:
    """Format an amount of minor units the way the locale writes money."""
    writer = _money_writer(currency, locale) if type(amount_minor) is int else None
    if writer is None:
        return Money(amount_minor, currency).format(locale)
    return writer.write(amount_minor)


@dataclass(frozen=True, slots=True)
class _MoneyWriter:
    """Babel's currency pattern for one currency and locale, read once and applied to integers.

    Babel's ``format_currency`` parses the locale and looks up its symbols on every call (about
    20 µs); a page of debts formats three amounts a row. This writes the same text from integer
    minor units with string operations only, for the plain patterns every locale we serve uses
    (``#,##0.00 ¤``, ``¤#,##0.00``, Indian ``#,##,##0.00``); any other pattern goes to Babel.
    """

    #: (positive, negative) text before and after the digits, the currency symbol already in.
    prefix: tuple[str, str]
    suffix: tuple[str, str]
    #: Digits after the decimal sign (the currency's, as Babel takes them).
    digits: int
    decimal_symbol: str
    group_symbol: str
    #: Size of the first group of digits left of the decimal sign, then of the others.
    grouping: tuple[int, int]

    def write(self, amount_minor: int) -> str:
        negative = amount_minor < 0
        whole, fraction = divmod(-amount_minor if negative else amount_minor, 10**self.digits)
        text = str(whole)
        size = self.grouping[0]
        if len(text) > size:
            groups = [text[-size:]]
            text = text[:-size]
            size = self.grouping[1]
            while len(text) > size:
                groups.append(text[-size:])
                text = text[:-size]
            groups.append(text)
            text = self.group_symbol.join(reversed(groups))
        if self.digits:
            text = f"{text}{self.decimal_symbol}{fraction:0{self.digits}d}"
        return f"{self.prefix[negative]}{text}{self.suffix[negative]}"


@cache
def _money_writer(currency: str, locale: str) -> _MoneyWriter | None:
    """The writer of one currency in one locale, or None where only Babel itself will do."""
    _check_currency(currency)
    parsed = Locale.parse(locale)
    pattern = parsed.currency_formats["standard"]
    affixes = "".join(pattern.prefix + pattern.suffix)
    plain = (
        pattern.scale == 0
        and not pattern.exp_prec
        and "@" not in pattern.pattern
        and pattern.int_prec[0] <= 1
        and "'" not in affixes
        and "¤¤" not in affixes
        and "%" not in affixes
        and "‰" not in affixes
    )
    if not plain:
        return None
    symbol = get_currency_symbol(currency, parsed)
    decimal_symbol, group_symbol = get_decimal_symbol(parsed), get_group_symbol(parsed)
    if "'" in symbol + decimal_symbol + group_symbol:
        return None  # Babel strips quotes from its result (de_CH groups with one): leave it to Babel
    return _MoneyWriter(
        prefix=tuple(text.replace("¤", symbol) for text in pattern.prefix),  # type: ignore[arg-type]
        suffix=tuple(text.replace("¤", symbol) for text in pattern.suffix),  # type: ignore[arg-type]
        digits=get_currency_precision(currency),
        decimal_symbol=decimal_symbol,
        group_symbol=group_symbol,
        grouping=pattern.grouping,
    )
