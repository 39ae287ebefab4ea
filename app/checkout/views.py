"""Selection → quote (review) → card → payment."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user, login_required

from app.checkout import bp
from app.checkout.forms import CardForm, SelectionForm
from app.checkout.messages import checkout_message, decline_message
from app.checkout.services import CheckoutError, get_user_quote, quote_debts
from app.db import utcnow
from app.i18n import gettext
from app.payments.providers import SANDBOX_CARDS, CardDetails, get_provider
from app.payments.services import PaymentDeclined, pay_quote


@bp.post("/checkout")
@login_required
def select():  # noqa: ANN201 - a redirect
    """Turn the ticked debts into a quote priced by the server."""
    form = SelectionForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        quote = quote_debts(current_user.id, form.item.data or [], utcnow())
    except CheckoutError as error:
        flash(checkout_message(error), "error")
        return redirect(url_for("debts.dashboard"), 303)
    return redirect(url_for("checkout.review", token=quote.token), 303)


def _review_page(token: str, form: CardForm, status: int = 200, error: str | None = None):  # noqa: ANN202
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
        ),
        status,
    )


@bp.get("/checkout/<token>")
@login_required
def review(token: str):  # noqa: ANN201
    """The server-computed lines and total, and the card form."""
    return _review_page(token, CardForm())


@bp.post("/checkout/<token>/pay")
@login_required
def pay(token: str):  # noqa: ANN201 - a page or a redirect
    """Charge the quote's total (never an amount from the form) to the card."""
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
