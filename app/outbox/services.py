"""The transactional outbox: enqueue with the state change, deliver later, until acknowledged.

"Exactly once" on the ERP's books is at-least-once delivery plus an idempotent acknowledgement:

* a message is written in the same transaction as its cause (a confirmed payment), so it exists
  if and only if the payment does;
* ``deliver_due`` takes one message at a time in its own transaction, row-locked with
  ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so several workers never hold the same message, calls
  the ERP, records the outcome and commits;
* a worker that dies after the ERP recorded a line but before our commit leaves the message
  pending, and the next attempt sends that line again. The ERP acknowledges by ``line_id`` and
  treats a repeat as already done, so the repeat is harmless: each line is booked once.

SQLite has no row locks (``with_for_update`` compiles to nothing there): run a single worker.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select

from app.accounts.models import User
from app.agencies.models import Agency
from app.checkout.models import Quote
from app.db import utcnow
from app.extensions import db
from app.mail import MailDeliveryError
from app.outbox.models import OutboxMessage
from app.payments.models import Payment, PaymentLine, Refund
from app.sync.services import build_connector
from erp_connectors.base import (
    AckRejected,
    ERPConnector,
    PaymentAck,
    payment_ack_from_dict,
    payment_ack_to_dict,
)

log = logging.getLogger("civicpay.outbox")

TOPIC_ERP_PAYMENT_ACK = "erp_payment_ack"
TOPIC_RECEIPT_EMAIL = "receipt_email"
TOPIC_ERP_REFUND_ACK = "erp_refund_ack"
TOPIC_REFUND_EMAIL = "refund_email"
#: A catalog item (ticket, permit, donation) sold online, told to the agency's ERP for its books.
TOPIC_ERP_SALE_ACK = "erp_sale_ack"

#: The first retry waits this long; each further one twice as long as the one before.
FIRST_RETRY_DELAY = timedelta(seconds=30)
#: No retry waits longer than this.
LONGEST_RETRY_DELAY = timedelta(hours=1)
#: Each delay is spread by up to this fraction either way, so a crowd of messages that failed
#: together (the ERP went down) does not come back in one burst.
RETRY_JITTER = 0.10
DEFAULT_MAX_ATTEMPTS = 12

#: Which status may follow which; anything else is a programming error.
_TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"pending", "delivered", "dead"}),
    "dead": frozenset({"pending"}),
    "delivered": frozenset(),
}

_LONGEST_ERROR = 500
#: user:password@ in a URL, in case an error message quotes one.
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


class OutboxError(Exception):
    """An outbox operation that is not allowed; the message is a sentence for an operator."""


@dataclass
class DeliveryReport:
    """What one ``deliver_due`` call did."""

    delivered: int = 0
    retried: int = 0
    dead: int = 0

    @property
    def handled(self) -> int:
        """Messages taken in this call, whatever their outcome."""
        return self.delivered + self.retried + self.dead

    def __str__(self) -> str:
        return f"{self.delivered} delivered, {self.retried} to retry, {self.dead} dead"


class _Transient(Exception):
    """A failure worth another try later."""


class _Permanent(Exception):
    """A failure no retry will cure."""


def _set_status(message: OutboxMessage, status: str) -> None:
    """The one place a message changes status."""
    if status not in _TRANSITIONS.get(message.status, frozenset()):
        raise OutboxError(f"Outbox message {message.id} is {message.status}; it cannot become {status}.")
    message.status = status


def enqueue(
    *, topic: str, key: str, payload: dict[str, Any], agency_id: int | None, now: datetime
) -> OutboxMessage | None:
    """Add a message to the caller's transaction; None if a message with this key already exists.

    The caller commits. The unique index on ``key`` is the last guard should two transactions
    race past the check; callers that matter (``confirm_payment``) already hold a row lock.
    """
    if db.session.scalar(select(OutboxMessage.id).where(OutboxMessage.key == key)) is not None:
        return None
    message = OutboxMessage(
        topic=topic,
        key=key,
        payload=payload,
        agency_id=agency_id,
        status="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    db.session.add(message)
    return message


def enqueue_payment_acks(payment: Payment) -> list[OutboxMessage]:
    """One ERP acknowledgement message per agency the payment paid; call before its commit."""
    if payment.completed_at is None:
        raise ValueError(f"Payment {payment.reference} has no completion time; it cannot be acknowledged yet.")
    lines_by_agency: dict[int, list[dict[str, Any]]] = {}
    agencies: dict[int, Agency] = {}
    for line in payment.lines:
        if line.item_id is not None:
            _enqueue_sale_ack(payment, line)
            continue
        agencies[line.agency_id] = line.agency
        assert line.debt is not None
        ack = PaymentAck(
            line_id=f"{payment.reference}:{line.id}",
            payment_reference=payment.reference,
            external_id=line.debt.external_id,
            installment_number=line.installment.number if line.installment is not None else None,
            principal_minor=line.principal_minor,
            surcharge_minor=line.surcharge_minor,
            currency=payment.currency,
            paid_at=payment.completed_at,
        )
        lines_by_agency.setdefault(line.agency_id, []).append(payment_ack_to_dict(ack))
    messages = []
    for agency_id, lines in lines_by_agency.items():
        message = enqueue(
            topic=TOPIC_ERP_PAYMENT_ACK,
            key=f"{TOPIC_ERP_PAYMENT_ACK}:{payment.reference}:{agencies[agency_id].code}",
            payload={
                "payment_reference": payment.reference,
                "paid_at": payment.completed_at.isoformat(),
                "lines": lines,
            },
            agency_id=agency_id,
            now=payment.completed_at,
        )
        if message is not None:
            messages.append(message)
    return messages


def _enqueue_sale_ack(payment: Payment, line: PaymentLine) -> None:
    """One message per sold item line: the ERP books the revenue; idempotent by the line id."""
    assert line.item is not None and payment.completed_at is not None
    line_id = f"{payment.reference}:{line.id}"
    enqueue(
        topic=TOPIC_ERP_SALE_ACK,
        key=f"{TOPIC_ERP_SALE_ACK}:{line_id}",
        payload={
            "line_id": line_id,
            "payment_reference": payment.reference,
            "item_code": line.item.code,
            "quantity": line.quantity,
            "amount_minor": line.amount_minor,
            "currency": payment.currency,
            "paid_at": payment.completed_at.isoformat(),
        },
        agency_id=line.agency_id,
        now=payment.completed_at,
    )


def retry_delay(attempts: int, jitter: float | None = None) -> timedelta:
    """How long to wait after the given number of failed attempts: 30 s doubling, at most 1 h, ±10 %.

    ``jitter`` (in -1..1) fixes the spread for tests; by default it is random.
    """
    if attempts < 1:
        raise ValueError(f"A retry follows at least one failed attempt, not {attempts}.")
    base = min(FIRST_RETRY_DELAY * 2 ** min(attempts - 1, 30), LONGEST_RETRY_DELAY)
    spread = random.uniform(-1.0, 1.0) if jitter is None else jitter
    return base * (1 + RETRY_JITTER * spread)


def _max_attempts() -> int:
    return int(current_app.config.get("OUTBOX_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS))


def enqueue_receipt_email(payment: Payment) -> OutboxMessage | None:
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


def enqueue_refund_messages(payment: Payment, refund: Refund) -> None:
    """Tell the agency's ERP of a refund, and the payer by e-mail; call before the refund's commit."""
    done_at = refund.completed_at or utcnow()
    enqueue(
        topic=TOPIC_ERP_REFUND_ACK,
        key=f"{TOPIC_ERP_REFUND_ACK}:{refund.reference}",
        payload={
            "refund_reference": refund.reference,
            "payment_reference": payment.reference,
            "amount_minor": refund.amount_minor,
            "currency": refund.currency,
            "reopened_debts": refund.reopened_debts,
            "refunded_at": done_at.isoformat(),
        },
        agency_id=refund.agency_id,
        now=done_at,
    )
    if receipt_recipient(payment) is not None or _guest_address(payment):
        enqueue(
            topic=TOPIC_REFUND_EMAIL,
            key=f"{TOPIC_REFUND_EMAIL}:{refund.reference}",
            payload={"refund_reference": refund.reference},
            agency_id=None,
            now=done_at,
        )


def _guest_address(payment: Payment) -> str | None:
    if payment.user_id is not None or payment.quote_id is None:
        return None
    return db.session.scalar(select(Quote.payer_email).where(Quote.id == payment.quote_id))


def receipt_recipient(payment: Payment) -> tuple[str, str | None] | None:
    """(address, preferred language or None) a payment's receipt goes to, or None."""
    if payment.user_id is not None:
        user = db.session.get(User, payment.user_id)
        if user is None or user.deleted_at is not None or not user.notify_email or user.email_verified_at is None:
            return None
        return user.email, user.language
    guest_email = getattr(payment, "payer_email", None)
    if guest_email:
        return guest_email, None
    return None


