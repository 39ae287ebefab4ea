"""Guest services: codes, the failure counter, and one payment when owner and guest pay at once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.checkout.payment_flow import pay_quote
from app.checkout.services import CheckoutError, quote_debts
from app.debts.models import Debt
from app.extensions import db
from app.guest.models import GuestLookupFailure
from app.guest.services import (
    LOOKUP_PAYABLE,
    LOOKUP_REFUSED,
    code_key,
    look_up_debt,
    normalise_code,
    normalise_receipt_number,
    pay_guest_quote,
)
from app.payments.models import Payment
from app.payments.providers import CardDetails, get_provider
from tests.factories import DebtFactory, DebtorFactory, UserFactory, link
from tests.guest.steps import MORNING, TAX_ID

GOOD_CARD = CardDetails(number="4242424242424242", exp_month=12, exp_year=2030, cvc="123", holder="G")
SANDBOX = get_provider("sandbox")


@pytest.mark.parametrize(
    ("typed", "normalised"),
    [
        ("rf18 5390 0754 7034", "RF18539007547034"),
        (" RF18-5390-0754-7034 ", "RF18539007547034"),
        ("RF00 NOT VALID", "RF00NOTVALID"),  # kept as typed (compact): it matches no debt
        ("ec-000123", "EC-000123"),  # an agency's own notice number
    ],
)
def test_codes_are_normalised(typed: str, normalised: str) -> None:
    assert normalise_code(typed) == normalised


def test_spellings_of_one_code_share_one_key() -> None:
    assert code_key("rf18 5390 0754 7034") == code_key("RF18539007547034") != code_key("RF18539007547035")


@pytest.mark.parametrize("typed", ["CP-7KQ2-M9XA-3F", "cp 7kq2 m9xa 3f", "CP7KQ2M9XA3F", " cp-7kq2m9xa-3f "])
def test_receipt_numbers_are_normalised(typed: str) -> None:
    assert normalise_receipt_number(typed) == "CP-7KQ2-M9XA-3F"


def test_failures_count_then_lock_then_start_again_after_the_lock(app_ctx: Flask) -> None:
    app_ctx.config.update(GUEST_LOCK_AFTER=3, GUEST_LOCK_MINUTES=30)
    try:
        debt = DebtFactory(debtor=DebtorFactory(tax_id=TAX_ID))
        code = debt.rf_reference
        for _ in range(3):
            assert look_up_debt(code, "0000", MORNING).status == LOOKUP_REFUSED
        row = db.session.scalars(select(GuestLookupFailure)).one()
        assert row.failures == 3 and row.locked_until == MORNING + timedelta(minutes=30)
        assert look_up_debt(code, "2606", MORNING + timedelta(minutes=10)).status == LOOKUP_REFUSED
        db.session.refresh(row)
        assert row.locked_until == MORNING + timedelta(minutes=30)  # a try while locked does not extend it

        after = MORNING + timedelta(minutes=31)
        assert look_up_debt(code, "0000", after).status == LOOKUP_REFUSED
        db.session.refresh(row)
        assert (row.failures, row.locked_until) == (1, None)  # counting starts again
        assert look_up_debt(code, "2606", after).status == LOOKUP_PAYABLE
        assert db.session.scalar(select(func.count()).select_from(GuestLookupFailure)) == 0
    finally:
        app_ctx.config.update(GUEST_LOCK_AFTER=5, GUEST_LOCK_MINUTES=30)


def test_a_guest_payment_belongs_to_no_account(app_ctx: Flask) -> None:
    debt = DebtFactory(debtor=DebtorFactory(tax_id=TAX_ID))
    lookup = look_up_debt(debt.rf_reference, "2606", MORNING)
    assert lookup.status == LOOKUP_PAYABLE and lookup.quote is not None
    assert lookup.quote.user_id is None
    payment = pay_guest_quote(lookup.quote.token, GOOD_CARD, SANDBOX, MORNING, payer_email=" Guest@Example.org ")
    assert (payment.user_id, payment.channel, payment.status) == (None, "guest", "succeeded")
    assert lookup.quote.payer_email == "guest@example.org"
    with pytest.raises(CheckoutError) as error:
        pay_guest_quote(lookup.quote.token, GOOD_CARD, SANDBOX, MORNING)
    assert error.value.code == "quote_used"


@pytest.mark.postgres_only
def test_owner_and_guest_paying_one_debt_at_once_only_one_succeeds(app: Flask, committed_db: None) -> None:
    """The owner in their account and a guest with the notice press Pay at the same instant."""
    with app.app_context():
        debtor, user = DebtorFactory(tax_id=TAX_ID), UserFactory()
        link(user, debtor)
        debt = DebtFactory(debtor=debtor)
        owner_token = quote_debts(user.id, [f"d{debt.id}"], MORNING).token
        lookup = look_up_debt(debt.rf_reference, "2606", MORNING)
        assert lookup.status == LOOKUP_PAYABLE and lookup.quote is not None
        guest_token = lookup.quote.token
        user_id, debt_id = user.id, debt.id
        db.session.commit()  # the quotes, for the two payers' own sessions (a request would commit them)
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def owner() -> None:
        with app.app_context():
            barrier.wait()
            try:
                pay_quote(user_id, owner_token, GOOD_CARD, SANDBOX, MORNING)
                outcomes["owner"] = "paid"
            except CheckoutError as error:
                outcomes["owner"] = error.code

    def guest() -> None:
        with app.app_context():
            barrier.wait()
            try:
                pay_guest_quote(guest_token, GOOD_CARD, SANDBOX, MORNING)
                outcomes["guest"] = "paid"
            except CheckoutError as error:
                outcomes["guest"] = error.code

    threads = [threading.Thread(target=owner), threading.Thread(target=guest)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes.values()) == ["paid", "taken"], outcomes
    with app.app_context():
        stored = db.session.get(Debt, debt_id)
        assert (stored.status, stored.paid_minor, stored.pending_payment_id) == ("paid", 12000, None)
        succeeded = db.session.scalars(select(Payment).where(Payment.status == "succeeded")).all()
        assert len(succeeded) == 1
        assert succeeded[0].channel == ("account" if outcomes["owner"] == "paid" else "guest")
