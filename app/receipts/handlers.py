"""Listeners that queue the payer's receipt and refund e-mails, and the deliverers that send them."""

from __future__ import annotations

from typing import Any

from flask import current_app
from sqlalchemy import select

from app import events
from app.accounts.models import User
from app.checkout.services import quote_payer_email
from app.db import utcnow
from app.extensions import db
from app.i18n import lazy_gettext
from app.mail import MailDeliveryError
from app.outbox.models import OutboxMessage
from app.outbox.services import DeliveryContext, GiveUp, RetryLater, enqueue, register_topic
from app.payments.models import Payment, Refund
from app.receipts.services import send_receipt_email, send_refund_email

#: The receipt of a succeeded payment, e-mailed with its PDF.
TOPIC_RECEIPT_EMAIL = "receipt_email"
#: A refund, told to the payer by e-mail.
TOPIC_REFUND_EMAIL = "refund_email"


def register() -> None:
    """Listen to payments and refunds, and deliver the two e-mail topics."""
    events.payment_succeeded.connect(enqueue_receipt_email, weak=False)
    events.refund_made.connect(enqueue_refund_email, weak=False)
    register_topic(TOPIC_RECEIPT_EMAIL, deliver_receipt_email, label=lazy_gettext("Receipt e-mail"))
    register_topic(TOPIC_REFUND_EMAIL, deliver_refund_email, label=lazy_gettext("Refund e-mail"))


def receipt_recipient(payment: Payment) -> tuple[str, str | None] | None:
    """(address, preferred language or None) of the account holder a payment's receipt goes to, or None.

    A guest asks for a copy of the receipt on the receipt page instead (``guest.send_receipt_copy``).
    """
    if payment.user_id is None:
        return None
    user = db.session.get(User, payment.user_id)
    if user is None or user.deleted_at is not None or not user.notify_email or user.email_verified_at is None:
        return None
    return user.email, user.language


def refund_recipient(payment: Payment) -> tuple[str, str | None] | None:
    """(address, language or None) told of a refund: the account holder, or the guest who paid."""
    recipient = receipt_recipient(payment)
    if recipient is not None:
        return recipient
    guest_email = _guest_address(payment)
    return (guest_email, None) if guest_email else None


def _guest_address(payment: Payment) -> str | None:
    """The address a guest gave when paying (kept on the quote), or None."""
    return None if payment.user_id is not None else quote_payer_email(payment.quote_id)


def enqueue_receipt_email(payment: Payment, **_data: Any) -> OutboxMessage | None:
    """The e-mailed receipt of a succeeded payment, if its payer has an address that wants it.

    The payload names only the payment: the address is looked up when the message is sent, so
    an account deleted meanwhile gets nothing.
    """
    if receipt_recipient(payment) is None or payment.completed_at is None:
        return None
    return enqueue(
        topic=TOPIC_RECEIPT_EMAIL,
        key=f"{TOPIC_RECEIPT_EMAIL}:{payment.reference}",
        payload={"payment_reference": payment.reference},
        agency_id=None,
        now=payment.completed_at,
    )


def enqueue_refund_email(refund: Refund, *, payment: Payment, **_data: Any) -> OutboxMessage | None:
    """The e-mail telling the payer that money came back, if the payer has an address."""
    if refund_recipient(payment) is None:
        return None
    done_at = refund.completed_at or utcnow()
    return enqueue(
        topic=TOPIC_REFUND_EMAIL,
        key=f"{TOPIC_REFUND_EMAIL}:{refund.reference}",
        payload={"refund_reference": refund.reference},
        agency_id=None,
        now=done_at,
    )


def _language(preferred: str | None) -> str:
    languages = current_app.config["LANGUAGES"]
    return preferred if preferred in languages else languages[0]


def deliver_receipt_email(message: OutboxMessage, _context: DeliveryContext) -> None:
    """E-mail the receipt with its PDF."""
    reference = message.payload.get("payment_reference")
    payment = db.session.scalar(select(Payment).where(Payment.reference == reference))
    if payment is None or payment.status == "failed":
        raise GiveUp(f"There is no succeeded payment {reference!r} to send a receipt for.")
    recipient = receipt_recipient(payment)
    if recipient is None:
        return  # the payer deleted the account or turned e-mails off meanwhile: nothing to send
    address, language = recipient
    try:
        send_receipt_email(payment, address, _language(language))
    except MailDeliveryError as error:
        raise RetryLater(f"The receipt e-mail could not be sent: {error}") from None


def deliver_refund_email(message: OutboxMessage, _context: DeliveryContext) -> None:
    """E-mail the payer that money came back."""
    refund = db.session.scalar(select(Refund).where(Refund.reference == message.payload.get("refund_reference")))
    if refund is None or refund.status != "succeeded":
        raise GiveUp(f"There is no succeeded refund {message.payload.get('refund_reference')!r}.")
    payment = db.session.get(Payment, refund.payment_id)
    assert payment is not None
    recipient = refund_recipient(payment)
    if recipient is None:
        return
    address, language = recipient
    try:
        send_refund_email(refund, payment, address, _language(language))
    except MailDeliveryError as error:
        raise RetryLater(f"The refund e-mail could not be sent: {error}") from None
