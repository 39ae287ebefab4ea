"""Receipt documents and their verification tokens.

A verification token is derived, never stored: ``<reference>.<mac>``, where the MAC is an
HMAC-SHA256 of the reference under the portal's SECRET_KEY. Whoever holds a receipt can show it
to anyone; nobody can guess the token of a receipt they have not seen. Changing SECRET_KEY
invalidates the QR codes of every receipt already printed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import segno
from flask import current_app, url_for
from flask_babel import force_locale
from markupsafe import Markup, escape
from sqlalchemy import Select, select
from sqlalchemy.orm import selectinload

from app.accounts.models import User
from app.agencies.models import Agency
from app.domain.money import format_money
from app.extensions import db
from app.i18n import gettext
from app.mail import Attachment, send_mail
from app.payments.models import Payment, PaymentLine, Refund
from app.receipts.pdf import render_receipt_pdf

#: Characters of the base64url MAC kept in the token: 32 characters carry 192 bits.
MAC_LENGTH = 32
#: Payments that never succeeded have no receipt, so nothing to verify. Any later state of a
#: successful payment (a refund, once the treasury adds it) still verifies and shows that state.
UNVERIFIABLE_STATUSES = frozenset({"pending", "failed"})
#: Error correction level M (15 %) survives a creased or smudged printout.
QR_ERROR_LEVEL = "m"


def receipt_mac(reference: str) -> str:
    """The keyed MAC that vouches for a receipt number (base64url, shortened to MAC_LENGTH)."""
    key = current_app.config["SECRET_KEY"].encode("utf-8")
    digest = hmac.new(key, f"receipt:{reference}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")[:MAC_LENGTH]


def verification_token(reference: str) -> str:
    """The public token of a receipt: the receipt number and its MAC, joined by a dot."""
    return f"{reference}.{receipt_mac(reference)}"


def reference_of_token(token: str) -> str | None:
    """The receipt number a token vouches for, or None when the MAC does not match."""
    reference, _dot, mac = token.rpartition(".")
    if not reference or len(mac) != MAC_LENGTH:
        return None
    # Compared as bytes: compare_digest refuses str with non-ASCII characters, which a URL can hold.
    if not hmac.compare_digest(receipt_mac(reference).encode(), mac.encode("utf-8")):
        return None
    return reference


def verification_url(payment: Payment) -> str:
    """The absolute address of the payment's public verification page (PUBLIC_URL if set)."""
    token = verification_token(payment.reference)
    public_url = current_app.config.get("PUBLIC_URL")
    if public_url:
        return public_url.rstrip("/") + url_for("receipts.verify", token=token)
    return url_for("receipts.verify", token=token, _external=True)


def receipt_qr(url: str) -> segno.QRCode:
    """The QR code printed on a receipt: always a full (not micro) QR code of the URL."""
    return segno.make_qr(url, error=QR_ERROR_LEVEL)


def receipt_qr_svg(payment: Payment, label: str) -> Markup:
    """The QR code of the payment's verification page as inline SVG, named for screen readers."""
    svg = receipt_qr(verification_url(payment)).svg_inline(
        scale=4, dark="#000", light="#fff", title=label, svgclass="receipt-qr", lineclass=None
    )
    return Markup(svg.replace("<svg ", f'<svg role="img" aria-label="{escape(label)}" ', 1))


def _with_lines(statement: Select[tuple[Payment]]) -> Select[tuple[Payment]]:
    """Load what a receipt shows (lines, agencies, debts, installments) in a few queries."""
    return statement.options(
        selectinload(Payment.lines).selectinload(PaymentLine.agency),
        selectinload(Payment.lines).selectinload(PaymentLine.debt),
        selectinload(Payment.lines).selectinload(PaymentLine.installment),
    )


def owned_receipt(user_id: int, reference: str) -> Payment | None:
    """The user's successful payment with this receipt number; None for anything else."""
    return db.session.scalar(
        _with_lines(
            select(Payment).where(
                Payment.reference == reference,
                Payment.user_id == user_id,
                Payment.status == "succeeded",
            )
        )
    )


