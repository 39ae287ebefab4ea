"""Stripe webhooks at /webhooks/stripe/<agency>: verified, processed once, safe to repeat."""

from __future__ import annotations

import logging

from flask import abort, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.agencies.models import Agency
from app.checkout.payment_flow import handle_stripe_event
from app.extensions import db
from app.payments.stripe_gateway import ProviderUnavailable, StripeGateway, agency_webhook_secret
from app.webhooks import bp

log = logging.getLogger("civicpay.webhooks")


@bp.post("/webhooks/stripe/<agency_code>")
def stripe_webhook(agency_code: str):
    """Verify the Stripe-Signature, then settle the payment the event is about (once per event id)."""
    agency = db.session.scalar(select(Agency).where(Agency.code == agency_code))
    # The agency's own endpoint secret (environment, else stored in its settings), else the platform's.
    secret = agency_webhook_secret(agency).value if agency is not None else None
    if agency is None or not secret:
        abort(404)
    try:
        event = StripeGateway.verify_event(request.get_data(), request.headers.get("Stripe-Signature"), secret)
    except ValueError:
        log.warning("stripe webhook for %s: signature refused", agency_code)
        return {"error": "invalid signature"}, 400
    try:
        outcome = handle_stripe_event(event, agency, StripeGateway.from_config())
    except ProviderUnavailable:
        db.session.rollback()
        # Stripe retries a failed delivery; our reconciler asks again anyway.
        return {"error": "provider unavailable, try again"}, 503
    except IntegrityError:
        db.session.rollback()  # the same event, delivered twice at once: the other call did it
        return {"received": True, "processed": False, "detail": "already processed"}
    log.info("stripe webhook %s %s for %s: %s", event.get("id"), event.get("type"), agency_code, outcome.detail)
    return {"received": True, "processed": outcome.processed, "detail": outcome.detail}