def _deliver_refund_email(message: OutboxMessage) -> None:
    """E-mail the payer that money came back; raises _Transient or _Permanent."""
    refund = db.session.scalar(select(Refund).where(Refund.reference == message.payload.get("refund_reference")))
    if refund is None or refund.status != "succeeded":
        raise _Permanent(f"There is no succeeded refund {message.payload.get('refund_reference')!r}.")
    payment = db.session.get(Payment, refund.payment_id)
    assert payment is not None
    recipient = receipt_recipient(payment)
    guest = _guest_address(payment)
    if recipient is None and guest is None:
        return
    address, language = recipient if recipient is not None else (guest, None)
    languages = current_app.config["LANGUAGES"]
    try:
        from app.receipts.services import send_refund_email

        send_refund_email(refund, payment, address, language if language in languages else languages[0])
    except MailDeliveryError as error:
        raise _Transient(f"The refund e-mail could not be sent: {error}") from None


def _deliver_to_connector(
    message: OutboxMessage, connectors: dict[int, ERPConnector], method: str, what: str, reference_key: str
) -> None:
    """Hand the message's payload to the connector's ``method`` (acknowledge_refund, acknowledge_sale).

    A connector without the method gets a dead letter that tells staff to book ``what`` by hand.
    """
    agency = db.session.get(Agency, message.agency_id) if message.agency_id is not None else None
    if agency is None:
        raise _Permanent("The message names no agency, so there is no ERP to tell.")
    connector = connectors.get(agency.id)
    if connector is None:
        connector = connectors[agency.id] = build_connector(agency)
    call = getattr(connector, method, None)
    if call is None:
        raise _Permanent(
            f"The ERP connector of {agency.code} cannot take {what}s: book {what} "
            f"{message.payload.get(reference_key)} in the ERP by hand, then mark this message done."
        )
    try:
        call(dict(message.payload))
    except AckRejected as error:
        raise _Permanent(f"The ERP of {agency.code} refused the {what}: {error.reason}") from None
    except ConnectionError as error:
        raise _Transient(f"The ERP of {agency.code} could not be reached: {error}") from None


