"""The outbox: a confirmed payment leaves one message per agency; delivery retries, gives up, is retried."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
import time_machine
from flask import Flask
from sqlalchemy import func, select

from app.checkout.payment_flow import PaymentDeclined, confirm_payment, pay_quote
from app.checkout.services import quote_debts
from app.erp_writeback.handlers import enqueue_payment_acks
from app.extensions import db
from app.outbox.models import OutboxMessage
from app.outbox.services import (
    OutboxError,
    deliver_due,
    enqueue,
    list_messages,
    retry_delay,
    retry_message,
)
from erp_connectors.base import payment_ack_from_dict
from tests.factories import AgencyFactory, DebtFactory, DebtorFactory, InstallmentFactory, UserFactory, link
from tests.outbox.helpers import (
    DECLINED_CARD,
    GOOD_CARD,
    NOW,
    SANDBOX,
    RecordingERPServer,
    debts_known_to_erp,
    erp_server,
    open_erp_records,
    pay,
    rest_agency,
)


@pytest.fixture(autouse=True)
def _clock() -> Iterator[None]:
    """Payments are confirmed at NOW (the clock ticks on from there)."""
    with time_machine.travel(NOW, tick=True):
        yield


@pytest.fixture()
def citizen(app_ctx: Flask):
    debtor, user = DebtorFactory(), UserFactory(notify_email=False)  # ERP acks only: no receipt e-mail
    link(user, debtor)
    return user, debtor


@pytest.fixture()
def server() -> Iterator[RecordingERPServer]:
    with erp_server("eastcoast") as running:
        yield running
        running.erp.clear_acknowledgements()


def _messages() -> list[OutboxMessage]:
    return list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


# -- enqueueing -----------------------------------------------------------------------------------


def test_a_payment_across_two_agencies_leaves_one_message_per_agency(citizen) -> None:
    user, debtor = citizen
    east, mountain = AgencyFactory(code="eastcoast"), AgencyFactory(code="mountvalley")
    first = DebtFactory(agency=east, debtor=debtor, external_id="EC-1", principal_minor=12000)
    second = DebtFactory(agency=east, debtor=debtor, external_id="EC-2", principal_minor=3000)
    third = DebtFactory(agency=mountain, debtor=debtor, external_id="MV-1", principal_minor=5000)

    payment = pay(user.id, [first, second, third])

    messages = _messages()
    assert [message.key for message in messages] == [
        f"erp_payment_ack:{payment.reference}:eastcoast",
        f"erp_payment_ack:{payment.reference}:mountvalley",
    ]
    assert [message.agency_id for message in messages] == [east.id, mountain.id]
    assert {message.status for message in messages} == {"pending"}
    assert all(message.next_attempt_at <= payment.completed_at for message in messages)
    east_lines = [payment_ack_from_dict(line) for line in messages[0].payload["lines"]]
    assert [(ack.external_id, ack.principal_minor) for ack in east_lines] == [("EC-1", 12000), ("EC-2", 3000)]
    by_debt = {line.debt_id: line for line in payment.lines}
    assert east_lines[0].line_id == f"{payment.reference}:{by_debt[first.id].id}"
    assert east_lines[0].surcharge_minor == by_debt[first.id].surcharge_minor > 0
    assert east_lines[0].paid_at == payment.completed_at
    assert messages[0].payload["payment_reference"] == payment.reference
    assert messages[0].payload["paid_at"] == payment.completed_at.isoformat()


def test_an_installment_line_names_its_installment(citizen) -> None:
    user, debtor = citizen
    settled = DebtFactory(debtor=debtor, category="settled", principal_minor=10000)
    first = InstallmentFactory(debt=settled, number=1, amount_minor=5000)
    InstallmentFactory(debt=settled, number=2, amount_minor=5000)

    quote = quote_debts(user.id, [f"i{first.id}"], NOW)
    pay_quote(user.id, quote.token, GOOD_CARD, SANDBOX, NOW)

    (message,) = _messages()
    (ack,) = [payment_ack_from_dict(line) for line in message.payload["lines"]]
    assert (ack.external_id, ack.installment_number, ack.principal_minor) == (settled.external_id, 1, 5000)


def test_a_declined_payment_leaves_no_message(citizen) -> None:
    user, debtor = citizen
    with pytest.raises(PaymentDeclined):
        pay(user.id, [DebtFactory(debtor=debtor)], card=DECLINED_CARD)
    assert _messages() == []


def test_confirming_twice_leaves_no_second_message(citizen) -> None:
    user, debtor = citizen
    payment = pay(user.id, [DebtFactory(debtor=debtor)])
    confirm_payment(payment.id, provider_reference="again", card_brand="visa", card_last4="4242")
    assert enqueue_payment_acks(payment) == []  # and a direct second call adds nothing either
    db.session.commit()
    assert len(_messages()) == 1


def test_enqueue_is_idempotent_by_key(app_ctx: Flask) -> None:
    first = enqueue(topic="erp_payment_ack", key="k-1", payload={"lines": []}, agency_id=None, now=NOW)
    assert first is not None
    assert enqueue(topic="erp_payment_ack", key="k-1", payload={"other": 1}, agency_id=None, now=NOW) is None
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 1
    assert db.session.get(OutboxMessage, first.id).payload == {"lines": []}


def test_a_message_only_exists_if_its_transaction_commits(app_ctx: Flask) -> None:
    enqueue(topic="erp_payment_ack", key="k-rolled-back", payload={}, agency_id=None, now=NOW)
    db.session.rollback()
    assert _messages() == []


# -- the retry schedule ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempts", "seconds"),
    [(1, 30), (2, 60), (3, 120), (4, 240), (5, 480), (6, 960), (7, 1920), (8, 3600), (12, 3600), (40, 3600)],
)
def test_retry_delay_doubles_from_30_seconds_up_to_an_hour(attempts: int, seconds: int) -> None:
    assert retry_delay(attempts, jitter=0) == timedelta(seconds=seconds)
    assert retry_delay(attempts, jitter=-1) == timedelta(seconds=seconds * 0.9)
    assert retry_delay(attempts, jitter=1) == timedelta(seconds=seconds * 1.1)


def test_retry_delay_is_spread_by_at_most_ten_percent() -> None:
    delays = {retry_delay(3).total_seconds() for _ in range(200)}
    assert min(delays) >= 108 and max(delays) <= 132
    assert len(delays) > 100  # really spread, not one value


# -- delivery outcomes ----------------------------------------------------------------------------


def test_transient_failures_back_off_then_the_message_is_dead_after_the_maximum(
    app: Flask, citizen, server: RecordingERPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "OUTBOX_MAX_ATTEMPTS", 4)
    user, debtor = citizen
    agency = rest_agency(server)
    pay(user.id, debts_known_to_erp(agency, debtor, open_erp_records(server, 1)))
    (message,) = _messages()
    server.go_down()

    clock = NOW + timedelta(minutes=5)
    for attempt, base in ((1, 30), (2, 60), (3, 120)):
        report = deliver_due(now=clock)
        assert (report.delivered, report.retried, report.dead) == (0, 1, 0)
        db.session.refresh(message)
        assert (message.status, message.attempts) == ("pending", attempt)
        wait = (message.next_attempt_at - clock).total_seconds()
        assert base * 0.9 <= wait <= base * 1.1
        assert "could not be reached" in message.last_error or "HTTP 503" in message.last_error
        assert deliver_due(now=clock + timedelta(seconds=base * 0.85)).handled == 0  # not due yet
        clock = message.next_attempt_at

    report = deliver_due(now=clock)
    assert (report.retried, report.dead) == (0, 1)
    db.session.refresh(message)
    assert (message.status, message.attempts) == ("dead", 4)
    assert message.last_error.startswith("Gave up after 4 attempts.")
    assert deliver_due(now=clock + timedelta(days=30)).handled == 0  # the dead stay dead
    assert server.erp.ack_count == 0


def test_an_erp_refusal_kills_the_message_at_once_with_its_reason(citizen, server: RecordingERPServer) -> None:
    user, debtor = citizen
    agency = rest_agency(server)
    stranger = DebtFactory(agency=agency, debtor=debtor, external_id="EC-NOT-IN-THE-ERP")
    pay(user.id, [stranger])

    report = deliver_due(now=NOW + timedelta(minutes=1))

    assert (report.delivered, report.retried, report.dead) == (0, 0, 1)
    (message,) = _messages()
    assert (message.status, message.attempts) == ("dead", 1)
    assert "The ERP has no debt with the id EC-NOT-IN-THE-ERP." in message.last_error
    assert server.erp.ack_count == 0


def test_an_unexpected_error_is_retried_and_logged_with_its_traceback(
    citizen, caplog: pytest.LogCaptureFixture
) -> None:
    user, debtor = citizen
    broken = AgencyFactory(code="eastcoast", connector={"type": "rest", "options": {}})  # no base_url
    pay(user.id, [DebtFactory(agency=broken, debtor=debtor)])
    logger = logging.getLogger("civicpay.outbox")  # does not propagate to the root, where caplog listens
    logger.addHandler(caplog.handler)
    try:
        report = deliver_due(now=NOW + timedelta(minutes=1))
    finally:
        logger.removeHandler(caplog.handler)

    assert report.retried == 1
    (message,) = _messages()
    assert (message.status, message.attempts) == ("pending", 1)
    assert "unexpected ValueError" in message.last_error
    assert any(record.exc_info and record.levelno == logging.ERROR for record in caplog.records)


def test_a_message_nobody_delivers_cannot_be_enqueued(app_ctx: Flask) -> None:
    with pytest.raises(OutboxError, match="No deliverer is registered for the outbox topic 'carrier_pigeon'"):
        enqueue(topic="carrier_pigeon", key="pigeon:1", payload={}, agency_id=None, now=NOW)
    assert _messages() == []


def test_a_stored_message_whose_topic_is_no_longer_delivered_is_dead(app_ctx: Flask) -> None:
    """A message left by an older version, of a topic nothing registers now, waits for a person."""
    db.session.add(
        OutboxMessage(
            topic="carrier_pigeon",
            key="pigeon:1",
            payload={},
            status="pending",
            attempts=0,
            next_attempt_at=NOW,
            created_at=NOW,
        )
    )
    db.session.commit()
    assert deliver_due(now=NOW).dead == 1
    (message,) = _messages()
    assert message.status == "dead"
    assert message.last_error == "No handler delivers messages of topic 'carrier_pigeon'."


def test_retry_message_queues_a_dead_message_again_and_keeps_its_attempts(citizen, server: RecordingERPServer) -> None:
    user, debtor = citizen
    agency = rest_agency(server)
    payment = pay(user.id, debts_known_to_erp(agency, debtor, open_erp_records(server, 1)))
    (message,) = _messages()
    server.fail_posts(1)
    # A treasurer fixed the cause (here: the ERP answers again); the message had been dead-lettered.
    message.status, message.attempts, message.last_error = "dead", 12, "Gave up after 12 attempts."
    db.session.commit()

    later = NOW + timedelta(days=2)
    retried = retry_message(message.id, later)
    assert (retried.status, retried.attempts, retried.next_attempt_at) == ("pending", 12, later)

    # The attempts are kept: one more failure and it is dead again, not given a fresh dozen.
    assert deliver_due(now=later).dead == 1
    db.session.refresh(message)
    assert (message.status, message.attempts) == ("dead", 13)
    retry_message(message.id, later)
    assert deliver_due(now=later).delivered == 1
    db.session.refresh(message)
    assert message.status == "delivered"
    assert server.erp.acknowledged(f"{payment.reference}:{payment.lines[0].id}")
    with pytest.raises(OutboxError, match="already delivered"):
        retry_message(message.id, later)
    with pytest.raises(LookupError, match="no outbox message 999999"):
        retry_message(999999, later)


def test_list_messages_filters_by_status_and_agency(app_ctx: Flask) -> None:
    east, mountain = AgencyFactory(code="eastcoast"), AgencyFactory(code="mountvalley")
    for number, agency in enumerate([east, east, mountain]):
        enqueue(topic="erp_payment_ack", key=f"k-{number}", payload={}, agency_id=agency.id, now=NOW)
    db.session.commit()
    newest = list_messages()
    assert [message.key for message in newest] == ["k-2", "k-1", "k-0"]
    newest[0].status = "dead"
    db.session.commit()
    assert [message.key for message in list_messages(status="pending")] == ["k-1", "k-0"]
    assert [message.key for message in list_messages(agency_id=mountain.id)] == ["k-2"]
    assert [message.key for message in list_messages(status="pending", agency_id=east.id, limit=1)] == ["k-1"]


def test_a_topic_has_one_deliverer() -> None:
    from app.outbox.services import register_topic, registered_topics

    topic = registered_topics()["erp_payment_ack"]
    register_topic("erp_payment_ack", topic.deliver, label=topic.label)  # the same again: no change
    with pytest.raises(OutboxError, match="already delivered by"):
        register_topic("erp_payment_ack", lambda message, context: None, label="another")
    assert registered_topics()["erp_payment_ack"].deliver is topic.deliver


def test_a_new_topic_is_delivered_by_its_registered_deliverer_alone(
    app_ctx: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The outbox knows no topic: a feature registers one and its messages reach its deliverer."""
    from app.outbox import services as outbox

    delivered: list[dict] = []
    monkeypatch.setattr(outbox, "_TOPICS", dict(outbox._TOPICS))  # registered for this test only
    outbox.register_topic("test_echo", lambda message, context: delivered.append(message.payload), label="Echo")
    enqueue(topic="test_echo", key="echo:1", payload={"said": "hello"}, agency_id=None, now=NOW)
    db.session.commit()
    assert deliver_due(now=NOW).delivered == 1
    assert delivered == [{"said": "hello"}]
    (message,) = _messages()
    assert message.status == "delivered"


def test_an_unexpected_failure_closes_the_resources_so_the_next_message_opens_fresh_ones(
    app_ctx: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection that misbehaved (say, a half-read answer) is not handed to the next message."""
    from app.outbox import services as outbox

    class Connection:
        def __init__(self) -> None:
            self.closed = False

        def close(self) -> None:
            self.closed = True

    opened: list[Connection] = []

    def deliver(message: OutboxMessage, context: outbox.DeliveryContext) -> None:
        connection = context.resource("conn", lambda: opened.append(Connection()) or opened[-1])
        assert not connection.closed
        if message.payload["fail"]:
            raise ValueError("half an answer")

    monkeypatch.setattr(outbox, "_TOPICS", dict(outbox._TOPICS))
    outbox.register_topic("test_conn", deliver, label="Connection")
    enqueue(topic="test_conn", key="conn:1", payload={"fail": True}, agency_id=None, now=NOW)
    enqueue(topic="test_conn", key="conn:2", payload={"fail": False}, agency_id=None, now=NOW)
    db.session.commit()
    report = deliver_due(now=NOW)
    assert (report.retried, report.delivered) == (1, 1)
    assert len(opened) == 2 and all(connection.closed for connection in opened)
