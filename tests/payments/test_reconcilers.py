"""Crash recovery with either provider: a payment interrupted after the card was charged is finished by
the reconciler, one interrupted before is given up, and the ledger adds up afterwards.

The sandbox keeps its own record of each charge (as Stripe does on its side), committed before we
act on its answer; the "crash" is an exception raised right after that commit, where a killed
process would have stopped. Stripe's crash is the same as in test_stripe.py: the charges are
captured at localstripe while our records still say pending.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.checkout import payment_flow
from app.checkout.models import Quote
from app.checkout.payment_flow import (
    complete_payment,
    reconcile_sandbox_payments,
    reconcile_stripe_payments,
    start_payment,
)
from app.checkout.services import quote_debts
from app.debts.models import Debt
from app.extensions import db
from app.outbox.models import OutboxMessage
from app.payments.models import Payment, SandboxCharge, SplitEntry
from app.payments.providers import CardDetails, get_provider
from app.payments.stripe_gateway import StripeGateway
from tests.payments.helpers import assert_ledger_adds_up
from tests.payments.stripe_steps import call, pay_both, start_and_enter_card
from tests.stripe_server import SECRET_KEY, browser_authenticate

MORNING = datetime(2026, 3, 1, 8, tzinfo=UTC)
CARD_OK = CardDetails(number="4242424242424242", exp_month=12, exp_year=2030, cvc="123", holder="M P")
CARD_DECLINED = CardDetails(number="4000000000000002", exp_month=12, exp_year=2030, cvc="123", holder="M P")
SANDBOX = get_provider("sandbox")


@pytest.fixture(autouse=True)
def _morning():
    with time_machine.travel(MORNING, tick=False) as traveller:
        yield traveller


class Crash(Exception):
    """Where a killed process would have stopped."""


def _sandbox_crash_after_charge(citizen: dict, monkeypatch: pytest.MonkeyPatch, card: CardDetails = CARD_OK) -> int:
    """Claim, charge at the sandbox (its record committed), then die before recording the outcome."""
    quote = quote_debts(citizen["user"], [f"d{debt_id}" for debt_id in citizen["debts"]], MORNING)
    payment = start_payment(citizen["user"], quote.token, SANDBOX, MORNING)

    def crash(*_args: object, **_kwargs: object) -> None:
        raise Crash

    with monkeypatch.context() as patch:
        patch.setattr(payment_flow, "_record_charge_result", crash)
        with pytest.raises(Crash):
            complete_payment(payment, SANDBOX, card)
    db.session.rollback()
    return payment.id


def _stripe_crash_after_capture(client: FlaskClient, citizen: dict, localstripe_url: str) -> int:
    review_url = pay_both(client, citizen)
    reference = start_and_enter_card(client, localstripe_url, review_url, "4000 0027 6000 3184")
    for secret in call(client, review_url, "charge", payment=reference).json["action_secrets"]:
        browser_authenticate(localstripe_url, secret, success=True)
    payment = db.session.scalars(select(Payment)).one()
    for charge in payment.charges:
        StripeGateway(SECRET_KEY, localstripe_url).capture_payment_intent(
            charge.provider_reference, idempotency_key="x"
        )
    return payment.id


@pytest.mark.parametrize("provider", ["sandbox", "stripe"])
def test_a_payment_charged_but_never_recorded_is_finished_by_the_reconciler(
    provider: str, client: FlaskClient, citizen: dict, stripe_app: Flask, localstripe_url: str, monkeypatch
) -> None:
    if provider == "sandbox":
        payment_id = _sandbox_crash_after_charge(citizen, monkeypatch)
        reconcile, wait = reconcile_sandbox_payments, timedelta(minutes=5)
    else:
        payment_id = _stripe_crash_after_capture(client, citizen, localstripe_url)
        reconcile, wait = reconcile_stripe_payments, timedelta(minutes=10)
    assert db.session.get(Payment, payment_id).status == "pending"
    assert db.session.scalar(select(func.count()).select_from(SplitEntry)) == 0
    with stripe_app.app_context():
        assert reconcile(MORNING + wait - timedelta(seconds=1)).checked == 0  # too early to ask
        report = reconcile(MORNING + wait)
    assert (report.checked, report.succeeded) == (1, 1)
    db.session.expire_all()
    payment = db.session.get(Payment, payment_id)
    assert payment.status == "succeeded" and payment.provider == provider
    assert all(debt.status == "paid" and debt.pending_payment_id is None for debt in db.session.scalars(select(Debt)))
    # Everything that listens to a payment heard of it: the ERP acks and the split entries.
    acks = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.topic == "erp_payment_ack")
    assert db.session.scalar(acks) == 2
    assert db.session.scalar(select(func.sum(SplitEntry.amount_minor))) == payment.amount_minor
    assert_ledger_adds_up()
    with stripe_app.app_context():  # a second pass changes nothing
        assert reconcile(MORNING + wait + timedelta(minutes=1)).checked == 0


def test_a_sandbox_payment_interrupted_before_the_charge_is_given_up(citizen: dict, stripe_app: Flask) -> None:
    quote = quote_debts(citizen["user"], [f"d{debt_id}" for debt_id in citizen["debts"]], MORNING)
    payment = start_payment(citizen["user"], quote.token, SANDBOX, MORNING)  # then the process died
    payment_id, quote_id = payment.id, quote.id
    with stripe_app.app_context():
        report = reconcile_sandbox_payments(MORNING + timedelta(minutes=5))
    assert (report.checked, report.abandoned) == (1, 1)
    db.session.expire_all()
    payment = db.session.get(Payment, payment_id)
    assert (payment.status, payment.failure_reason) == ("failed", "abandoned")
    assert all(debt.pending_payment_id is None and debt.status == "open" for debt in db.session.scalars(select(Debt)))
    assert db.session.get(Quote, quote_id).status == "open"  # the citizen may pay it again
    assert db.session.scalar(select(func.count()).select_from(SandboxCharge)) == 0


def test_a_decline_the_sandbox_gave_but_we_never_recorded_frees_the_debts(
    citizen: dict, stripe_app: Flask, monkeypatch
) -> None:
    payment_id = _sandbox_crash_after_charge(citizen, monkeypatch, card=CARD_DECLINED)
    with stripe_app.app_context():
        report = reconcile_sandbox_payments(MORNING + timedelta(minutes=6))
    assert (report.checked, report.failed) == (1, 1)
    db.session.expire_all()
    payment = db.session.get(Payment, payment_id)
    assert (payment.status, payment.failure_reason) == ("failed", "card_declined")
    assert all(debt.pending_payment_id is None for debt in db.session.scalars(select(Debt)))


def test_the_sandbox_answers_a_repeated_key_from_its_own_record(db_session: None) -> None:
    first = SANDBOX.charge(amount_minor=500, currency="EUR", card=CARD_OK, idempotency_key="CP-REPEAT")
    again = SANDBOX.charge(amount_minor=500, currency="EUR", card=CARD_DECLINED, idempotency_key="CP-REPEAT")
    assert first == again and first.succeeded
    assert SANDBOX.find_charge("CP-REPEAT") == first and SANDBOX.find_charge("CP-NEVER") is None


def test_flask_worker_once_repairs_a_sandbox_payment(
    app: Flask, citizen: dict, stripe_app: Flask, monkeypatch, _morning
) -> None:
    payment_id = _sandbox_crash_after_charge(citizen, monkeypatch)
    db.session.commit()
    _morning.move_to(MORNING + timedelta(minutes=6))
    result = app.test_cli_runner().invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert "card payments: 1 checked, 1 succeeded" in result.output
    db.session.expire_all()
    assert db.session.get(Payment, payment_id).status == "succeeded"
    assert date(2026, 3, 1) == db.session.scalars(select(SplitEntry.day)).first()