def _deliver_refund_ack(message: OutboxMessage, connectors: dict[int, ERPConnector]) -> None:
    """Tell the ERP of a refund through its connector's acknowledge_refund, where it has one."""
    _deliver_to_connector(message, connectors, "acknowledge_refund", "refund", "refund_reference")


def _deliver_sale_ack(message: OutboxMessage, connectors: dict[int, ERPConnector]) -> None:
    """Tell the ERP of a catalog sale through its connector's acknowledge_sale, where it has one."""
    _deliver_to_connector(message, connectors, "acknowledge_sale", "sale", "line_id")


def _deliver_receipt(message: OutboxMessage) -> None:
    """E-mail the receipt with its PDF; raises _Transient or _Permanent."""
    reference = message.payload.get("payment_reference")
    payment = db.session.scalar(select(Payment).where(Payment.reference == reference))
    if payment is None or payment.status == "failed":
        raise _Permanent(f"There is no succeeded payment {reference!r} to send a receipt for.")
    recipient = receipt_recipient(payment)
    if recipient is None:
        return  # the payer deleted the account or turned e-mails off meanwhile: nothing to send
    address, language = recipient
    languages = current_app.config["LANGUAGES"]
    try:
        from app.receipts.services import send_receipt_email  # the receipts feature imports payments

        send_receipt_email(payment, address, language if language in languages else languages[0])
    except MailDeliveryError as error:
        raise _Transient(f"The receipt e-mail could not be sent: {error}") from None


