"""The surcharge engine's integer fast path gives the cent the Decimal reference formula gives.

The reference here is the rule written out plainly, as the engine computed it before its fast
path: months counted with ``calendar``, ``principal × rate × periods / 100`` in a 50-digit
Decimal context, rounded once by the policy's rule, then the minimum and the caps.
"""

from __future__ import annotations

import calendar
import decimal
from datetime import date, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_UP, Decimal

from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.domain.surcharges import Period, SurchargePolicy, add_months, compute_surcharge


def reference_add_months(start: date, months: int) -> date:
    year, month_index = divmod(start.month - 1 + months, 12)
    year += start.year
    return date(year, month_index + 1, min(start.day, calendar.monthrange(year, month_index + 1)[1]))


def reference_periods(policy: SurchargePolicy, anchor: date, on: date) -> int:
    if policy.period is Period.DAY:
        return (on - anchor).days
    months = (on.year - anchor.year) * 12 + (on.month - anchor.month)
    if reference_add_months(anchor, months) > on:
        months -= 1
    leftover = (on - reference_add_months(anchor, months)).days
    return months + 1 if leftover > 0 and policy.started_period_counts_whole else months


def reference_amount(policy: SurchargePolicy, principal: int, due: date, on: date, category: str) -> int:
    if category not in policy.categories:
        return 0
    anchor = due + timedelta(days=policy.start_after_days - 1)
    if on <= anchor or (on - due).days <= policy.grace_days:
        return 0
    periods = reference_periods(policy, anchor, on)
    with decimal.localcontext(decimal.Context(prec=50)):
        exact = Decimal(principal) * policy.rate_percent * periods / 100
        amount = int(exact.quantize(Decimal(1), rounding=policy.rounding))
        if exact > 0 and amount < policy.minimum_minor:
            amount = policy.minimum_minor
        caps = [] if policy.cap_minor is None else [policy.cap_minor]
        if policy.cap_percent is not None:
            percent_cap = Decimal(principal) * policy.cap_percent / 100
            caps.append(int(percent_cap.quantize(Decimal(1), rounding=policy.rounding)))
    return min([amount, *caps])


rates = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False, allow_infinity=False) | st.sampled_from(
    [Decimal("0.73"), Decimal("1"), Decimal("0.0333"), Decimal("8.76"), Decimal("0.024657534246575342465753")]
)
policies = st.builds(
    SurchargePolicy,
    rate_percent=rates,
    period=st.sampled_from(list(Period)),
    started_period_counts_whole=st.booleans(),
    start_after_days=st.integers(1, 40),
    grace_days=st.integers(0, 60),
    cap_minor=st.none() | st.integers(0, 10**7),
    cap_percent=st.none() | st.decimals(min_value=0, max_value=300, places=2, allow_nan=False, allow_infinity=False),
    minimum_minor=st.integers(0, 5000),
    rounding=st.sampled_from([ROUND_HALF_UP, ROUND_HALF_EVEN, ROUND_DOWN, ROUND_UP]),
)
days = st.dates(min_value=date(1990, 1, 1), max_value=date(2060, 12, 31))


@settings(max_examples=400)
@given(
    policy=policies,
    principal=st.integers(0, 10**13),
    due=days,
    on=days,
    category=st.sampled_from(["certified", "settled", "uncertified"]),
)
@example(SurchargePolicy(), 12000, date(2026, 1, 31), date(2026, 3, 1), "certified")  # 2 × 0.73 % = 175
@example(SurchargePolicy(rounding=ROUND_HALF_EVEN), 50, date(2026, 1, 1), date(2026, 1, 3), "certified")  # a half
@example(SurchargePolicy(rate_percent=Decimal("1E+20")), 10**13, date(1990, 1, 1), date(2060, 1, 1), "certified")
def test_the_fast_path_gives_the_reference_cent(
    policy: SurchargePolicy, principal: int, due: date, on: date, category: str
) -> None:
    result = compute_surcharge(policy, principal_minor=principal, due_date=due, on=on, category=category)
    assert result.amount_minor == reference_amount(policy, principal, due, on, category)
    assert sum(1 for line in result.lines if line.kind == "rate") <= 1


@given(start=days, months=st.integers(-240, 240))
def test_add_months_agrees_with_the_calendar(start: date, months: int) -> None:
    assert add_months(start, months) == reference_add_months(start, months)


def test_half_cents_round_by_the_policy_rule() -> None:
    # 50 cents × 1 % = 0.5 of a cent: up, to even (0), down, up.
    on, due = date(2026, 2, 1), date(2026, 1, 1)  # one month late
    amounts = {
        rounding: compute_surcharge(
            SurchargePolicy(rate_percent=Decimal("1"), rounding=rounding),
            principal_minor=50,
            due_date=due,
            on=on,
            category="certified",
        ).amount_minor
        for rounding in (ROUND_HALF_UP, ROUND_HALF_EVEN, ROUND_DOWN, ROUND_UP)
    }
    assert amounts == {ROUND_HALF_UP: 1, ROUND_HALF_EVEN: 0, ROUND_DOWN: 0, ROUND_UP: 1}
