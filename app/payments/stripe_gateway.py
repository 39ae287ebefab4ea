"""The few Stripe calls Civic Pay makes, through the official SDK, as plain values.

Card data never reaches this server: the browser gives it to Stripe.js, which confirms a
SetupIntent; the server then charges the saved card once per agency. Everything here is a thin
wrapper so the services read as the payment flow, and so tests run against localstripe.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import stripe
from flask import current_app

from app.encryption import DecryptionError, decrypt_secret

log = logging.getLogger("civicpay.payments")


class ProviderUnavailable(Exception):
    """Stripe could not be reached or answered with a server error; nothing is known to have changed."""


@dataclass(frozen=True)
class IntentState:
    """What Stripe says about one PaymentIntent."""

    id: str
    #: Stripe's status: requires_payment_method, requires_confirmation, requires_action,
    #: processing, requires_capture, succeeded or canceled.
    status: str
    amount: int
    currency: str
    client_secret: str | None
    metadata: dict[str, str] = field(default_factory=dict)
    #: The code of the last failure (card_declined, insufficient_funds, authentication_failed ...).
    failure_code: str | None = None


@dataclass(frozen=True)
class SetupState:
    """What Stripe says about the SetupIntent that collected the card."""

    id: str
    status: str
    payment_method: str | None
    client_secret: str | None


def _plain(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _failure_code(intent: dict[str, Any]) -> str | None:
    error = intent.get("last_payment_error") or {}
    code = error.get("decline_code") or error.get("code")
    if code == "payment_intent_authentication_failure":
        return "authentication_failed"
    return code


def intent_state(intent: Any) -> IntentState:
    """An IntentState from a PaymentIntent object or dict."""
    data = _plain(intent)
    return IntentState(
        id=data["id"],
        status=data["status"],
        amount=int(data["amount"]),
        currency=str(data["currency"]).upper(),
        client_secret=data.get("client_secret"),
        metadata=dict(data.get("metadata") or {}),
        failure_code=_failure_code(data),
    )


def payment_intent_params(
    *,
    amount_minor: int,
    currency: str,
    customer: str,
    payment_method: str,
    metadata: dict[str, str],
    destination: str | None,
) -> dict[str, Any]:
    """The PaymentIntent to create for one agency's share: authorised now, captured when all are.

    With a connected account (``destination``) the charge settles to the agency's own account
    (a destination charge made on its behalf); without one it stays on the platform account.
    """
    params: dict[str, Any] = {
        "amount": amount_minor,
        "currency": currency.lower(),
        "customer": customer,
        "payment_method": payment_method,
        "payment_method_types": ["card"],
        "capture_method": "manual",
        "metadata": metadata,
    }
    if destination:
        params["on_behalf_of"] = destination
        params["transfer_data"] = {"destination": destination}
    return params


class StripeGateway:
    """Stripe's API for one platform account."""

    name = "stripe"

    def __init__(self, secret_key: str, api_base: str | None = None) -> None:
        base = {"api": api_base} if api_base else None
        self.client = stripe.StripeClient(secret_key, base_addresses=base, max_network_retries=2)

    @classmethod
    def from_config(cls) -> StripeGateway:
        """The gateway configured for this app (STRIPE_SECRET_KEY, STRIPE_API_BASE)."""
        key = current_app.config.get("STRIPE_SECRET_KEY")
        if not key:
            raise RuntimeError("CARD_PROVIDER is 'stripe' but STRIPE_SECRET_KEY is not set.")
        return cls(key, current_app.config.get("STRIPE_API_BASE"))

    # -- calls; every StripeError that is not about the card becomes ProviderUnavailable ----------

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except stripe.CardError:
            raise
        except stripe.InvalidRequestError:
            raise
        except stripe.StripeError as error:
            raise ProviderUnavailable(str(error.user_message or error.__class__.__name__)) from error

    def create_customer(self, payment_reference: str) -> str:
        """A customer to hold the card for this payment's charges."""
        customer = self._call(
            self.client.v1.customers.create,
            params={"metadata": {"payment": payment_reference}},
            options={"idempotency_key": f"{payment_reference}:customer"},
        )
        return customer.id

    def create_setup_intent(self, customer: str, payment_reference: str, attempt: str = "first") -> SetupState:
        """A SetupIntent the browser confirms with the card (Stripe.js confirmCardSetup)."""
        intent = self._call(
            self.client.v1.setup_intents.create,
            params={
                "customer": customer,
                "usage": "on_session",
                "payment_method_types": ["card"],
                "metadata": {"payment": payment_reference},
            },
            options={"idempotency_key": f"{payment_reference}:setup:{attempt}"},
        )
        return self._setup_state(intent)

    def retrieve_setup_intent(self, setup_id: str) -> SetupState:
        """The SetupIntent as Stripe has it now."""
        return self._setup_state(self._call(self.client.v1.setup_intents.retrieve, setup_id))

    @staticmethod
    def _setup_state(intent: Any) -> SetupState:
        data = _plain(intent)
        method = data.get("payment_method")
        if isinstance(method, dict):
            method = method.get("id")
        return SetupState(
            id=data["id"], status=data["status"], payment_method=method, client_secret=data.get("client_secret")
        )

    def attach_card(self, payment_method: str, customer: str) -> tuple[str | None, str | None]:
        """Attach the card to the customer (so it can pay several charges); its brand and last four."""
        try:
            method = self._call(self.client.v1.payment_methods.attach, payment_method, params={"customer": customer})
        except stripe.InvalidRequestError:
            # Already attached (real Stripe attaches on SetupIntent confirmation): read it instead.
            method = self._call(self.client.v1.payment_methods.retrieve, payment_method)
        card = _plain(method).get("card") or {}
        return card.get("brand"), card.get("last4")

    def create_payment_intent(self, params: dict[str, Any], idempotency_key: str) -> IntentState:
        """Create (not yet confirm) a PaymentIntent; Stripe keeps it even if we crash right after."""
        intent = self._call(
            self.client.v1.payment_intents.create, params=params, options={"idempotency_key": idempotency_key}
        )
        return intent_state(intent)

    def confirm_payment_intent(self, intent_id: str) -> IntentState:
        """Confirm a created PaymentIntent; a declined card comes back as a state, not an error."""
        try:
            return intent_state(self._call(self.client.v1.payment_intents.confirm, intent_id))
        except stripe.CardError as error:
            state = self.retrieve_payment_intent(intent_id)
            code = error.json_body.get("error", {}) if error.json_body else {}
            failure = code.get("decline_code") or code.get("code") or error.code or "card_declined"
            return IntentState(
                id=state.id,
                status=state.status,
                amount=state.amount,
                currency=state.currency,
                client_secret=state.client_secret,
                metadata=state.metadata,
                failure_code=failure,
            )

    def retrieve_payment_intent(self, intent_id: str) -> IntentState:
        """The PaymentIntent as Stripe has it now."""
        return intent_state(self._call(self.client.v1.payment_intents.retrieve, intent_id))

    def capture_payment_intent(self, intent_id: str, idempotency_key: str) -> IntentState:
        """Take the authorised money."""
        intent = self._call(
            self.client.v1.payment_intents.capture, intent_id, options={"idempotency_key": idempotency_key}
        )
        return intent_state(intent)

    def cancel_payment_intent(self, intent_id: str) -> IntentState:
        """Release an authorisation (or abandon an unconfirmed intent)."""
        return intent_state(self._call(self.client.v1.payment_intents.cancel, intent_id))

    def refund(self, intent_id: str, amount_minor: int, *, idempotency_key: str, reverse_transfer: bool) -> str:
        """Give back ``amount_minor`` of a captured PaymentIntent; the refund's id. ValueError if refused."""
        params: dict[str, Any] = {"payment_intent": intent_id, "amount": amount_minor}
        if reverse_transfer:
            params["reverse_transfer"] = True  # take it back from the agency's connected account
        try:
            refund = self._call(
                self.client.v1.refunds.create, params=params, options={"idempotency_key": idempotency_key}
            )
        except (stripe.InvalidRequestError, stripe.CardError) as error:
            raise ValueError(error.code or "refused") from None
        return refund.id

    @staticmethod
    def verify_event(payload: bytes, signature: str | None, secret: str) -> dict[str, Any]:
        """The event of a webhook call whose Stripe-Signature matches; ValueError otherwise."""
        try:
            event = stripe.Webhook.construct_event(payload, signature or "", secret)
        except stripe.SignatureVerificationError as error:
            raise ValueError("bad signature") from error
        return _plain(event)


