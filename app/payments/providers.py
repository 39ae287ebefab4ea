"""Card providers behind one small interface; the sandbox is a working test-mode provider."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from app.extensions import db
from app.payments.models import SandboxCharge

#: Test cards the sandbox knows, as documented on the card page and in the README.
SANDBOX_CARDS: dict[str, str | None] = {
    "4242424242424242": None,  # Visa, succeeds
    "5555555555554444": None,  # Mastercard, succeeds
    "4000000000000002": "card_declined",
    "4000000000009995": "insufficient_funds",
    "4000000000000069": "expired_card",
}


@dataclass(frozen=True, repr=False)
class CardDetails:
    """Card data as typed by the payer; never stored, never logged (repr hides it)."""

    number: str
    exp_month: int
    exp_year: int
    cvc: str
    holder: str

    def __repr__(self) -> str:
        return f"CardDetails(last4={self.number[-4:]!r})"


@dataclass(frozen=True)
class ChargeResult:
    """What the provider answered to a charge."""

    succeeded: bool
    provider_reference: str
    card_brand: str | None
    card_last4: str | None
    #: Stripe-style decline code ("card_declined", "insufficient_funds", ...) when not succeeded.
    decline_code: str | None = None


class CardProvider(Protocol):
    """Charges a card once per idempotency key, and says later what became of a key's charge."""

    name: str

    def charge(self, *, amount_minor: int, currency: str, card: CardDetails, idempotency_key: str) -> ChargeResult:
        """Charge ``amount_minor`` (minor units) of ``currency``; the same key never charges twice."""
        ...

    def find_charge(self, idempotency_key: str) -> ChargeResult | None:
        """The answer given to the charge made with this key, or None if none was made (the reconciler asks)."""
        ...


def luhn_valid(number: str) -> bool:
    """Whether a card number passes the Luhn check (catches most typing mistakes)."""
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char)
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def card_brand(number: str) -> str:
    """The card scheme by its leading digits, for the receipt."""
    if number.startswith("4"):
        return "visa"
    if number[:2] in {"51", "52", "53", "54", "55"} or "2221" <= number[:4] <= "2720":
        return "mastercard"
    if number[:2] in {"34", "37"}:
        return "amex"
    return "card"


class SandboxProvider:
    """Test mode: takes the documented test cards only and moves no money.

    Like a real provider it keeps its own record of every charge (``SandboxCharge``), so a
    repeated key returns the first answer and the reconciler can ask what became of a payment
    whose process stopped between the charge and our record of it. The record is flushed here
    and committed by the caller before it acts on the answer (``complete_payment``).
    """

    name = "sandbox"

    def charge(self, *, amount_minor: int, currency: str, card: CardDetails, idempotency_key: str) -> ChargeResult:
        """Succeed or decline by the test card's number; a repeated key returns the first answer."""
        earlier = self.find_charge(idempotency_key)
        if earlier is not None:
            return earlier
        decline = SANDBOX_CARDS.get(card.number, "test_mode_live_card")
        record = SandboxCharge(
            idempotency_key=idempotency_key,
            provider_reference="sbx_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:24],
            succeeded=decline is None,
            decline_code=decline,
            amount_minor=amount_minor,
            currency=currency,
            card_brand=card_brand(card.number),
            card_last4=card.number[-4:],
        )
        db.session.add(record)
        db.session.flush()
        return _result(record)

    def find_charge(self, idempotency_key: str) -> ChargeResult | None:
        """The sandbox's answer to the charge made with this key, or None."""
        record = db.session.get(SandboxCharge, idempotency_key)
        return None if record is None else _result(record)


def _result(record: SandboxCharge) -> ChargeResult:
    return ChargeResult(
        succeeded=record.succeeded,
        provider_reference=record.provider_reference,
        card_brand=record.card_brand,
        card_last4=record.card_last4,
        decline_code=record.decline_code,
    )


_PROVIDERS: dict[str, CardProvider] = {"sandbox": SandboxProvider()}


def get_provider(name: str) -> CardProvider:
    """The configured provider by name."""
    try:
        return _PROVIDERS[name]
    except KeyError:
        raise LookupError(f"No card provider called {name!r} is configured.") from None
