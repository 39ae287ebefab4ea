"""Late-payment surcharge policy engine.

Every figure is an agency setting; the default is the Greek municipal rule
(ν.δ. 356/1974 art. 6 as replaced by ν. 4224/2013): 0.73 % of the unpaid
principal per month of delay, counted from the day after the due date, with
no cap, a started month counting as a whole month, and no surcharge on
uncertified (αβεβαίωτες) debts.
"""

from __future__ import annotations

import calendar
import decimal
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_UP, Decimal
from enum import StrEnum
from functools import lru_cache
from typing import Any, Literal

from babel.numbers import format_decimal

from app.domain.money import format_money

__all__ = [
    "GREEK_DEFAULT",
    "InvalidPolicy",
    "Period",
    "SurchargeLine",
    "SurchargePolicy",
    "SurchargeResult",
    "add_months",
    "compute_surcharge",
    "explain",
]

#: The rounding rules an agency may choose for the final surcharge amount.
ROUNDING_RULES = frozenset({ROUND_HALF_UP, ROUND_HALF_EVEN, ROUND_DOWN, ROUND_UP})

LineKind = Literal["not_overdue", "no_surcharge_category", "grace", "rate", "cap", "minimum"]
LINE_KINDS: frozenset[str] = frozenset({"not_overdue", "no_surcharge_category", "grace", "rate", "cap", "minimum"})


class InvalidPolicy(ValueError):
    """A surcharge setting that cannot be applied; str() is a sentence for the administrator."""


class Period(StrEnum):
    """The unit of delay the rate is charged per."""

    MONTH = "month"
    DAY = "day"


