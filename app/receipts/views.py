"""The owner's PDF receipt and the public verification page of a receipt."""

from __future__ import annotations

from flask import Response, abort, render_template
from flask_login import current_user, login_required
from markupsafe import Markup

from app.i18n import gettext
from app.payments.models import Payment
from app.receipts import bp
from app.receipts.services import owned_receipt, receipt_pdf, receipt_qr_svg, verification_url, verified_payment


@bp.app_template_global("receipt_verification_url")
def receipt_verification_url(payment: Payment) -> str:
    """The public verification address of a payment's receipt, for templates."""
    return verification_url(payment)


@bp.app_template_global("receipt_qr_code")
def receipt_qr_code(payment: Payment) -> Markup:
    """The QR code of a payment's verification page as accessible inline SVG, for templates."""
    return receipt_qr_svg(payment, gettext("QR code of the verification page of this receipt"))


@bp.get("/payments/<reference>/receipt.pdf")
@login_required
def pdf(reference: str) -> Response:
    """The PDF receipt of the citizen's own successful payment; 404 for anything else."""
    payment = owned_receipt(current_user.id, reference)
    if payment is None:
        abort(404)
    response = Response(receipt_pdf(payment), mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="receipt-{payment.reference}.pdf"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/receipts/verify/<token>")
def verify(token: str) -> Response:
    """Anyone holding a receipt's link sees what was paid, to whom and when, but not by whom."""
    payment = verified_payment(token)
    status = 200 if payment is not None else 404
    response = Response(render_template("receipts/verify.html", payment=payment), status)
    # The token is as good as the receipt: keep it out of search engines and Referer headers.
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