# -- an agency's own credentials ---------------------------------------------------------------------

#: Where an agency's credential comes from: the server's environment (named for the agency), the
#: treasury's settings (stored encrypted), the platform's own setting, or nowhere.
CredentialSource = Literal["environment", "stored", "platform", "unreadable", "none"]


@dataclass(frozen=True)
class AgencyCredential:
    """One Stripe credential of an agency as resolved now; ``value`` is a secret: never log or show it."""

    value: str | None = field(repr=False)
    source: CredentialSource
    #: The setting that overrides the stored value for this agency, e.g. STRIPE_WEBHOOK_SECRET_EASTCOAST.
    environment_name: str


def agency_setting_name(base: str, agency_code: str) -> str:
    """The per-agency setting name: ``base`` and the agency's code in capitals, "-" and the like as "_"."""
    return f"{base}_{re.sub(r'[^A-Z0-9]', '_', agency_code.upper())}"


def _agency_credential(agency: Any, base: str, stored_column: str, platform_value: str | None) -> AgencyCredential:
    """Resolve in order: the agency's setting in the environment (or instance config), the value
    stored in the treasury (decrypted), the platform's value."""
    name = agency_setting_name(base, agency.code)
    from_environment = current_app.config.get(name) or os.environ.get(name)
    if from_environment:
        return AgencyCredential(from_environment, "environment", name)
    stored = getattr(agency, stored_column)
    if stored:
        try:
            return AgencyCredential(decrypt_secret(stored), "stored", name)
        except DecryptionError:
            # Fail closed: never fall back to the platform's secret for an agency that set its own.
            log.error("The stored %s of agency %s cannot be decrypted; enter it again.", base, agency.code)
            return AgencyCredential(None, "unreadable", name)
    if platform_value:
        return AgencyCredential(platform_value, "platform", name)
    return AgencyCredential(None, "none", name)


def agency_webhook_secret(agency: Any) -> AgencyCredential:
    """The secret that signs the webhooks of the agency's endpoint (/webhooks/stripe/<code>)."""
    return _agency_credential(
        agency,
        "STRIPE_WEBHOOK_SECRET",
        "stripe_webhook_secret_encrypted",
        current_app.config.get("STRIPE_WEBHOOK_SECRET"),
    )


def agency_secret_key(agency: Any) -> AgencyCredential:
    """The agency's own Stripe secret key, else the platform's (STRIPE_SECRET_KEY)."""
    return _agency_credential(
        agency, "STRIPE_SECRET_KEY", "stripe_secret_key_encrypted", current_app.config.get("STRIPE_SECRET_KEY")
    )