def _is_int(value: object) -> bool:
    # bool is an int subclass; a checkbox value must not become "1 day".
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class SurchargePolicy:
    """An agency's late-payment surcharge rule; the defaults are the Greek municipal ones."""

    #: Per cent of the unpaid principal charged per period, e.g. Decimal("0.73").
    rate_percent: Decimal = Decimal("0.73")
    period: Period = Period.MONTH
    #: For MONTH: whether a started month is charged as a whole one.
    started_period_counts_whole: bool = True
    #: Delay is counted from due_date + this many days; 1 is the day after the due date.
    start_after_days: int = 1
    #: Payment within this many days after the due date carries no surcharge at all.
    grace_days: int = 0
    #: Absolute cap in minor units, or None.
    cap_minor: int | None = None
    #: Cap as per cent of the principal, or None; the smaller cap wins.
    cap_percent: Decimal | None = None
    #: Smallest surcharge charged once any surcharge applies, in minor units.
    minimum_minor: int = 0
    rounding: str = ROUND_HALF_UP
    #: Debt categories that carry a surcharge.
    categories: frozenset[str] = frozenset({"certified", "settled"})

    def __post_init__(self) -> None:
        if not isinstance(self.rate_percent, Decimal) or not self.rate_percent.is_finite():
            raise InvalidPolicy("The surcharge rate must be a decimal number such as 0.73.")
        if self.rate_percent < 0:
            raise InvalidPolicy("The surcharge rate cannot be negative.")
        if not isinstance(self.period, Period):
            raise InvalidPolicy("The surcharge period must be 'month' or 'day'.")
        if not isinstance(self.started_period_counts_whole, bool):
            raise InvalidPolicy("Whether a started month counts as whole must be yes or no.")
        if not _is_int(self.start_after_days) or self.start_after_days < 1:
            raise InvalidPolicy(
                "Delay must start counting at least one day after the due date (start_after_days >= 1)."
            )
        if not _is_int(self.grace_days) or self.grace_days < 0:
            raise InvalidPolicy("The grace period must be a whole number of days, zero or more.")
        if self.cap_minor is not None and (not _is_int(self.cap_minor) or self.cap_minor < 0):
            raise InvalidPolicy("The surcharge cap must be a whole amount in cents, zero or more.")
        if self.cap_percent is not None and (
            not isinstance(self.cap_percent, Decimal) or not self.cap_percent.is_finite() or self.cap_percent < 0
        ):
            raise InvalidPolicy("The surcharge cap percentage must be a decimal number, zero or more.")
        if not _is_int(self.minimum_minor) or self.minimum_minor < 0:
            raise InvalidPolicy("The minimum surcharge must be a whole amount in cents, zero or more.")
        if self.rounding not in ROUNDING_RULES:
            raise InvalidPolicy("The rounding rule must be one of " + ", ".join(sorted(ROUNDING_RULES)) + ".")
        if not isinstance(self.categories, frozenset) or not all(
            isinstance(category, str) and category for category in self.categories
        ):
            raise InvalidPolicy("The surcharged debt categories must be a set of non-empty names.")
        # Read once here, not per debt: the rates as exact integer fractions for the fast path.
        object.__setattr__(self, "_start_offset", timedelta(days=self.start_after_days - 1))
        object.__setattr__(self, "_rate_fraction", _integer_fraction(self.rate_percent))
        object.__setattr__(
            self, "_cap_fraction", None if self.cap_percent is None else _integer_fraction(self.cap_percent)
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the policy as JSON-ready values (Decimals as strings, categories sorted)."""
        return {
            "rate_percent": str(self.rate_percent),
            "period": self.period.value,
            "started_period_counts_whole": self.started_period_counts_whole,
            "start_after_days": self.start_after_days,
            "grace_days": self.grace_days,
            "cap_minor": self.cap_minor,
            "cap_percent": None if self.cap_percent is None else str(self.cap_percent),
            "minimum_minor": self.minimum_minor,
            "rounding": self.rounding,
            "categories": sorted(self.categories),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SurchargePolicy:
        """Build a policy from to_dict()-style values; missing keys take the defaults."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            # A misspelt setting silently falling back to the default would
            # charge citizens by a rule nobody chose.
            raise InvalidPolicy("Unknown surcharge settings: " + ", ".join(map(str, unknown)) + ".")
        values: dict[str, Any] = dict(data)
        if "rate_percent" in values:
            values["rate_percent"] = _decimal_setting(values["rate_percent"], "surcharge rate")
        if values.get("cap_percent") is not None:
            values["cap_percent"] = _decimal_setting(values["cap_percent"], "surcharge cap percentage")
        if "period" in values:
            try:
                values["period"] = Period(values["period"])
            except ValueError:
                raise InvalidPolicy("The surcharge period must be 'month' or 'day'.") from None
        if "categories" in values:
            values["categories"] = _categories_setting(values["categories"])
        return cls(**values)


#: The fast path handles rates of at most this many significant digits, within this exponent.
_FAST_RATE_DIGITS = 28
_FAST_RATE_EXPONENT = 28
#: Products below this are exact in the reference's 50-digit context, so both paths agree.
_EXACT_BELOW = 10**48


def _integer_fraction(percent: Decimal) -> tuple[int, int] | None:
    """``percent`` % as (numerator, denominator) integers, or None if too long for the fast path."""
    if len(percent.as_tuple().digits) > _FAST_RATE_DIGITS or abs(percent.adjusted()) > _FAST_RATE_EXPONENT:
        return None  # a setting nobody makes; the Decimal reference handles it
    numerator, denominator = percent.as_integer_ratio()
    return numerator, denominator * 100


def _decimal_setting(value: object, label: str) -> Decimal:
    # Floats are refused because 0.1 in binary is not 0.1; settings store
    # rates as strings (see to_dict) so they round-trip exactly.
    if isinstance(value, Decimal):
        return value
    if _is_int(value):
        return Decimal(value)  # type: ignore[arg-type]
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except decimal.InvalidOperation:
            pass
    raise InvalidPolicy(f'The {label} must be written as a decimal number such as "0.73", not {value!r}.')


def _categories_setting(value: object) -> frozenset[str]:
    # A bare string is iterable too, and "certified" would become nine letters.
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise InvalidPolicy("The surcharged debt categories must be a list of names.")
    return frozenset(value)


GREEK_DEFAULT = SurchargePolicy()


@dataclass(frozen=True)
class SurchargeLine:
    """One step of a surcharge calculation, kept so it can be explained to the citizen."""

    kind: LineKind
    periods: int | None = None
    period: Period | None = None
    #: The rate for a "rate" line; the cap percentage for a "cap" line set by cap_percent.
    rate_percent: Decimal | None = None
    base_minor: int | None = None
    amount_minor: int | None = None
    category: str | None = None
    days: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in LINE_KINDS:
            raise ValueError(f"{self.kind!r} is not a kind of surcharge line.")


@dataclass(frozen=True)
class SurchargeResult:
    """The surcharge owed on one debt on one day, with the steps that led to it."""

    #: Minor units, >= 0.
    amount_minor: int
    #: Periods of delay charged (0 when nothing is charged for delay).
    periods: int
    #: Calendar days after the due date, >= 0.
    days_late: int
    lines: tuple[SurchargeLine, ...]
    capped: bool


_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def add_months(start: date, months: int) -> date:
    """Return the same day `months` later, clamped to the month's end (31 Jan + 1 = 28/29 Feb)."""
    year, month_index = divmod(start.month - 1 + months, 12)
    year += start.year
    month = month_index + 1
    day = start.day
    if day > 28:  # only the last days of a month can fall past a shorter month's end
        last = 29 if month == 2 and calendar.isleap(year) else _DAYS_IN_MONTH[month_index]
        day = min(day, last)
    return date(year, month, day)


def _full_months(anchor: date, on: date) -> int:
    # Always measured from the anchor, never by stepping month after month:
    # stepping would carry 31 Jan → 29 Feb → 29 Mar and lose two days of March.
    months = (on.year - anchor.year) * 12 + (on.month - anchor.month)
    if add_months(anchor, months) > on:
        months -= 1
    return months


def _periods(policy: SurchargePolicy, anchor: date, on: date) -> int:
    if policy.period is Period.DAY:
        return (on - anchor).days
    # _full_months, with the date it reaches kept for the leftover days.
    full = (on.year - anchor.year) * 12 + (on.month - anchor.month)
    reached = add_months(anchor, full)
    if reached > on:
        full -= 1
        reached = add_months(anchor, full)
    # When started months do not count (the rule after 31.12.2019 is unsettled),
    # only complete months are charged and the leftover days are free.
    if reached < on and policy.started_period_counts_whole:
        return full + 1
    return full


def _round(value: Decimal, rounding: str) -> int:
    return int(value.quantize(Decimal(1), rounding=rounding))


def compute_surcharge(
    policy: SurchargePolicy,
    *,
    principal_minor: int,
    due_date: date,
    on: date,
    category: str,
) -> SurchargeResult:
    """Return the surcharge on an unpaid principal (minor units) paid on `on`."""
    # Exact types first: the checks below cost more than the arithmetic on every debt of a page.
    if type(principal_minor) is not int or principal_minor < 0:
        _check_principal(principal_minor)
    if type(due_date) is not date or type(on) is not date:
        _check_dates(due_date, on)

    days_late = max(0, (on - due_date).days)
    # The category is checked first: it is the lasting reason, true whatever the date.
    if category not in policy.categories:
        line = _line("no_surcharge_category", category=category, amount_minor=0)
        return _result(0, 0, days_late, (line,), False)

    anchor = due_date + policy._start_offset  # type: ignore[attr-defined]
    if on <= anchor:
        line = _line("not_overdue", days=days_late, amount_minor=0)
        return _result(0, 0, days_late, (line,), False)
    if days_late <= policy.grace_days:
        line = _line("grace", days=policy.grace_days, amount_minor=0)
        return _result(0, 0, days_late, (line,), False)

    periods = _periods(policy, anchor, on)
    # Rounded once, at the end: rounding each month would drift by up to half a cent per month.
    amount, above_zero = _rate_amount(policy, principal_minor, periods)
    rate_line = object.__new__(SurchargeLine)  # _line() inlined: every overdue debt has this one
    rate_line.__dict__.update(
        {
            "kind": "rate",
            "periods": periods,
            "period": policy.period,
            "rate_percent": policy.rate_percent,
            "base_minor": principal_minor,
            "amount_minor": amount,
            "category": None,
            "days": (on - anchor).days,
        }
    )
    lines = [rate_line]
    # "Once any surcharge applies" means the exact amount is above zero, so
    # a tiny debt whose surcharge rounds to 0 still pays the minimum.
    if above_zero and amount < policy.minimum_minor:
        amount = policy.minimum_minor
        lines.append(_line("minimum", amount_minor=amount))

    if policy.cap_minor is not None or policy.cap_percent is not None:
        cap, cap_percent = _cap(policy, principal_minor)
        if cap is not None and amount > cap:
            lines.append(_line("cap", amount_minor=cap, rate_percent=cap_percent, base_minor=principal_minor))
            return _result(cap, periods, days_late, tuple(lines), True)
    return _result(amount, periods, days_late, tuple(lines), False)


def _check_principal(principal_minor: object) -> None:
    if not _is_int(principal_minor) or principal_minor < 0:  # type: ignore[operator]
        raise ValueError(
            f"The unpaid principal must be a whole amount in cents, zero or more, not {principal_minor!r}."
        )


def _check_dates(due_date: object, on: object) -> None:
    # A datetime is a date subclass; refusing it makes the caller decide in
    # which time zone "today" is, instead of this module guessing.
    for label, value in (("due date", due_date), ("payment date", on)):
        if isinstance(value, datetime) or not isinstance(value, date):
            raise TypeError(f"The {label} must be a date, not {value!r}.")


def _rate_amount(policy: SurchargePolicy, principal_minor: int, periods: int) -> tuple[int, bool]:
    """principal × rate % × periods in minor units, rounded by the policy; and whether it was above 0.

    The fast path is integer arithmetic on the rate as an exact fraction: the same number the
    Decimal reference computes, rounded by the same rule, in a tenth of the time. Products too
    long for the reference's 50 digits (no real debt) take the reference itself.
    """
    fraction = policy._rate_fraction  # type: ignore[attr-defined]
    if fraction is not None:
        numerator = principal_minor * periods * fraction[0]
        if numerator < _EXACT_BELOW:
            return _divide(numerator, fraction[1], policy.rounding), numerator > 0
    exact = _reference_product(Decimal(principal_minor), policy.rate_percent, periods)
    return _round(exact, policy.rounding), exact > 0


def _reference_product(principal: Decimal, percent: Decimal, periods: int = 1) -> Decimal:
    # A fresh context so that a caller's changed precision or traps cannot
    # alter an amount a citizen is charged.
    with decimal.localcontext(decimal.Context(prec=50)):
        return principal * percent * periods / 100


def _divide(numerator: int, denominator: int, rounding: str) -> int:
    """numerator / denominator (both >= 0) to a whole number, rounded as Decimal's ``rounding`` does."""
    quotient, remainder = divmod(numerator, denominator)
    if remainder:
        if rounding == ROUND_HALF_UP:
            quotient += 2 * remainder >= denominator
        elif rounding == ROUND_HALF_EVEN:
            twice = 2 * remainder
            quotient += twice > denominator or (twice == denominator and quotient % 2 == 1)
        elif rounding == ROUND_UP:
            quotient += 1
    return quotient


def _line(
    kind: LineKind,
    *,
    periods: int | None = None,
    period: Period | None = None,
    rate_percent: Decimal | None = None,
    base_minor: int | None = None,
    amount_minor: int | None = None,
    category: str | None = None,
    days: int | None = None,
) -> SurchargeLine:
    """A line built by the engine itself: the dataclass's checks skipped, for its own known kinds."""
    line = object.__new__(SurchargeLine)
    line.__dict__.update(
        {
            "kind": kind,
            "periods": periods,
            "period": period,
            "rate_percent": rate_percent,
            "base_minor": base_minor,
            "amount_minor": amount_minor,
            "category": category,
            "days": days,
        }
    )
    return line


def _result(amount_minor: int, periods: int, days_late: int, lines: tuple, capped: bool) -> SurchargeResult:
    """A result built by the engine itself, without the frozen dataclass's per-field setattr."""
    result = object.__new__(SurchargeResult)
    result.__dict__.update(
        {"amount_minor": amount_minor, "periods": periods, "days_late": days_late, "lines": lines, "capped": capped}
    )
    return result


def _percent_of(principal_minor: int, percent: Decimal, fraction: tuple[int, int] | None, rounding: str) -> int:
    if fraction is not None and principal_minor * fraction[0] < _EXACT_BELOW:
        return _divide(principal_minor * fraction[0], fraction[1], rounding)
    return _round(_reference_product(Decimal(principal_minor), percent), rounding)


def _cap(policy: SurchargePolicy, principal_minor: int) -> tuple[int | None, Decimal | None]:
    """Return the binding cap in minor units and, if it is the percentage cap, its percentage."""
    percent_cap = (
        None
        if policy.cap_percent is None
        # The percentage cap is an amount of money too, so it follows the same rounding rule.
        else _percent_of(principal_minor, policy.cap_percent, policy._cap_fraction, policy.rounding)  # type: ignore[attr-defined]
    )
    if percent_cap is not None and (policy.cap_minor is None or percent_cap < policy.cap_minor):
        return percent_cap, policy.cap_percent
    return policy.cap_minor, None


def _identity(message: str) -> str:
    return message


def _english_plural(singular: str, plural: str, n: int) -> str:
    return singular if n == 1 else plural


def explain(
    result: SurchargeResult,
    *,
    currency: str,
    locale: str,
    gettext: Callable[[str], str] = _identity,
    ngettext: Callable[[str, str, int], str] = _english_plural,
) -> list[str]:
    """Return one citizen-readable sentence per step of the calculation."""

    # gettext/ngettext must return the translated msgid unformatted, such as
    # flask_babel.get_translations().ugettext/.ungettext: flask_babel.ngettext
    # itself %-formats with num only and would fail on the other placeholders.
    def money(amount_minor: int) -> str:
        return format_money(amount_minor, currency, locale)

    def percent(rate: Decimal) -> str:
        return _format_percent(rate, locale)

    sentences: list[str] = []
    for line in result.lines:
        if line.kind == "not_overdue":
            sentences.append(gettext("Not overdue: no surcharge"))
        elif line.kind == "no_surcharge_category":
            if line.category == "uncertified":
                sentences.append(gettext("Uncertified debts carry no surcharge"))
            else:
                sentences.append(gettext("Debts of this kind carry no surcharge"))
        elif line.kind == "grace":
            days = line.days or 0
            # Plural forms differ in other languages even though English says "10-day".
            sentences.append(
                ngettext(
                    "Paid within the %(num)d-day grace period: no surcharge",
                    "Paid within the %(num)d-day grace period: no surcharge",
                    days,
                )
                % {"num": days}
            )
        elif line.kind == "rate":
            sentences.append(_explain_rate(line, money, percent, gettext, ngettext))
        elif line.kind == "minimum":
            sentences.append(
                gettext("Raised to the minimum surcharge of %(amount)s") % {"amount": money(line.amount_minor or 0)}
            )
        elif line.kind == "cap":
            if line.rate_percent is not None:
                sentences.append(
                    gettext("Capped at %(amount)s (%(percent)s %% of the principal)")
                    % {"amount": money(line.amount_minor or 0), "percent": percent(line.rate_percent)}
                )
            else:
                sentences.append(gettext("Capped at %(amount)s") % {"amount": money(line.amount_minor or 0)})
    return sentences


@lru_cache(maxsize=256)
def _format_percent(rate: Decimal, locale: str) -> str:
    # An agency has one or two rates, so each is formatted once per language, not per debt.
    # decimal_quantization=False keeps a rate such as 0.0333 from being shown rounded to the
    # locale's three decimals.
    return format_decimal(rate, locale=locale, decimal_quantization=False)


def _explain_rate(
    line: SurchargeLine,
    money: Callable[[int], str],
    percent: Callable[[Decimal], str],
    gettext: Callable[[str], str],
    ngettext: Callable[[str, str, int], str],
) -> str:
    periods = line.periods or 0
    if periods == 0:
        # Only when started months do not count: late, but not yet a full month.
        return gettext("Less than a full month late: no surcharge")
    variables = {
        "num": periods,
        "rate": percent(line.rate_percent or Decimal(0)),
        "base": money(line.base_minor or 0),
    }
    if line.period is Period.DAY:
        return (
            ngettext(
                "%(num)d day late × %(rate)s %% of %(base)s",
                "%(num)d days late × %(rate)s %% of %(base)s",
                periods,
            )
            % variables
        )
    return (
        ngettext(
            "%(num)d month late × %(rate)s %% of %(base)s",
            "%(num)d months late × %(rate)s %% of %(base)s",
            periods,
        )
        % variables
    )
