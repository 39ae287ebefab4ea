"""Listeners that write ERP acknowledgements to the outbox, and the deliverers that send them."""

from __future__ import annotations

from typing import Any

from app import events
from app.agencies.models import Agency
from app.db import utcnow
from app.extensions import db
from app.i18n import lazy_gettext
from app.outbox.models import OutboxMessage
from app.outbox.services import DeliveryContext, GiveUp, RetryLater, enqueue, register_topic
from app.payments.models import Payment, PaymentLine, Refund
from app.sync.connectors import build_connector
from erp_connectors.base import AckRejected, ERPConnector, PaymentAck, payment_ack_from_dict, payment_ack_to_dict

#: A debt (or installment) paid online, told to the agency's ERP: one message per payment and agency.
TOPIC_ERP_PAYMENT_ACK = "erp_payment_ack"
#: A refund, told to the agency's ERP.
TOPIC_ERP_REFUND_ACK = "erp_refund_ack"
#: A catalog item (ticket, permit, donation) sold online, told to the agency's ERP for its books.
TOPIC_ERP_SALE_ACK = "erp_sale_ack"


def register() -> None:
    """Listen to payments and refunds, and deliver the three ERP topics."""
    events.payment_succeeded.connect(enqueue_payment_acks, weak=False)
    events.refund_made.connect(enqueue_refund_ack, weak=False)
    register_topic(TOPIC_ERP_PAYMENT_ACK, deliver_payment_ack, label=lazy_gettext("Payment recorded in the ERP"))
    register_topic(TOPIC_ERP_REFUND_ACK, deliver_refund_ack, label=lazy_gettext("Refund recorded in the ERP"))
    register_topic(TOPIC_ERP_SALE_ACK, deliver_sale_ack, label=lazy_gettext("Sale recorded in the ERP"))


def enqueue_payment_acks(payment: Payment, **_data: Any) -> list[OutboxMessage]:
    """One ERP acknowledgement message per agency whose debts the payment paid, one per sold item line."""
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


def enqueue_refund_ack(refund: Refund, *, payment: Payment, **_data: Any) -> None:
    """Tell the agency's ERP of a refund and of the debts it reopened."""
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


def _agency_of(message: OutboxMessage) -> Agency:
    agency = db.session.get(Agency, message.agency_id) if message.agency_id is not None else None
    if agency is None:
        raise GiveUp("The message names no agency, so there is no ERP to tell.")
    return agency


def _connector(agency: Agency, context: DeliveryContext) -> ERPConnector:
    """One connector per agency and delivery call (the REST connector pools its connections)."""
    return context.resource(("erp", agency.id), lambda: build_connector(agency))


def deliver_payment_ack(message: OutboxMessage, context: DeliveryContext) -> None:
    """Hand each acknowledged line to the agency's ERP connector, one at a time."""
    agency = _agency_of(message)
    try:
        acks = [payment_ack_from_dict(line) for line in message.payload.get("lines", [])]
    except (KeyError, TypeError, ValueError) as error:
        raise GiveUp(f"The stored acknowledgement cannot be read: {error}") from None
    try:
        connector = _connector(agency, context)
        for ack in acks:
            # One line at a time: the ERP is idempotent by line_id, so after a failure halfway
            # the next attempt repeats the lines already booked and the ERP ignores them.
            connector.acknowledge(ack)
    except AckRejected as error:
        raise GiveUp(f"The ERP of {agency.code} refused the acknowledgement: {error.reason}") from None
    except ConnectionError as error:
        raise RetryLater(f"The ERP of {agency.code} could not be reached: {error}") from None


def _deliver_to_connector(
    message: OutboxMessage, context: DeliveryContext, method: str, what: str, reference_key: str
) -> None:
    """Hand the message's payload to the connector's ``method`` (acknowledge_refund, acknowledge_sale).

    A connector without the method gets a dead letter that tells staff to book ``what`` by hand.
    """
    agency = _agency_of(message)
    connector = _connector(agency, context)
    call = getattr(connector, method, None)
    if call is None:
        raise GiveUp(
            f"The ERP connector of {agency.code} cannot take {what}s: book {what} "
            f"{message.payload.get(reference_key)} in the ERP by hand, then mark this message done."
        )
    try:
        call(dict(message.payload))
    except AckRejected as error:
        raise GiveUp(f"The ERP of {agency.code} refused the {what}: {error.reason}") from None
    except ConnectionError as error:
        raise RetryLater(f"The ERP of {agency.code} could not be reached: {error}") from None


def deliver_refund_ack(message: OutboxMessage, context: DeliveryContext) -> None:
    """Tell the ERP of a refund through its connector's acknowledge_refund, where it has one."""
    _deliver_to_connector(message, context, "acknowledge_refund", "refund", "refund_reference")


def deliver_sale_ack(message: OutboxMessage, context: DeliveryContext) -> None:
    """Tell the ERP of a catalog sale through its connector's acknowledge_sale, where it has one."""
    _deliver_to_connector(message, context, "acknowledge_sale", "sale", "line_id")
