"""Refunds from the treasury's payment page (staff with the refund role)."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, url_for
from flask_login import current_user

from app.checkout.messages import unavailable_message
from app.i18n import gettext
from app.payments.refunds import RefundRefused, refund_payment
from app.payments.stripe_gateway import ProviderUnavailable
from app.templating import money
from app.treasury.access.guard import requires_role
from app.treasury.blueprint import bp
from app.treasury.history import services
from app.treasury.refunds.forms import RefundForm


def _refused_message(refused: RefundRefused, currency: str) -> str:
    available = money(refused.available_minor or 0, currency)
    if refused.code == "changed":
        return gettext(
            "The refundable amount changed while you were on this page (another refund was made): "
            "it is now %(amount)s. Nothing was refunded; check and try again.",
            amount=available,
        )
    if refused.code == "too_much":
        return gettext("At most %(amount)s can be refunded. Nothing was refunded.", amount=available)
    if refused.code == "not_refundable":
        return gettext("This payment cannot be refunded: it was not completed, or it is fully refunded.")
    return gettext("Enter an amount greater than zero.")


@bp.post("/<agency_code>/payments/<reference>/refund")
@requires_role("refund")
def refund(agency_code: str, reference: str):
    """Refund part or all of this agency's share, if the refundable amount is what the form saw."""
    found = services.agency_payment(g.agency, reference)
    if found is None:
        abort(404)
    currency = found.payment.currency
    form = RefundForm(currency=currency)
    page_url = url_for("treasury.payment", agency_code=agency_code, reference=found.payment.reference)
    if not form.validate_on_submit() or form.expected_available_minor is None:
        return render_template("treasury/payment.html", found=found, refund_form=form), 400
    try:
        done = refund_payment(
            payment_id=found.payment.id,
            agency=g.agency,
            amount_minor=form.amount_minor or 0,
            expected_available_minor=form.expected_available_minor,
            reason=form.reason.data,
            user_id=current_user.id,
        )
    except RefundRefused as refused:
        flash(_refused_message(refused, currency), "error")
        return redirect(page_url, 303)
    except ProviderUnavailable:
        flash(unavailable_message(), "error")
        return redirect(page_url, 303)
    if done.status == "succeeded":
        flash(
            gettext(
                "Refunded %(amount)s (%(reference)s).",
                amount=money(done.amount_minor, currency),
                reference=done.reference,
            ),
            "success",
        )
    else:
        flash(
            gettext(
                "The card processor refused the refund (%(code)s). Nothing was refunded.", code=done.failure_code or "?"
            ),
            "error",
        )
    return redirect(page_url, 303)


@bp.app_context_processor
def _refund_helpers() -> dict:
    from app.domain.money import format_money
    from app.payments.refunds import refundable_share, refunds_of
    from app.templating import current_language

    def new_refund_form(available_minor: int, currency: str) -> RefundForm:
        amount = format_money(available_minor, currency, current_language()).replace("€", "").strip()
        return RefundForm(formdata=None, currency=currency, amount=amount)

    return {"refundable_share": refundable_share, "agency_refunds": refunds_of, "new_refund_form": new_refund_form}
