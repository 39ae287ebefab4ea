"""Tests for app.domain.surcharges: the late-payment surcharge policy engine.

Worked examples use the Greek default (0.73 % per started month) on an unpaid
principal of 120,00 € unless a case says otherwise; one month then costs
12000 × 0.0073 = 87.6 cents, and n months 87.6 × n cents, rounded once.
"""

from __future__ import annotations

import ast
import io
import json
from datetime import date, datetime
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_UP, Decimal
from pathlib import Path

import pytest
from babel.messages.extract import extract

from app.domain import surcharges as surcharges_module
from app.domain.surcharges import (
    GREEK_DEFAULT,
    InvalidPolicy,
    Period,
    SurchargeLine,
    SurchargePolicy,
    SurchargeResult,
    add_months,
    compute_surcharge,
    explain,
)

D = date.fromisoformat
PRINCIPAL = 12000  # 120,00 €
DUE = D("2024-01-31")


def surcharge(
    on: str,
    *,
    due: str = "2024-01-31",
    principal: int = PRINCIPAL,
    category: str = "certified",
    **policy: object,
) -> SurchargeResult:
    return compute_surcharge(
        SurchargePolicy(**policy),  # type: ignore[arg-type]
        principal_minor=principal,
        due_date=D(due),
        on=D(on),
        category=category,
    )


# -- add_months ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        ("2024-01-31", 1, "2024-02-29"),  # leap year: clamped to 29 Feb
        ("2023-01-31", 1, "2023-02-28"),  # common year: clamped to 28 Feb
        ("2024-01-31", 2, "2024-03-31"),  # from the anchor, not 29 Feb + 1 = 29 Mar
        ("2024-01-31", 13, "2025-02-28"),
        ("2024-11-30", 3, "2025-02-28"),  # across the year end
        ("2024-02-29", 12, "2025-02-28"),
        ("2024-02-29", 48, "2028-02-29"),
        ("2024-01-15", 0, "2024-01-15"),
        ("2024-05-15", -5, "2023-12-15"),
    ],
)
def test_add_months_clamps_to_the_month_end(start, months, expected):
    assert add_months(D(start), months) == D(expected)


# -- worked examples ----------------------------------------------------------


@pytest.mark.parametrize(
    ("on", "options", "amount", "periods", "days_late"),
    [
        # Paying on or before the due date costs nothing.
        ("2024-01-31", {}, 0, 0, 0),
        ("2024-01-15", {}, 0, 0, 0),
        # The day after: a started month counts whole. 87.6 → 88.
        ("2024-02-01", {}, 88, 1, 1),
        # 31 Jan + 1 month = 29 Feb 2024 (leap): exactly one month, still 88.
        ("2024-02-29", {}, 88, 1, 29),
        # One day into the second month: 87.6 × 2 = 175.2 → 175.
        ("2024-03-01", {}, 175, 2, 30),
        # 31 Jan + 2 months = 31 Mar (from the anchor): exactly two months.
        ("2024-03-31", {}, 175, 2, 60),
        # ... and one day more starts the third: 87.6 × 3 = 262.8 → 263.
        ("2024-04-01", {}, 263, 3, 61),
        # A year late: 31 Jan 2025 is exactly 12 months; 87.6 × 12 = 1051.2 → 1051.
        # 366 days because 2024 has 29 February.
        ("2025-01-31", {}, 1051, 12, 366),
        # One day into the 13th month: 87.6 × 13 = 1138.8 → 1139.
        ("2025-02-01", {}, 1139, 13, 367),
    ],
)
def test_greek_default_worked_examples(on, options, amount, periods, days_late):
    result = surcharge(on, **options)
    assert (result.amount_minor, result.periods, result.days_late) == (amount, periods, days_late)
    assert result.capped is False


