"""Pay without an account: code and check detail → review and card → receipt (three screens)."""

from __future__ import annotations

from flask import (
    Response,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user

from app.checkout.card_steps import card_step_body
from app.checkout.messages import checkout_message, decline_message, unavailable_message
from app.checkout.payment_flow import (
    CardStep,
    PaymentDeclined,
    PaymentInProgress,
    authorize_stripe_payment,
    settle_stripe_payment,
)
from app.checkout.services import CheckoutError
from app.db import utcnow
from app.domain.references import InvalidReference, format_rf
from app.extensions import limiter
from app.guest import bp
from app.guest.forms import FindReceiptForm, GuestCardForm, LookupForm
from app.guest.services import (
    LOOKUP_PAYABLE,
    LOOKUP_REFUSED,
    begin_guest_card_payment,
    code_key,
    find_guest_receipt,
    guest_card_payment,
    guest_quote,
    guest_quote_email,
    guest_receipt,
    guest_receipt_pdf,
    look_up_debt,
    normalise_code,
    normalise_receipt_number,
    paid_reference,
    pay_guest_quote,
    send_receipt_copy,
)
from app.guest.session import QUOTES_KEY, RECEIPTS_KEY, private_page, remember
from app.i18n import gettext
from app.payments.providers import SANDBOX_CARDS, CardDetails, get_provider
from app.payments.stripe_gateway import ProviderUnavailable, StripeGateway
from app.templating import current_language


# Limits are read from the configuration at request time, so tests (and operators) can change them.
def _lookup_limit() -> str:
    return current_app.config["GUEST_LOOKUP_RATE_LIMIT"]


def _code_limit() -> str:
    return current_app.config["GUEST_LOOKUP_CODE_RATE_LIMIT"]


def _pay_limit() -> str:
    return current_app.config["GUEST_PAY_RATE_LIMIT"]


def _receipt_limit() -> str:
    return current_app.config["GUEST_RECEIPT_RATE_LIMIT"]


def _submitted_code() -> str:
    """Rate-limit key of the payment code a form names, however it is spelled, from any address."""
    return "guest-code:" + code_key(request.form.get("code"))


def _submitted_receipt() -> str:
    """Rate-limit key of the receipt number a form names."""
    return "guest-receipt:" + normalise_receipt_number(request.form.get("reference"))


def _refused_message() -> str:
    return gettext(
        "We could not find a debt with this payment code and check detail. Check both against your "
        "notice and try again. After several wrong tries the code is locked for a while."
    )


# -- screen 1: code and check detail ---------------------------------------------------------------


@bp.route("/pay", methods=["GET", "POST"])
@limiter.limit(_lookup_limit, methods=["POST"])
@limiter.limit(_code_limit, methods=["POST"], key_func=_submitted_code)
def start():
    """Ask for the payment code and check detail; a match goes to the review, anything else gets one answer."""
    form = LookupForm()
    if not form.validate_on_submit():
        return render_template("guest/start.html", form=form), 400 if form.errors else 200
    lookup = look_up_debt(form.code.data, form.factor.data, utcnow())
    if lookup.status == LOOKUP_REFUSED:
        return render_template("guest/start.html", form=form, error=_refused_message()), 400
    if lookup.status == LOOKUP_PAYABLE:
        assert lookup.quote is not None
        remember(QUOTES_KEY, lookup.quote.token)
        return redirect(url_for("guest.review", token=lookup.quote.token), 303)
    return private_page(make_response(render_template("guest/unavailable.html", lookup=lookup)))


@bp.get("/pay/<code>")
def start_with_code(code: str) -> str:
    """The same form with the code filled in, for the QR code on a paper notice."""
    normalised = normalise_code(code)
    try:
        shown = format_rf(normalised)
    except InvalidReference:
        shown = normalised
    form = LookupForm(formdata=None, code=shown)
    return render_template("guest/start.html", form=form)


# -- screen 2: review and card ---------------------------------------------------------------------


def _user_id() -> int | None:
    """The signed-in citizen's id: their own orders of account-only items are theirs to pay."""
    return current_user.id if current_user.is_authenticated else None


def _session_quote(token: str):
    """The guest quote only if this browser session looked it up; 404 otherwise."""
    if token not in session.get(QUOTES_KEY, []):
        abort(404)
    quote = guest_quote(token, _user_id())
    if quote is None:
        abort(404)
    return quote


def _receipt_url(payment) -> str:
    """Where a paid quote's receipt is: the account's receipt page, or the guest's."""
    if payment.user_id is not None:
        return url_for("payments.receipt", reference=payment.reference)
    return url_for("guest.receipt", reference=payment.reference)


def _review_page(token: str, form: GuestCardForm, status: int = 200, error: str | None = None) -> Response:
    quote = _session_quote(token)
    paid = paid_reference(quote) if quote.status == "used" else None
    receipt_reference = paid if paid in session.get(RECEIPTS_KEY, []) else None
    page = render_template(
        "guest/review.html",
        quote=quote,
        line=quote.lines[0],
        form=form,
        expired=quote.status == "open" and quote.is_expired(utcnow()),
        error=error,
        test_cards=SANDBOX_CARDS,
        receipt_reference=receipt_reference,
        stripe=current_app.config["CARD_PROVIDER"] == "stripe",
    )
    return private_page(make_response(page, status))


@bp.get("/pay/review/<token>")
def review(token: str) -> Response:
    """What is being paid (agency, kind, description, amount, today's surcharge, total) and the card form."""
    return _review_page(token, GuestCardForm())


@bp.post("/pay/review/<token>")
@limiter.limit(_pay_limit)
def pay(token: str) -> Response:
    """Charge the quote's total (never an amount from the form) to the card."""
    _session_quote(token)  # another session's or a made-up token: 404 before anything else
    if current_app.config["CARD_PROVIDER"] != "sandbox":
        abort(404)  # card numbers reach this server only in test mode
    form = GuestCardForm()
    if not form.validate_on_submit():
        return _review_page(token, form, 400)
    month, year = form.expiry_month_year
    card = CardDetails(
        number=form.card_number, exp_month=month, exp_year=year, cvc=form.cvc.data, holder=form.holder.data
    )
    email = form.email.data or None
    try:
        payment = pay_guest_quote(token, card, get_provider("sandbox"), utcnow(), payer_email=email, user_id=_user_id())
    except CheckoutError as error:
        if error.code == "unknown_quote":
            abort(404)
        return _review_page(token, GuestCardForm(formdata=None), 409, checkout_message(error))
    except PaymentDeclined as declined:
        return _review_page(token, GuestCardForm(formdata=None), 402, decline_message(declined.payment.failure_reason))
    remember(RECEIPTS_KEY, payment.reference)
    if email and payment.user_id is None:  # an account's receipt goes to its own address anyway
        receipt = guest_receipt(payment.reference)
        if receipt is not None and send_receipt_copy(receipt, email, current_language()):
            flash(
                gettext(
                    "Payment successful. Thank you! A copy of the receipt is on its way to %(email)s.", email=email
                ),
                "success",
            )
        else:
            flash(
                gettext(
                    "Payment successful. Thank you! We could not send the e-mail copy; download the receipt below."
                ),
                "success",
            )
    else:
        flash(gettext("Payment successful. Thank you! Your receipt is below."), "success")
    return redirect(_receipt_url(payment), 303)


# -- screen 2 with Stripe: the card goes from the browser to Stripe (Stripe.js) -----------------------


def _guest_step(step: CardStep) -> dict:
    if step.status == "succeeded":
        remember(RECEIPTS_KEY, step.payment.reference)
        email = step.payment.quote_id and guest_quote_email(step.payment)
        if email:
            receipt = guest_receipt(step.payment.reference)
            if receipt is not None:
                send_receipt_copy(receipt, email, current_language())
    receipt_url = _receipt_url(step.payment)
    return card_step_body(step, receipt_url=receipt_url, pending_url=url_for("guest.find_receipt"))


def _own_guest_payment(token: str):
    _session_quote(token)
    reference = (request.get_json(silent=True) or {}).get("payment")
    payment = guest_card_payment(token, reference, _user_id()) if reference else None
    if payment is None:
        abort(404)
    return payment


@bp.post("/pay/review/<token>/card/start")
@limiter.limit(_pay_limit)
def card_start(token: str):
    """Claim the debt for this guest and open a SetupIntent for the card."""
    _session_quote(token)
    email = (request.get_json(silent=True) or {}).get("email") or None
    try:
        start = begin_guest_card_payment(
            token, StripeGateway.from_config(), utcnow(), payer_email=email, user_id=_user_id()
        )
    except CheckoutError as error:
        if error.code == "bad_email":
            return {"status": "refused", "message": gettext("Enter a valid e-mail address, or leave it empty.")}, 400
        return {"status": "refused", "message": checkout_message(error)}, 409
    except PaymentInProgress as busy:
        return {"status": "in_progress", "payment": busy.payment.reference}, 409
    except ProviderUnavailable:
        return {"status": "unavailable", "message": unavailable_message()}, 503
    return {"status": "ready", "payment": start.payment.reference, "client_secret": start.setup_client_secret}


@bp.post("/pay/review/<token>/card/charge")
def card_charge(token: str):
    """The card is set up: charge the server-computed total."""
    payment = _own_guest_payment(token)
    try:
        return _guest_step(authorize_stripe_payment(payment.id, StripeGateway.from_config()))
    except ProviderUnavailable:
        return {"status": "unavailable", "message": unavailable_message()}, 503


@bp.post("/pay/review/<token>/card/finish")
def card_finish(token: str):
    """After 3-D Secure in the browser: finish the payment or say why it failed."""
    payment = _own_guest_payment(token)
    try:
        return _guest_step(settle_stripe_payment(payment.id, StripeGateway.from_config()))
    except ProviderUnavailable:
        return {"status": "unavailable", "message": unavailable_message()}, 503


# -- screen 3: the receipt -------------------------------------------------------------------------


def _session_receipt(reference: str):
    """The guest receipt only if this browser session paid it or found it; 404 otherwise."""
    if reference not in session.get(RECEIPTS_KEY, []):
        abort(404)
    payment = guest_receipt(reference)
    if payment is None:
        abort(404)
    return payment


@bp.get("/pay/receipt/<reference>")
def receipt(reference: str) -> Response:
    """The guest's receipt: what was paid, to whom, when; a PDF and the verification QR code."""
    payment = _session_receipt(reference)
    return private_page(make_response(render_template("guest/receipt.html", payment=payment)))


@bp.get("/pay/receipt/<reference>/receipt.pdf")
def receipt_pdf(reference: str) -> Response:
    """The guest's PDF receipt, in the page's language."""
    payment = _session_receipt(reference)
    response = Response(guest_receipt_pdf(payment, current_language()), mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="receipt-{payment.reference}.pdf"'
    return private_page(response)


@bp.route("/pay/receipt", methods=["GET", "POST"])
@limiter.limit(_receipt_limit, methods=["POST"])
@limiter.limit(_code_limit, methods=["POST"], key_func=_submitted_receipt)
def find_receipt():
    """Find a receipt later by its number plus the e-mail given or the card's last four digits."""
    form = FindReceiptForm()
    if not form.validate_on_submit():
        return render_template("guest/find_receipt.html", form=form), 400 if form.errors else 200
    payment = find_guest_receipt(form.reference.data, form.detail.data)
    if payment is None:
        error = gettext(
            "We could not find a receipt with this number and e-mail address or card digits. Check both and try again."
        )
        return render_template("guest/find_receipt.html", form=form, error=error), 400
    remember(RECEIPTS_KEY, payment.reference)
    return redirect(url_for("guest.receipt", reference=payment.reference), 303)
