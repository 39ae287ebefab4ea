"""The citizen's payment history and receipts."""

from __future__ import annotations

from datetime import datetime

from babel.dates import format_datetime
from flask import abort, render_template, request
from flask_login import current_user, login_required

from app.payments import bp
from app.payments.models import Payment
from app.payments.services import get_user_payment, payment_history, payment_timezone
from app.templating import current_language


@bp.app_template_filter("agency_datetime")
def agency_datetime(value: datetime, payment: Payment) -> str:
    """A payment's timestamp in its agency's time zone and the request's language."""
    return format_datetime(value, format="medium", tzinfo=payment_timezone(payment), locale=current_language())


@bp.get("/payments")
@login_required
def history() -> str:
    """Every payment the citizen made, newest first, optionally for one year or one agency."""
    year = request.args.get("year", type=int)
    agency_code = request.args.get("agency") or None
    return render_template(
        "payments/history.html",
        history=payment_history(current_user.id, year=year, agency_code=agency_code),
    )


@bp.get("/payments/<reference>")
@login_required
def receipt(reference: str) -> str:
    """One payment's receipt; another citizen's receipt number gives 404."""
    payment = get_user_payment(current_user.id, reference)
    if payment is None:
        abort(404)
    return render_template("payments/receipt.html", payment=payment)