@pytest.mark.parametrize(
    ("due", "on", "amount", "periods", "days_late"),
    [
        # Common year: 31 Jan 2023 + 1 month = 28 Feb 2023, exactly one month → 88.
        ("2023-01-31", "2023-02-28", 88, 1, 28),
        # 1 March 2023 starts the second month: 175.2 → 175.
        ("2023-01-31", "2023-03-01", 175, 2, 29),
        # Due on leap day: 29 Feb 2024 + 12 months = 28 Feb 2025, exactly 12 → 1051.
        ("2024-02-29", "2025-02-28", 1051, 12, 365),
        ("2024-02-29", "2025-03-01", 1139, 13, 366),
        # 29 Feb 2024 + 48 months = 29 Feb 2028: exactly 48 months, 87.6 × 48 = 4204.8 → 4205;
        # 4 × 365 + 1 leap day = 1461 days.
        ("2024-02-29", "2028-02-29", 4205, 48, 1461),
        # Several years across the 2024 leap day: 15 Mar 2022 + 48 months = 15 Mar 2026,
        # one day more starts month 49: 87.6 × 49 = 4292.4 → 4292; 4 × 365 + 1 + 1 = 1462 days.
        ("2022-03-15", "2026-03-16", 4292, 49, 1462),
    ],
)
def test_month_ends_and_leap_years(due, on, amount, periods, days_late):
    result = surcharge(on, due=due)
    assert (result.amount_minor, result.periods, result.days_late) == (amount, periods, days_late)


@pytest.mark.parametrize(
    ("on", "amount", "periods"),
    [
        ("2024-02-01", 0, 0),  # one day late, no full month yet
        ("2024-02-28", 0, 0),  # 31 Jan + 1 month is 29 Feb, not reached
        ("2024-02-29", 88, 1),  # exactly one month: 87.6 → 88
        ("2024-03-30", 88, 1),  # 31 Jan + 2 months = 31 Mar not reached
        ("2024-03-31", 175, 2),  # exactly two months: 175.2 → 175
    ],
)
def test_only_full_months_when_started_months_do_not_count(on, amount, periods):
    result = surcharge(on, started_period_counts_whole=False)
    assert (result.amount_minor, result.periods) == (amount, periods)


def test_less_than_a_full_month_is_a_rate_line_with_no_periods():
    result = surcharge("2024-02-10", started_period_counts_whole=False)
    assert result.lines == (
        SurchargeLine(
            "rate",
            periods=0,
            period=Period.MONTH,
            rate_percent=Decimal("0.73"),
            base_minor=12000,
            amount_minor=0,
            days=10,
        ),
    )


@pytest.mark.parametrize(
    ("on", "rate", "amount", "periods"),
    [
        # 10 days × 0.03 % of 12000 = 12000 × 0.0003 × 10 = 36.
        ("2024-02-10", "0.03", 36, 10),
        # 8.76 % a year / 365 = 0.024 % a day: 12000 × 0.00024 × 10 = 28.8 → 29.
        ("2024-02-10", "0.024", 29, 10),
        # One day: 12000 × 0.00024 = 2.88 → 3.
        ("2024-02-01", "0.024", 3, 1),
        # Leap February counts its 29 days: 31 Jan → 31 Mar is 60 days; 2.88 × 60 = 172.8 → 173.
        ("2024-03-31", "0.024", 173, 60),
    ],
)
def test_daily_period(on, rate, amount, periods):
    result = surcharge(on, period=Period.DAY, rate_percent=Decimal(rate))
    assert (result.amount_minor, result.periods) == (amount, periods)


@pytest.mark.parametrize(
    ("on", "grace_days", "amount", "periods", "kind"),
    [
        # 10 days after the due date is still inside a 10-day grace.
        ("2024-02-10", 10, 0, 0, "grace"),
        # Day 11: grace is over and the delay counts from 1 Feb: one started month → 88.
        ("2024-02-11", 10, 88, 1, "rate"),
        # Paid on the due date: not overdue at all, grace is not mentioned.
        ("2024-01-31", 10, 0, 0, "not_overdue"),
        # A 40-day grace ends on 11 Mar; on 12 Mar delay counts from 1 Feb:
        # 29 Feb reached (1 month) plus a started second month → 175.
        ("2024-03-11", 40, 0, 0, "grace"),
        ("2024-03-12", 40, 175, 2, "rate"),
    ],
)
def test_grace_days(on, grace_days, amount, periods, kind):
    result = surcharge(on, grace_days=grace_days)
    assert (result.amount_minor, result.periods) == (amount, periods)
    assert result.lines[0].kind == kind


def test_grace_line_names_the_grace_period():
    result = surcharge("2024-02-05", grace_days=10)
    assert result.lines == (SurchargeLine("grace", days=10, amount_minor=0),)
    assert result.days_late == 5


