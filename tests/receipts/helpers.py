"""Helpers of the receipt tests: payments made through the real path, verification tokens.

Payments here are made through the real path (quote → sandbox charge → confirmation), so the
receipts show what a citizen's would.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from datetime import UTC, datetime

from flask import Flask

from app.accounts.models import User
from app.checkout.payment_flow import PaymentDeclined, pay_quote
from app.checkout.services import quote_debts
from app.debts.models import Debt
from app.payments.models import Payment
from app.payments.providers import CardDetails, get_provider

NOW = datetime(2026, 3, 1, 10, tzinfo=UTC)
GOOD_CARD = CardDetails(number="4242424242424242", exp_month=12, exp_year=2030, cvc="123", holder="M P")
DECLINED_CARD = CardDetails(number="4000000000000002", exp_month=12, exp_year=2030, cvc="123", holder="M P")


def pay(user: User, debts: Sequence[Debt], now: datetime = NOW) -> Payment:
    """The user pays the debts by a card that succeeds, at ``now``."""
    quote = quote_debts(user.id, [f"d{debt.id}" for debt in debts], now)
    return pay_quote(user.id, quote.token, GOOD_CARD, get_provider("sandbox"), now)


def fail_to_pay(user: User, debts: Sequence[Debt], now: datetime = NOW) -> Payment:
    """The user tries to pay the debts by a card the bank declines."""
    quote = quote_debts(user.id, [f"d{debt.id}" for debt in debts], now)
    try:
        pay_quote(user.id, quote.token, DECLINED_CARD, get_provider("sandbox"), now)
    except PaymentDeclined as declined:
        return declined.payment
    raise AssertionError("the declined test card was charged")


def token_for(app: Flask, reference: str) -> str:
    """A receipt's verification token as specified, computed independently of the app's code."""
    digest = hmac.new(app.config["SECRET_KEY"].encode(), f"receipt:{reference}".encode(), hashlib.sha256)
    return f"{reference}." + base64.urlsafe_b64encode(digest.digest()).decode()[:32]
