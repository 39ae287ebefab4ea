"""The citizen's payment history and receipts."""

from __future__ import annotations

from flask import abort, render_template
from flask_login import current_user, login_required

from app.payments import bp
from app.payments.services import get_user_payment, payments_of_user


@bp.get("/payments")
@login_required
def history() -> str:
    """Every payment the citizen made, newest first."""
    return render_template("payments/history.html", payments=payments_of_user(current_user.id))


@bp.get("/payments/<reference>")
@login_required
def receipt(reference: str) -> str:
    """One payment's receipt; another citizen's receipt number gives 404."""
    payment = get_user_payment(current_user.id, reference)
    if payment is None:
        abort(404)
    return render_template("payments/receipt.html", payment=payment)