@pytest.mark.parametrize(
    ("on", "amount", "periods", "days_late", "kind"),
    [
        # Counting starts on 2 Feb, so paying on 1 Feb is free.
        ("2024-02-01", 0, 0, 1, "not_overdue"),
        ("2024-02-02", 88, 1, 2, "rate"),
        # Anchor 1 Feb + 1 month = 1 Mar: exactly one month (the default would charge two).
        ("2024-03-01", 88, 1, 30, "rate"),
        ("2024-03-02", 175, 2, 31, "rate"),
    ],
)
def test_start_after_days(on, amount, periods, days_late, kind):
    result = surcharge(on, start_after_days=2)
    assert (result.amount_minor, result.periods, result.days_late) == (amount, periods, days_late)
    assert result.lines[0].kind == kind


@pytest.mark.parametrize(
    ("options", "amount", "capped", "cap_line"),
    [
        # Three months is 263; an absolute cap of 1,50 € wins.
        ({"cap_minor": 150}, 150, True, SurchargeLine("cap", amount_minor=150, base_minor=12000)),
        # 2 % of 12000 = 240 < 263.
        (
            {"cap_percent": Decimal("2")},
            240,
            True,
            SurchargeLine("cap", amount_minor=240, rate_percent=Decimal("2"), base_minor=12000),
        ),
        # Both caps: the smaller (240 by percent against 250) binds.
        (
            {"cap_minor": 250, "cap_percent": Decimal("2")},
            240,
            True,
            SurchargeLine("cap", amount_minor=240, rate_percent=Decimal("2"), base_minor=12000),
        ),
        # Both caps: 200 absolute against 240 by percent.
        (
            {"cap_minor": 200, "cap_percent": Decimal("2")},
            200,
            True,
            SurchargeLine("cap", amount_minor=200, base_minor=12000),
        ),
        # Caps above the amount change nothing.
        ({"cap_minor": 1000, "cap_percent": Decimal("200")}, 263, False, None),
        # A cap equal to the amount is reached, not exceeded.
        ({"cap_minor": 263}, 263, False, None),
    ],
)
def test_caps(options, amount, capped, cap_line):
    result = surcharge("2024-04-01", **options)
    assert result.amount_minor == amount
    assert result.capped is capped
    assert result.periods == 3
    # The rate line always shows what the rate alone came to.
    assert result.lines[0].amount_minor == 263
    if cap_line is None:
        assert [line.kind for line in result.lines] == ["rate"]
    else:
        assert result.lines[1:] == (cap_line,)


def test_percentage_cap_follows_the_policy_rounding():
    # Principal 10,01 €, 100 months: 1001 × 0.0073 × 100 = 730.73, far above the cap.
    # A 2.55 % cap is 1001 × 0.0255 = 25.5255 → 26 with HALF_UP, 25 with DOWN.
    up = surcharge("2032-05-31", principal=1001, cap_percent=Decimal("2.55"))
    down = surcharge("2032-05-31", principal=1001, cap_percent=Decimal("2.55"), rounding=ROUND_DOWN)
    assert up.periods == down.periods == 100  # 31 Jan 2024 + 100 months = 31 May 2032
    assert (up.amount_minor, down.amount_minor) == (26, 25)


@pytest.mark.parametrize(
    ("on", "principal", "options", "amount", "kinds"),
    [
        # 88 is under the 1,00 € minimum, so it is raised.
        ("2024-02-01", 12000, {"minimum_minor": 100}, 100, ["rate", "minimum"]),
        # 263 is above the minimum: untouched.
        ("2024-04-01", 12000, {"minimum_minor": 100}, 263, ["rate"]),
        # 10 cents × 0.0073 = 0.073 → 0 after rounding, yet a surcharge applies: the minimum.
        ("2024-02-01", 10, {"minimum_minor": 100}, 100, ["rate", "minimum"]),
        # Nothing owed on a zero principal, so no minimum either.
        ("2024-02-01", 0, {"minimum_minor": 100}, 0, ["rate"]),
        # Not overdue: no minimum.
        ("2024-01-31", 12000, {"minimum_minor": 100}, 0, ["not_overdue"]),
        # Minimum first (88 → 300), then the cap (250).
        ("2024-02-01", 12000, {"minimum_minor": 300, "cap_minor": 250}, 250, ["rate", "minimum", "cap"]),
    ],
)
def test_minimum(on, principal, options, amount, kinds):
    result = surcharge(on, principal=principal, **options)
    assert result.amount_minor == amount
    assert [line.kind for line in result.lines] == kinds


