"""What the card page's script is told after each step of a Stripe payment (shared by the
account checkout and the guest pages)."""

from __future__ import annotations

from typing import Any

from flask import flash

from app.checkout.messages import decline_message
from app.checkout.payment_flow import CardStep
from app.i18n import gettext


def card_step_body(step: CardStep, *, receipt_url: str, pending_url: str) -> dict[str, Any]:
    """JSON for the browser: where to go next, what to authenticate, or what went wrong."""
    body: dict[str, Any] = {"status": step.status, "payment": step.payment.reference}
    if step.status == "succeeded":
        flash(gettext("Payment successful. Thank you! Your receipt is below."), "success")
        body["redirect"] = receipt_url
    elif step.status == "failed":
        body["message"] = decline_message(step.failure_code)
    elif step.status == "requires_action":
        body["action_secrets"] = step.action_secrets
    else:
        body["message"] = gettext(
            "Your bank has not confirmed the payment yet. We will finish it as soon as it does; "
            "you can see it under My payments."
        )
        body["redirect"] = pending_url
    return body