def _next_due(now: datetime, skip_agencies: set[int]) -> OutboxMessage | None:
    """Lock and return the oldest due message nobody else holds, of an agency not to be skipped."""
    statement = (
        select(OutboxMessage)
        .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now)
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    if skip_agencies:
        statement = statement.where(
            OutboxMessage.agency_id.is_(None) | OutboxMessage.agency_id.not_in(skip_agencies)
        )
    return db.session.scalars(statement).first()


def deliver_due(
    limit: int = 20,
    now: datetime | None = None,
    worker: str = "",
    should_stop: Callable[[], bool] | None = None,
) -> DeliveryReport:
    """Deliver up to ``limit`` due messages, one transaction each; returns the counts.

    ``now`` fixes the clock (tests); by default each message is taken at the current time.
    ``should_stop`` is asked before each message, so a stopping worker finishes the one in hand.
    Once an agency's ERP fails, its other messages wait for the next call: a down ERP costs one
    timeout per call, not one per message, and never holds up the other agencies.
    """
    report = DeliveryReport()
    connectors: dict[int, ERPConnector] = {}
    failing_agencies: set[int] = set()
    try:
        while report.handled < limit and not (should_stop and should_stop()):
            moment = now or utcnow()
            message = _next_due(moment, failing_agencies)
            if message is None:
                db.session.rollback()  # end the read-only transaction; nothing is due
                break
            try:
                _deliver(message, connectors)
            except _Permanent as error:
                _set_status(message, "dead")
                message.attempts += 1
                message.last_error = _clean(str(error))
                report.dead += 1
                log.error("%soutbox message %s (%s) is dead: %s", _who(worker), message.id, message.key, error)
            except _Transient as error:
                _record_failure(message, str(error), moment, report, worker)
                if message.agency_id is not None:
                    failing_agencies.add(message.agency_id)
            else:
                _set_status(message, "delivered")
                message.attempts += 1
                message.delivered_at = utcnow()
                message.last_error = None
                report.delivered += 1
                log.info("%soutbox message %s (%s) delivered", _who(worker), message.id, message.key)
            db.session.commit()
    finally:
        for connector in connectors.values():
            close = getattr(connector, "close", None)  # the REST connector pools connections
            if close is not None:
                close()
    return report


def _who(worker: str) -> str:
    return f"{worker}: " if worker else ""


def _record_failure(
    message: OutboxMessage, reason: str, now: datetime, report: DeliveryReport, worker: str
) -> None:
    message.attempts += 1
    maximum = _max_attempts()
    if message.attempts >= maximum:
        _set_status(message, "dead")
        message.last_error = _clean(f"Gave up after {message.attempts} attempts. Last: {reason}")
        report.dead += 1
        log.error("%soutbox message %s (%s) is dead after %d attempts: %s",
                  _who(worker), message.id, message.key, message.attempts, reason)  # fmt: skip
        return
    _set_status(message, "pending")
    message.next_attempt_at = now + retry_delay(message.attempts)
    message.last_error = _clean(f"Attempt {message.attempts} of {maximum} failed: {reason}")
    report.retried += 1
    log.warning("%soutbox message %s (%s) will be retried at %s: %s",
                _who(worker), message.id, message.key, message.next_attempt_at.isoformat(), reason)  # fmt: skip


def _clean(text: str) -> str:
    """An error for the table and the operator: no URL credentials, not a novel."""
    text = _URL_CREDENTIALS.sub("", " ".join(text.split()))
    return text if len(text) <= _LONGEST_ERROR else text[: _LONGEST_ERROR - 1] + "…"