@pytest.mark.parametrize(
    ("principal", "on", "rounding", "amount"),
    [
        # 5000 × 0.0073 = 36.5: the half case.
        (5000, "2024-02-01", ROUND_HALF_UP, 37),
        (5000, "2024-02-01", ROUND_HALF_EVEN, 36),
        (5000, "2024-02-01", ROUND_DOWN, 36),
        (5000, "2024-02-01", ROUND_UP, 37),
        # 15000 × 0.0073 = 109.5: half-even goes up to 110 here.
        (15000, "2024-02-01", ROUND_HALF_EVEN, 110),
        # 12000, 3 months: 262.8.
        (12000, "2024-04-01", ROUND_DOWN, 262),
        (12000, "2024-04-01", ROUND_UP, 263),
        # 12000, 5 months: 438 exactly, nothing to round.
        (12000, "2024-06-01", ROUND_UP, 438),
    ],
)
def test_rounding_rules(principal, on, rounding, amount):
    assert surcharge(on, principal=principal, rounding=rounding).amount_minor == amount


def test_rounding_happens_once_at_the_end():
    # 3 months on 5000: 36.5 × 3 = 109.5 → 110 (HALF_UP). Rounding each month
    # first would give 37 × 3 = 111.
    assert surcharge("2024-04-01", principal=5000).amount_minor == 110


@pytest.mark.parametrize(
    ("category", "amount", "kind"),
    [
        ("uncertified", 0, "no_surcharge_category"),
        ("installment", 0, "no_surcharge_category"),
        ("certified", 175, "rate"),
        ("settled", 175, "rate"),
    ],
)
def test_categories(category, amount, kind):
    result = surcharge("2024-03-01", category=category)
    assert result.amount_minor == amount
    assert result.lines[0].kind == kind
    # Lateness is reported whatever the category: 31 Jan → 1 Mar is 30 days.
    assert result.days_late == 30


def test_uncertified_line_names_the_category():
    result = surcharge("2024-03-01", category="uncertified")
    assert result == SurchargeResult(
        amount_minor=0,
        periods=0,
        days_late=30,
        lines=(SurchargeLine("no_surcharge_category", category="uncertified", amount_minor=0),),
        capped=False,
    )


def test_an_agency_may_surcharge_uncertified_debts():
    policy = SurchargePolicy(categories=frozenset({"certified", "uncertified"}))
    result = compute_surcharge(policy, principal_minor=12000, due_date=DUE, on=D("2024-02-01"), category="uncertified")
    assert result.amount_minor == 88


def test_rate_line_records_the_calculation():
    result = surcharge("2024-04-01")
    assert result.lines == (
        SurchargeLine(
            "rate",
            periods=3,
            period=Period.MONTH,
            rate_percent=Decimal("0.73"),
            base_minor=12000,
            amount_minor=263,
            days=61,
        ),
    )


def test_pre_2014_regime_can_be_configured():
    # 1 % a month capped at 200 %: 120,00 € over 25 years (300 months) would be 360,00 €,
    # but the cap is 2 × 120,00 = 240,00 €.
    old = SurchargePolicy(rate_percent=Decimal("1"), cap_percent=Decimal("200"))
    result = compute_surcharge(
        old, principal_minor=12000, due_date=D("1990-01-31"), on=D("2015-01-31"), category="certified"
    )
    assert result.periods == 300
    assert (result.amount_minor, result.capped) == (24000, True)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"principal_minor": -1}, ValueError),
        ({"principal_minor": 12.5}, ValueError),
        ({"principal_minor": True}, ValueError),
        ({"on": datetime(2024, 2, 1, 12, 0)}, TypeError),  # the caller decides the time zone
        ({"due_date": "2024-01-31"}, TypeError),
    ],
)
def test_compute_surcharge_refuses_bad_input(kwargs, error):
    arguments = {"principal_minor": 12000, "due_date": DUE, "on": D("2024-02-01"), "category": "certified"}
    arguments.update(kwargs)
    with pytest.raises(error):
        compute_surcharge(GREEK_DEFAULT, **arguments)


# -- the policy as a setting --------------------------------------------------


def test_greek_default_values():
    assert GREEK_DEFAULT.to_dict() == {
        "rate_percent": "0.73",
        "period": "month",
        "started_period_counts_whole": True,
        "start_after_days": 1,
        "grace_days": 0,
        "cap_minor": None,
        "cap_percent": None,
        "minimum_minor": 0,
        "rounding": "ROUND_HALF_UP",
        "categories": ["certified", "settled"],
    }