def verified_payment(token: str) -> Payment | None:
    """The payment a verification token vouches for, or None for a wrong token or no receipt."""
    reference = reference_of_token(token)
    if reference is None:
        return None
    return db.session.scalar(
        _with_lines(
            select(Payment).where(
                Payment.reference == reference,
                Payment.status.not_in(UNVERIFIABLE_STATUSES),
            )
        )
    )


def receipt_pdf(payment: Payment, *, compress: bool = True) -> bytes:
    """The payment's PDF receipt, in its owner's language, with the payer's name."""
    owner = db.session.get(User, payment.user_id) if payment.user_id is not None else None
    languages = current_app.config["LANGUAGES"]
    language = owner.language if owner is not None and owner.language in languages else languages[0]
    url = verification_url(payment)
    return render_receipt_pdf(
        payment,
        payer_name=owner.full_name if owner is not None else None,
        verification_url=url,
        qr=receipt_qr(url),
        language=language,
        compress=compress,
    )


def send_receipt_email(payment: Payment, to: str, language: str) -> None:
    """E-mail the payment's receipt (a short text and the PDF) in ``language``; raises MailDeliveryError.

    Runs in the worker, outside any request: links are built on PUBLIC_URL (set it in production).
    """
    base_url = current_app.config.get("PUBLIC_URL") or "http://localhost:5000/"
    with current_app.test_request_context(base_url=base_url), force_locale(language):
        amount = format_money(payment.amount_minor, payment.currency, language)
        subject = gettext("Your Civic Pay receipt %(reference)s", reference=payment.reference)
        paragraphs = [
            gettext("Thank you for your payment of %(amount)s.", amount=amount),
            gettext("Receipt number: %(reference)s", reference=payment.reference),
            gettext("The PDF receipt is attached. Anyone can check that it is genuine on this page:"),
            verification_url(payment),
            *_agency_notes(payment, "receipt", language),
        ]
        pdf = receipt_pdf(payment)
    send_mail(
        to,
        subject,
        "\n\n".join([*paragraphs, "Civic Pay"]) + "\n",
        attachments=[Attachment(f"receipt-{payment.reference}.pdf", pdf)],
    )


def agency_note(agency: Agency | None, email: str, language: str) -> str | None:
    """The text the agency adds to an e-mail ("receipt" or "refund") in ``language``, if any.

    Set by its administrators in the treasury (agencies.receipt_note_el and the like); plain text.
    """
    if agency is None or language not in ("el", "en"):
        return None
    return getattr(agency, f"{email}_note_{language}", None) or None


def _agency_notes(payment: Payment, email: str, language: str) -> list[str]:
    """The texts the payment's agencies add to this e-mail in ``language``; named when several do."""
    agencies = list({line.agency_id: line.agency for line in payment.lines}.values())
    notes = [(agency, agency_note(agency, email, language)) for agency in agencies]
    notes = [(agency, note) for agency, note in notes if note]
    if len(agencies) == 1:
        return [note for _agency, note in notes]
    return [f"{agency.name(language)}: {note}" for agency, note in notes]


def send_refund_email(refund: Refund, payment: Payment, to: str, language: str) -> None:
    """Tell the payer, in ``language``, that money of a payment came back and why; raises MailDeliveryError."""
    with force_locale(language):
        amount = format_money(refund.amount_minor, refund.currency, language)
        agency = db.session.get(Agency, refund.agency_id)
        subject = gettext("Refund of your payment %(reference)s", reference=payment.reference)
        paragraphs = [
            gettext(
                "%(agency)s has refunded %(amount)s of your payment %(reference)s to the card you paid with.",
                agency=agency.name(language) if agency is not None else "",
                amount=amount,
                reference=payment.reference,
            ),
            gettext("Reason: %(reason)s", reason=refund.reason),
            gettext("Refunds usually reach the card account within 5 to 10 working days."),
        ]
        note = agency_note(agency, "refund", language)
        if note:
            paragraphs.append(note)
    send_mail(to, subject, "\n\n".join([*paragraphs, "Civic Pay"]) + "\n")