def _deliver(message: OutboxMessage, connectors: dict[int, ERPConnector]) -> None:
    """Carry out one message; raises _Transient or _Permanent when it did not go through."""
    if message.topic == TOPIC_RECEIPT_EMAIL:
        _deliver_receipt(message)
        return
    if message.topic == TOPIC_REFUND_EMAIL:
        _deliver_refund_email(message)
        return
    if message.topic == TOPIC_ERP_REFUND_ACK:
        _deliver_refund_ack(message, connectors)
        return
    if message.topic == TOPIC_ERP_SALE_ACK:
        _deliver_sale_ack(message, connectors)
        return
    if message.topic != TOPIC_ERP_PAYMENT_ACK:
        raise _Permanent(f"No handler delivers messages of topic {message.topic!r}.")
    agency = db.session.get(Agency, message.agency_id) if message.agency_id is not None else None
    if agency is None:
        raise _Permanent("The message names no agency, so there is no ERP to tell.")
    try:
        acks = [payment_ack_from_dict(line) for line in message.payload.get("lines", [])]
    except (KeyError, TypeError, ValueError) as error:
        raise _Permanent(f"The stored acknowledgement cannot be read: {error}") from None
    try:
        connector = connectors.get(agency.id)
        if connector is None:
            connector = connectors[agency.id] = build_connector(agency)
        for ack in acks:
            # One line at a time: the ERP is idempotent by line_id, so after a failure halfway
            # the next attempt repeats the lines already booked and the ERP ignores them.
            connector.acknowledge(ack)
    except AckRejected as error:
        raise _Permanent(f"The ERP of {agency.code} refused the acknowledgement: {error.reason}") from None
    except ConnectionError as error:
        raise _Transient(f"The ERP of {agency.code} could not be reached: {error}") from None
    except Exception as error:  # noqa: BLE001 - a bug or an unexpected answer: retry, but shout
        log.exception("unexpected failure delivering outbox message %s (%s)", message.id, message.key)
        broken = connectors.pop(agency.id, None)  # a fresh connector next time, in case it is the culprit
        if broken is not None and hasattr(broken, "close"):
            broken.close()
        raise _Transient(
            f"An unexpected {type(error).__name__} happened while telling the ERP of {agency.code}; "
            "see the worker's log."
        ) from None


def retry_message(message_id: int, now: datetime) -> OutboxMessage:
    """Put a dead (or waiting) message back in the queue, due now; its attempt count is kept."""
    message = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.id == message_id).with_for_update()
    ).first()
    if message is None:
        db.session.rollback()
        raise LookupError(f"There is no outbox message {message_id}.")
    if message.status == "delivered":
        db.session.rollback()
        raise OutboxError(f"Outbox message {message_id} was already delivered; there is nothing to retry.")
    _set_status(message, "pending")
    message.next_attempt_at = now
    db.session.commit()
    log.info("outbox message %s (%s) queued again by hand", message.id, message.key)
    return message


def list_messages(
    status: str | None = None, agency_id: int | None = None, limit: int = 50
) -> list[OutboxMessage]:
    """The newest messages, optionally of one status and one agency."""
    statement = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    if status is not None:
        statement = statement.where(OutboxMessage.status == status)
    if agency_id is not None:
        statement = statement.where(OutboxMessage.agency_id == agency_id)
    return list(db.session.scalars(statement))


def requeue_dead_message(message_id: int, agency_id: int, now: datetime) -> OutboxMessage:
    """Queue one of the agency's dead messages again, due now, in the caller's transaction.

    The caller commits (with its audit entry). LookupError if the agency has no such message,
    OutboxError if the message is not dead (already retried, or delivered). The attempt count
    is kept, so the next failure makes it dead again at once rather than after twelve more tries.
    """
    message = db.session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.agency_id == agency_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if message is None:
        raise LookupError(f"Agency {agency_id} has no outbox message {message_id}.")
    if message.status != "dead":
        raise OutboxError(f"Outbox message {message_id} is {message.status}; only a dead message is retried by hand.")
    _set_status(message, "pending")
    message.next_attempt_at = now
    log.info("outbox message %s (%s) of agency %s queued again from the treasury", message.id, message.key, agency_id)
    return message
