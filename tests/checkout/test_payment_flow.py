"""The sandbox card flow of checkout.payment_flow: claim, charge, confirm or fail, once per debt."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.checkout.models import Quote
from app.checkout.payment_flow import PaymentDeclined, confirm_payment, pay_quote
from app.checkout.services import CheckoutError, quote_debts
from app.debts.models import Debt, Installment
from app.extensions import db
from app.payments.models import Payment
from app.payments.providers import CardDetails, get_provider
from tests.factories import DebtFactory, DebtorFactory, InstallmentFactory, UserFactory, link

NOW = datetime(2026, 3, 1, 10, tzinfo=UTC)
GOOD_CARD = CardDetails(number="4242424242424242", exp_month=12, exp_year=2030, cvc="123", holder="M P")
DECLINED_CARD = CardDetails(number="4000000000000002", exp_month=12, exp_year=2030, cvc="123", holder="M P")
SANDBOX = get_provider("sandbox")


@pytest.fixture()
def citizen(db_session: None):
    debtor, user = DebtorFactory(), UserFactory()
    link(user, debtor)
    return user, debtor


def test_successful_payment_marks_debts_paid_and_uses_the_quote(citizen) -> None:
    user, debtor = citizen
    debt = DebtFactory(debtor=debtor, principal_minor=12000, due_date=date(2026, 1, 31))
    quote = quote_debts(user.id, [f"d{debt.id}"], NOW)
    payment = pay_quote(user.id, quote.token, GOOD_CARD, SANDBOX, NOW)

    assert (payment.status, payment.amount_minor, payment.card_last4) == ("succeeded", 12175, "4242")
    assert sum(line.amount_minor for line in payment.lines) == payment.amount_minor
    stored = db.session.get(Debt, debt.id)
    assert (stored.status, stored.paid_minor, stored.pending_payment_id) == ("paid", 12000, None)
    assert db.session.get(Quote, quote.id).status == "used"


def test_paying_one_installment_leaves_the_arrangement_open(citizen) -> None:
    user, debtor = citizen
    settled = DebtFactory(debtor=debtor, category="settled", principal_minor=10000, due_date=date(2026, 4, 30))
    first = InstallmentFactory(debt=settled, number=1, amount_minor=5000, due_date=date(2026, 3, 31))
    InstallmentFactory(debt=settled, number=2, amount_minor=5000, due_date=date(2026, 4, 30))
    quote = quote_debts(user.id, [f"i{first.id}"], NOW)
    pay_quote(user.id, quote.token, GOOD_CARD, SANDBOX, NOW)
    assert db.session.get(Installment, first.id).status == "paid"
    stored = db.session.get(Debt, settled.id)
    assert (stored.status, stored.paid_minor) == ("open", 5000)


def test_declined_card_changes_no_debt_and_the_quote_can_be_retried(citizen) -> None:
    user, debtor = citizen
    debt = DebtFactory(debtor=debtor)
    quote = quote_debts(user.id, [f"d{debt.id}"], NOW)
    with pytest.raises(PaymentDeclined) as declined:
        pay_quote(user.id, quote.token, DECLINED_CARD, SANDBOX, NOW)
    assert declined.value.payment.failure_reason == "card_declined"
    stored = db.session.get(Debt, debt.id)
    assert (stored.status, stored.paid_minor, stored.pending_payment_id) == ("open", 0, None)
    assert pay_quote(user.id, quote.token, GOOD_CARD, SANDBOX, NOW).status == "succeeded"


def test_second_quote_for_a_paid_debt_is_refused_before_any_charge(citizen) -> None:
    user, debtor = citizen
    debt = DebtFactory(debtor=debtor)
    first = quote_debts(user.id, [f"d{debt.id}"], NOW)
    second = quote_debts(user.id, [f"d{debt.id}"], NOW)  # e.g. two browser tabs
    pay_quote(user.id, first.token, GOOD_CARD, SANDBOX, NOW)
    with pytest.raises(CheckoutError) as error:
        pay_quote(user.id, second.token, GOOD_CARD, SANDBOX, NOW)
    assert error.value.code == "taken"
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 1
    assert db.session.get(Debt, debt.id).paid_minor == 12000


def test_a_used_or_expired_quote_is_refused(citizen) -> None:
    user, debtor = citizen
    quote = quote_debts(user.id, [f"d{DebtFactory(debtor=debtor).id}"], NOW)
    with pytest.raises(CheckoutError, match="quote_expired"):
        pay_quote(user.id, quote.token, GOOD_CARD, SANDBOX, datetime(2026, 3, 1, 22, 0, tzinfo=UTC))
    pay_quote(user.id, quote.token, GOOD_CARD, SANDBOX, NOW)
    with pytest.raises(CheckoutError, match="quote_used"):
        pay_quote(user.id, quote.token, GOOD_CARD, SANDBOX, NOW)


def test_another_users_quote_is_unknown(citizen) -> None:
    user, debtor = citizen
    quote = quote_debts(user.id, [f"d{DebtFactory(debtor=debtor).id}"], NOW)
    with pytest.raises(CheckoutError, match="unknown_quote"):
        pay_quote(UserFactory().id, quote.token, GOOD_CARD, SANDBOX, NOW)


def test_confirming_twice_changes_nothing_the_second_time(citizen) -> None:
    user, debtor = citizen
    debt = DebtFactory(debtor=debtor)
    payment = pay_quote(user.id, quote_debts(user.id, [f"d{debt.id}"], NOW).token, GOOD_CARD, SANDBOX, NOW)
    again = confirm_payment(payment.id, provider_reference="x", card_brand="visa", card_last4="4242")
    assert again.provider_reference == payment.provider_reference
    assert db.session.get(Debt, debt.id).paid_minor == 12000  # not 24000


@pytest.mark.postgres_only
def test_two_concurrent_payments_of_one_debt_only_one_succeeds(app: Flask, committed_db: None) -> None:
    """Two tabs pay the same debt at the same instant: row locks let exactly one through."""
    with app.app_context():
        debtor, user = DebtorFactory(), UserFactory()
        link(user, debtor)
        debt = DebtFactory(debtor=debtor)
        tokens = [quote_debts(user.id, [f"d{debt.id}"], NOW).token for _ in range(2)]
        user_id, debt_id = user.id, debt.id
        db.session.commit()  # the quotes, for the two payers' own sessions (a request would commit them)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def pay(token: str) -> None:
        with app.app_context():
            barrier.wait()
            try:
                pay_quote(user_id, token, GOOD_CARD, SANDBOX, NOW)
                outcomes.append("paid")
            except CheckoutError as error:
                outcomes.append(error.code)

    threads = [threading.Thread(target=pay, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["paid", "taken"]
    with app.app_context():
        stored = db.session.get(Debt, debt_id)
        assert (stored.status, stored.paid_minor) == ("paid", 12000)
        succeeded = db.session.scalar(select(func.count()).select_from(Payment).where(Payment.status == "succeeded"))
        assert succeeded == 1