def test_policy_round_trips_through_json():
    policy = SurchargePolicy(
        rate_percent=Decimal("0.024"),
        period=Period.DAY,
        started_period_counts_whole=False,
        start_after_days=3,
        grace_days=10,
        cap_minor=5000,
        cap_percent=Decimal("12.5"),
        minimum_minor=100,
        rounding=ROUND_HALF_EVEN,
        categories=frozenset({"certified", "settled", "uncertified"}),
    )
    stored = json.dumps(policy.to_dict())
    assert json.loads(stored)["cap_percent"] == "12.5"
    assert json.loads(stored)["categories"] == ["certified", "settled", "uncertified"]
    assert SurchargePolicy.from_dict(json.loads(stored)) == policy


def test_from_dict_fills_missing_keys_with_defaults():
    assert SurchargePolicy.from_dict({}) == GREEK_DEFAULT
    policy = SurchargePolicy.from_dict({"grace_days": 5, "rate_percent": "1"})
    assert policy == SurchargePolicy(grace_days=5, rate_percent=Decimal("1"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"rate": "0.73"}, "Unknown surcharge settings: rate."),  # misspelt key
        ({"grace_days": 3, "cap": 1, "min": 2}, "Unknown surcharge settings: cap, min."),
        ({"rate_percent": 0.73}, "decimal number"),  # floats are refused
        ({"rate_percent": "abc"}, "decimal number"),
        ({"period": "week"}, "'month' or 'day'"),
        ({"categories": "certified"}, "list of names"),
        ({"start_after_days": "1"}, "start_after_days"),
        ({"rounding": "ROUND_CEILING"}, "rounding rule"),
    ],
)
def test_from_dict_refuses(data, message):
    with pytest.raises(InvalidPolicy, match=message):
        SurchargePolicy.from_dict(data)


@pytest.mark.parametrize(
    "options",
    [
        {"rate_percent": Decimal("-0.73")},
        {"rate_percent": 0.73},
        {"rate_percent": Decimal("NaN")},
        {"period": "month"},  # the enum, not its text, in code
        {"started_period_counts_whole": 1},
        {"start_after_days": 0},
        {"start_after_days": True},
        {"grace_days": -1},
        {"cap_minor": -1},
        {"cap_minor": 1.5},
        {"cap_percent": Decimal("-1")},
        {"cap_percent": 20},
        {"minimum_minor": -1},
        {"rounding": "ROUND_FLOOR"},
        {"rounding": "half up"},
        {"categories": {"certified"}},  # a mutable set
        {"categories": frozenset({""})},
    ],
)
def test_policy_validation(options):
    with pytest.raises(InvalidPolicy):
        SurchargePolicy(**options)


def test_invalid_policy_is_a_value_error_with_a_sentence():
    with pytest.raises(ValueError, match=r"^The grace period must be a whole number of days, zero or more\.$"):
        SurchargePolicy(grace_days=-1)


def test_policy_is_immutable():
    with pytest.raises(AttributeError):
        GREEK_DEFAULT.grace_days = 5  # type: ignore[misc]


# -- explanations -------------------------------------------------------------


@pytest.mark.parametrize(
    ("on", "options", "locale", "expected"),
    [
        ("2024-04-01", {}, "en", ["3 months late × 0.73 % of €120.00"]),
        ("2024-04-01", {}, "el", ["3 months late × 0,73 % of 120,00\xa0€"]),
        ("2024-02-01", {}, "en", ["1 month late × 0.73 % of €120.00"]),
        ("2024-01-31", {}, "el", ["Not overdue: no surcharge"]),
        ("2024-02-05", {"grace_days": 10}, "en", ["Paid within the 10-day grace period: no surcharge"]),
        (
            "2024-02-10",
            {"started_period_counts_whole": False},
            "en",
            ["Less than a full month late: no surcharge"],
        ),
        (
            "2024-02-10",
            {"period": Period.DAY, "rate_percent": Decimal("0.024")},
            "el",
            ["10 days late × 0,024 % of 120,00\xa0€"],
        ),
        (
            "2024-02-01",
            {"period": Period.DAY, "rate_percent": Decimal("0.024")},
            "en",
            ["1 day late × 0.024 % of €120.00"],
        ),
        # A rate with four decimals is shown in full, not rounded to three.
        (
            "2024-02-01",
            {"rate_percent": Decimal("0.0333")},
            "el",
            ["1 month late × 0,0333 % of 120,00\xa0€"],
        ),
        # 31 Jan 2024 + 28 months = 31 May 2026: 87.6 × 28 = 2452.8 → 2453 > 20 % of 120 = 24,00.
        (
            "2026-05-31",
            {"cap_percent": Decimal("20")},
            "el",
            ["28 months late × 0,73 % of 120,00\xa0€", "Capped at 24,00\xa0€ (20 % of the principal)"],
        ),
        (
            "2024-04-01",
            {"cap_minor": 150},
            "en",
            ["3 months late × 0.73 % of €120.00", "Capped at €1.50"],
        ),
        (
            "2024-02-01",
            {"minimum_minor": 100},
            "el",
            ["1 month late × 0,73 % of 120,00\xa0€", "Raised to the minimum surcharge of 1,00\xa0€"],
        ),
    ],
)
def test_explain(on, options, locale, expected):
    assert explain(surcharge(on, **options), currency="EUR", locale=locale) == expected


