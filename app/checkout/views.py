"""Selection → quote (review) → card → payment."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app.checkout import bp
from app.checkout.card_steps import card_step_body
from app.checkout.forms import CardForm, SelectionForm
from app.checkout.messages import checkout_message, decline_message, unavailable_message
from app.checkout.payment_flow import (
    CardStep,
    PaymentDeclined,
    PaymentInProgress,
    authorize_stripe_payment,
    begin_stripe_payment,
    find_payment_for_quote,
    pay_quote,
    settle_stripe_payment,
)
from app.checkout.services import CheckoutError, get_user_quote, quote_debts
from app.db import utcnow
from app.i18n import gettext
from app.payments.models import Payment
from app.payments.providers import SANDBOX_CARDS, CardDetails, get_provider
from app.payments.stripe_gateway import ProviderUnavailable, StripeGateway


@bp.post("/checkout")
@login_required
def select():
    """Turn the ticked debts into a quote priced by the server."""
    form = SelectionForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        quote = quote_debts(current_user.id, form.item.data or [], utcnow())
    except CheckoutError as error:
        flash(checkout_message(error), "error")
        return redirect(url_for("dashboard.show"), 303)
    return redirect(url_for("checkout.review", token=quote.token), 303)


def _review_page(token: str, form: CardForm, status: int = 200, error: str | None = None):
    quote = get_user_quote(current_user.id, token)
    if quote is None:
        abort(404)
    expired = quote.status == "open" and quote.is_expired(utcnow())
    return (
        render_template(
            "checkout/review.html",
            quote=quote,
            form=form,
            expired=expired,
            error=error,
            test_cards=SANDBOX_CARDS,
            stripe=current_app.config["CARD_PROVIDER"] == "stripe",
        ),
        status,
    )


@bp.get("/checkout/<token>")
@login_required
def review(token: str):
    """The server-computed lines and total, and the card form."""
    return _review_page(token, CardForm())


@bp.post("/checkout/<token>/pay")
@login_required
def pay(token: str):
    """Charge the quote's total (never an amount from the form) to the card."""
    if current_app.config["CARD_PROVIDER"] != "sandbox":
        abort(404)  # card numbers reach this server only in test mode
    form = CardForm()
    if not form.validate_on_submit():
        return _review_page(token, form, 400)
    month, year = form.expiry_month_year
    card = CardDetails(
        number=form.card_number, exp_month=month, exp_year=year, cvc=form.cvc.data, holder=form.holder.data
    )
    try:
        payment = pay_quote(current_user.id, token, card, get_provider("sandbox"), utcnow())
    except CheckoutError as error:
        if error.code == "unknown_quote":
            abort(404)
        return _review_page(token, CardForm(formdata=None), 409, checkout_message(error))
    except PaymentDeclined as declined:
        return _review_page(token, CardForm(formdata=None), 402, decline_message(declined.payment.failure_reason))
    flash(gettext("Payment successful. Thank you! Your receipt is below."), "success")
    return redirect(url_for("payments.receipt", reference=payment.reference), 303)


# -- Stripe: card entry in the browser (Stripe.js), every amount from the server -------------------


def _stripe_step_json(step: CardStep, token: str) -> tuple[dict, int]:
    """The browser's next move after a step of the citizen's Stripe payment."""
    receipt = url_for("payments.receipt", reference=step.payment.reference)
    return card_step_body(step, receipt_url=receipt, pending_url=url_for("payments.history")), 200


def _own_pending_payment(token: str) -> Payment:
    """The current user's Stripe payment named in the request, for this quote; 404 otherwise."""
    quote = get_user_quote(current_user.id, token)
    reference = (request.get_json(silent=True) or {}).get("payment") or request.form.get("payment")
    if quote is None or not reference:
        abort(404)
    payment = find_payment_for_quote(quote, reference, current_user.id)
    if payment is None:
        abort(404)
    return payment


@bp.post("/checkout/<token>/card/start")
@login_required
def card_start(token: str):
    """Claim the debts and open a SetupIntent; the browser confirms it with the card."""
    quote = get_user_quote(current_user.id, token)
    if quote is None:
        abort(404)
    try:
        start = begin_stripe_payment(
            quote, user_id=current_user.id, channel="account", gateway=StripeGateway.from_config(), now=utcnow()
        )
    except CheckoutError as error:
        return {"status": "refused", "message": checkout_message(error)}, 409
    except PaymentInProgress as busy:
        return {"status": "in_progress", "payment": busy.payment.reference}, 409
    except ProviderUnavailable:
        return {"status": "unavailable", "message": unavailable_message()}, 503
    return {"status": "ready", "payment": start.payment.reference, "client_secret": start.setup_client_secret}


@bp.post("/checkout/<token>/card/charge")
@login_required
def card_charge(token: str):
    """The card is set up: authorise one charge per agency and capture them all, or none."""
    payment = _own_pending_payment(token)
    try:
        step = authorize_stripe_payment(payment.id, StripeGateway.from_config())
    except ProviderUnavailable:
        return {"status": "unavailable", "message": unavailable_message()}, 503
    return _stripe_step_json(step, token)


@bp.post("/checkout/<token>/card/finish")
@login_required
def card_finish(token: str):
    """After 3-D Secure in the browser: capture everything authorised, or report the failure."""
    payment = _own_pending_payment(token)
    try:
        step = settle_stripe_payment(payment.id, StripeGateway.from_config())
    except ProviderUnavailable:
        return {"status": "unavailable", "message": unavailable_message()}, 503
    return _stripe_step_json(step, token)
