"""The withholdings ledger: splits fixed when paid, refunds that reverse them in proportion, a check that holds.

Payments and refunds go through the real flow (quote, sandbox charge, confirm; refund through the
provider), so the entries are written by the listeners, in the payment's and the refund's
transactions, as in production.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from app.agencies.models import Agency
from app.checkout.payment_flow import pay_quote
from app.checkout.services import quote_debts
from app.domain.withholdings import reverse_in_proportion, split_line, withholdings_for_kind
from app.extensions import db
from app.payments.models import Payment, SplitDayTotal, SplitEntry
from app.payments.providers import CardDetails, get_provider
from app.payments.refunds import refund_payment, refundable_share
from app.payments.splits import AGENCY_PART, verify_ledger
from app.treasury.reports.services import settlement_report
from app.treasury.settings.services import current_settings, update_settings
from tests.factories import AgencyFactory, DebtFactory, DebtorFactory, UserFactory, link
from tests.payments.helpers import assert_ledger_adds_up

NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)  # 11:00 in Athens
TODAY = date(2026, 3, 2)
CARD = CardDetails(number="4242424242424242", exp_month=12, exp_year=2030, cvc="123", holder="M P")
THREE = {"default": [{"name": "A", "percent": "2"}, {"name": "B", "percent": "3.5"}, {"name": "C", "fixed_minor": 100}]}


@pytest.fixture()
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture()
def payer(db_session: None, clock) -> dict:
    debtor, user = DebtorFactory(), UserFactory()
    link(user, debtor)
    return {"user": user.id, "debtor": debtor}


def pay(payer: dict, agency: Agency, *amounts: int, kind: str = "property_fee") -> Payment:
    """Pay new debts of the agency (not yet due, so no surcharge) by sandbox card."""
    return pay_lines(payer, agency, [(kind, amount) for amount in amounts])


def pay_lines(payer: dict, agency: Agency, lines: list[tuple[str, int]]) -> Payment:
    """Pay one new debt per (kind, amount) of the agency by sandbox card."""
    debts = [
        DebtFactory(
            agency=agency, debtor=payer["debtor"], kind=kind, principal_minor=amount, due_date=date(2026, 12, 31)
        )
        for kind, amount in lines
    ]
    now = datetime.now(UTC)
    quote = quote_debts(payer["user"], [f"d{debt.id}" for debt in debts], now)
    return pay_quote(payer["user"], quote.token, CARD, get_provider("sandbox"), now)


def refund(payment: Payment, agency: Agency, amount_minor: int):
    available = refundable_share(payment.id, agency.id).available_minor
    return refund_payment(
        payment_id=payment.id, agency=agency, amount_minor=amount_minor, expected_available_minor=available,
        reason="Paid twice.", user_id=None,
    )  # fmt: skip


def set_withholdings(agency: Agency, withholdings: dict) -> None:
    settings_now = current_settings(agency)
    update_settings(agency, type(settings_now)(**{**settings_now.__dict__, "withholdings": withholdings}))
    db.session.commit()


def parts(refund_or_payment_id: int, *, refund: bool = False) -> dict[str, int]:
    column = SplitEntry.refund_id if refund else SplitEntry.payment_id
    rows = db.session.execute(
        select(SplitEntry.beneficiary, func.sum(SplitEntry.amount_minor))
        .where(
            column == refund_or_payment_id,
            SplitEntry.refund_id.is_not(None) if refund else SplitEntry.refund_id.is_(None),
        )
        .group_by(SplitEntry.beneficiary)
    ).all()
    return dict(rows)


def test_a_payment_books_its_split_in_its_own_transaction(payer: dict) -> None:
    agency = AgencyFactory(withholdings=THREE)
    payment = pay(payer, agency, 12345)
    # 2 % of 123.45 = 2.469 → 2.47; 3.5 % = 4.32075 → 4.32; 1.00 fixed; the agency keeps the rest.
    assert parts(payment.id) == {"A": 247, "B": 432, "C": 100, AGENCY_PART: 11566}
    entry = db.session.scalars(select(SplitEntry).where(SplitEntry.beneficiary == "B")).one()
    assert (entry.percent, entry.fixed_minor, entry.kind, entry.day) == ("3.5", None, "property_fee", TODAY)
    assert_ledger_adds_up(agency)


def test_settings_changed_after_a_payment_leave_its_settlement_unchanged(payer: dict, clock) -> None:
    agency = AgencyFactory(withholdings={"default": [{"name": "Fund", "percent": "2"}]})
    pay(payer, agency, 10000)
    set_withholdings(agency, {"default": [{"name": "Fund", "percent": "10"}, {"name": "New fund", "fixed_minor": 50}]})
    before = settlement_report(agency, TODAY, TODAY)
    assert before.total.withheld == {"Fund": 200}  # the 2 % in force when it was paid, not today's 10 %
    assert before.beneficiaries == ["Fund"]

    clock.shift(timedelta(hours=1))
    pay(payer, agency, 10000)  # after the change: the new rates
    after = settlement_report(agency, TODAY, TODAY)
    assert after.total.withheld == {"Fund": 200 + 1000, "New fund": 50}
    assert after.total.agency_part_minor == 20000 - 1250
    assert_ledger_adds_up(agency)


def test_a_partial_refund_of_a_payment_with_three_beneficiaries_reverses_each_share_to_the_cent(payer: dict) -> None:
    agency = AgencyFactory(withholdings=THREE)
    payment = pay(payer, agency, 12345)
    first = refund(payment, agency, 5000)
    # 5000 of 12345 of each part: 100.04, 174.97, 40.50, 4684.49 → floors 4998, and the two cents
    # left go to the largest remainders (B's .97, C's .50): 100 + 175 + 41 + 4684 = 5000.
    assert parts(first.id, refund=True) == {"A": -100, "B": -175, "C": -41, AGENCY_PART: -4684}
    report = settlement_report(agency, TODAY, TODAY)
    assert report.total.withheld == {"A": 147, "B": 257, "C": 59}
    assert (report.total.refunds_minor, report.total.agency_part_minor) == (5000, 11566 - 4684)
    # The rest: every part ends at exactly zero.
    rest = refund(payment, agency, 12345 - 5000)
    assert parts(rest.id, refund=True) == {"A": -147, "B": -257, "C": -59, AGENCY_PART: -6882}
    assert settlement_report(agency, TODAY, TODAY).total.withheld == {"A": 0, "B": 0, "C": 0}
    assert_ledger_adds_up(agency)


def test_a_refund_on_a_later_day_is_settled_on_that_day(payer: dict, clock) -> None:
    agency = AgencyFactory(withholdings=THREE)
    payment = pay(payer, agency, 10000, 2345)  # two lines
    clock.shift(timedelta(days=1))
    refund(payment, agency, 1234)
    paid_day, refund_day = (
        settlement_report(agency, TODAY, TODAY),
        settlement_report(agency, TODAY + timedelta(1), TODAY + timedelta(1)),
    )
    assert (paid_day.total.gross_minor, paid_day.total.refunds_minor) == (12345, 0)
    assert (refund_day.total.lines, refund_day.total.gross_minor, refund_day.total.refunds_minor) == (0, 0, 1234)
    assert refund_day.total.withheld_minor + refund_day.total.agency_part_minor == -1234
    assert all(amount < 0 for amount in refund_day.total.withheld.values())
    assert_ledger_adds_up(agency)


def test_the_check_finds_a_changed_entry_and_a_changed_daily_total(payer: dict) -> None:
    agency = AgencyFactory(withholdings=THREE)
    payment = pay(payer, agency, 12345)
    refund(payment, agency, 345)
    assert verify_ledger(agency, TODAY, TODAY).ok
    db.session.execute(
        update(SplitEntry)
        .where(SplitEntry.payment_id == payment.id, SplitEntry.beneficiary == "A", SplitEntry.refund_id.is_(None))
        .values(amount_minor=SplitEntry.amount_minor + 1)
    )
    db.session.execute(update(SplitDayTotal).where(SplitDayTotal.beneficiary == "C").values(reversed_minor=0))
    problems = verify_ledger(agency, TODAY, TODAY).problems
    assert any("adds up to 12346, not 12345" in problem for problem in problems)
    assert any("entries add up to 12001" in problem for problem in problems)
    assert any("daily total of C" in problem for problem in problems)
    assert any("daily total of A" in problem for problem in problems)


def test_flask_treasury_verify_ledger(app: Flask, payer: dict, ledger_damaged_on_purpose: None) -> None:
    agency = AgencyFactory(code="ledgertown", withholdings=THREE)
    refund(pay(payer, agency, 12345), agency, 500)
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["treasury", "verify-ledger", "--agency", "ledgertown"])
    assert result.exit_code == 0, result.output
    assert "ledgertown: 1 lines, gross 12345, 1 refunds 500, entries 11845 (withheld 747)" in result.output
    assert "adds up" in result.output
    db.session.execute(update(SplitEntry).where(SplitEntry.beneficiary == "B").values(beneficiary="D"))
    db.session.commit()
    broken = app.test_cli_runner().invoke(
        args=["treasury", "verify-ledger", "--agency", "ledgertown", "--from", "2026-03-01", "--to", "2026-03-31"]
    )
    assert broken.exit_code == 1 and "DOES NOT ADD UP" in broken.output and "daily total of D" in broken.output
    unknown = app.test_cli_runner().invoke(args=["treasury", "verify-ledger", "--agency", "nowhere"])
    assert unknown.exit_code == 1 and "No agency has the code nowhere" in unknown.output


# -- a random sequence of payments, partial refunds and setting changes ------------------------------

_rates = st.one_of(
    st.builds(lambda p: {"percent": str(p)}, st.decimals(min_value=Decimal("0.01"), max_value=Decimal("30"), places=2)),
    st.builds(lambda f: {"fixed_minor": f}, st.integers(min_value=1, max_value=3000)),
)
_withholdings = st.lists(
    st.tuples(st.sampled_from(["Fund A", "Fund B", "Ταμείο Γ"]), _rates), min_size=0, max_size=3
).map(lambda items: [{"name": name, **rate} for name, rate in items])
_lines = st.lists(
    st.tuples(st.sampled_from(["property_fee", "traffic_fine"]), st.integers(1, 50_000)), min_size=1, max_size=3
)
_steps = st.lists(
    st.one_of(
        st.tuples(st.just("pay"), _lines),
        st.tuples(st.just("refund"), st.tuples(st.integers(0, 10**6), st.integers(1, 100))),
        st.tuples(st.just("settings"), st.tuples(_withholdings, _withholdings)),
        st.tuples(st.just("next day"), st.none()),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=_steps)
def test_the_ledger_adds_up_after_any_sequence_of_payments_refunds_and_setting_changes(
    payer: dict, clock, steps
) -> None:
    """Our own arithmetic (split at the rates of the moment, reversals in proportion) against the ledger's."""
    agency = AgencyFactory(withholdings={"default": [{"name": "Fund A", "percent": "2"}]})
    first_day = datetime.now(UTC).date()
    payments: list[tuple[Payment, list[list]]] = []  # each with its parts, [beneficiary, held], as we expect them
    expected: dict[str, int] = defaultdict(int)  # what each beneficiary should hold in the end
    for action, argument in steps:
        if action == "pay":
            rates_then = dict(agency.withholdings or {})
            payment = pay_lines(payer, agency, argument)
            cells = []
            for line in sorted(payment.lines, key=lambda line: line.id):
                split = split_line(line.amount_minor, "EUR", withholdings_for_kind(rates_then, line.debt.kind))
                cells += [[share.name, share.amount_minor] for share in split.shares]
                cells.append([AGENCY_PART, split.remainder_minor])
            for name, amount in cells:
                expected[name] += amount
            payments.append((payment, cells))
        elif action == "refund" and payments:
            index, percent = argument
            payment, cells = payments[index % len(payments)]
            available = refundable_share(payment.id, agency.id).available_minor
            if available:
                amount = max(1, available * percent // 100)
                refund(payment, agency, amount)
                taken = reverse_in_proportion(amount, [held for _name, held in cells])
                for cell, part in zip(cells, taken, strict=True):
                    cell[1] -= part
                    expected[cell[0]] -= part
        elif action == "settings":
            default, fines = argument
            set_withholdings(agency, {"default": default, "traffic_fine": fines})
        else:
            clock.shift(timedelta(days=1))
    last_day = datetime.now(UTC).date() + timedelta(days=1)
    [check] = assert_ledger_adds_up(agency, date_from=first_day, date_to=last_day)
    assert check.by_beneficiary == dict(expected)
    report = settlement_report(agency, first_day, last_day)
    assert report.total.withheld == {name: amount for name, amount in expected.items() if name != AGENCY_PART}
    assert report.total.agency_part_minor == expected.get(AGENCY_PART, 0)
    assert report.total.net_minor == sum(expected.values())


def test_unreadable_settings_never_stop_a_payment_that_was_charged(payer: dict) -> None:
    agency = AgencyFactory(withholdings={"default": [{"name": "Fund", "percent": 2.5}]})  # a float: refused
    payment = pay(payer, agency, 10000)
    assert payment.status == "succeeded"
    assert parts(payment.id) == {AGENCY_PART: 10000}  # booked whole to the agency; the error is logged


def test_a_refund_of_more_than_its_parts_hold_still_stands_and_the_check_says_so(
    payer: dict, ledger_damaged_on_purpose: None
) -> None:
    agency = AgencyFactory(withholdings=THREE)
    payment = pay(payer, agency, 10000)
    db.session.execute(update(SplitEntry).where(SplitEntry.beneficiary == AGENCY_PART).values(amount_minor=0))
    db.session.commit()  # a ledger damaged by hand: the parts now hold 2.00 + 3.50 + 1.00
    made = refund(payment, agency, 1000)
    assert made.status == "succeeded"
    assert sum(parts(made.id, refund=True).values()) == -650
    problems = verify_ledger(agency, TODAY, TODAY).problems
    assert any(f"Refund {made.reference} of 1000 reverses 650." == problem for problem in problems)