@pytest.mark.parametrize(
    ("category", "expected"),
    [
        ("uncertified", ["Uncertified debts carry no surcharge"]),
        ("installment", ["Debts of this kind carry no surcharge"]),
    ],
)
def test_explain_categories(category, expected):
    assert explain(surcharge("2024-03-01", category=category), currency="EUR", locale="en") == expected


GREEK_CATALOGUE = {
    "%(num)d month late × %(rate)s %% of %(base)s": "%(num)d μήνας καθυστέρησης × %(rate)s %% επί %(base)s",
    "%(num)d months late × %(rate)s %% of %(base)s": "%(num)d μήνες καθυστέρησης × %(rate)s %% επί %(base)s",
    "Capped at %(amount)s (%(percent)s %% of the principal)": "Ανώτατο όριο %(amount)s (%(percent)s %% της οφειλής)",
}


def greek_gettext(message: str) -> str:
    return GREEK_CATALOGUE.get(message, message)


def greek_ngettext(singular: str, plural: str, n: int) -> str:
    return greek_gettext(singular if n == 1 else plural)


def test_explain_uses_the_given_translators_and_formats_itself():
    result = surcharge("2026-05-31", cap_percent=Decimal("20"))
    assert explain(result, currency="EUR", locale="el", gettext=greek_gettext, ngettext=greek_ngettext) == [
        "28 μήνες καθυστέρησης × 0,73 % επί 120,00\xa0€",
        "Ανώτατο όριο 24,00\xa0€ (20 % της οφειλής)",
    ]
    one_month = surcharge("2024-02-01")
    assert explain(one_month, currency="EUR", locale="el", gettext=greek_gettext, ngettext=greek_ngettext) == [
        "1 μήνας καθυστέρησης × 0,73 % επί 120,00\xa0€"
    ]


EXPLAINED_RESULTS = [
    surcharge("2024-01-31"),
    surcharge("2024-02-05", grace_days=10),
    surcharge("2024-03-01", category="uncertified"),
    surcharge("2024-03-01", category="installment"),
    surcharge("2024-02-10", started_period_counts_whole=False),
    surcharge("2024-02-01", minimum_minor=100, cap_minor=90),
    surcharge("2024-04-01", cap_percent=Decimal("2")),
    surcharge("2024-02-01", period=Period.DAY, rate_percent=Decimal("0.024")),
    surcharge("2024-02-10", period=Period.DAY, rate_percent=Decimal("0.024")),
    surcharge("2024-04-01"),
    surcharge("2024-02-01"),
]


def test_every_message_explain_uses_is_found_by_pybabel_extract():
    # The same extractor `pybabel extract` runs, with its default keywords.
    source = Path(surcharges_module.__file__).read_bytes()
    extracted: set[str] = set()
    for _lineno, message, _comments, _context in extract("python", io.BytesIO(source)):
        if isinstance(message, tuple):
            extracted.update(message)
        else:
            extracted.add(message)

    used: set[str] = set()

    def recording_gettext(message: str) -> str:
        used.add(message)
        return message

    def recording_ngettext(singular: str, plural: str, n: int) -> str:
        used.update((singular, plural))
        return singular if n == 1 else plural

    for result in EXPLAINED_RESULTS:
        explain(result, currency="EUR", locale="en", gettext=recording_gettext, ngettext=recording_ngettext)

    # 7 gettext messages + 5 plural strings (the grace message reads the same in both forms).
    assert len(used) == 12
    assert used <= extracted


def test_module_is_pure():
    tree = ast.parse(Path(surcharges_module.__file__).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    # Domain rules must run without a web app or a database.
    assert imported.isdisjoint({"flask", "flask_babel", "flask_sqlalchemy", "sqlalchemy", "werkzeug"})
