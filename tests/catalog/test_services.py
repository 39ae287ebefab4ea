"""Selling catalog items: seats held against capacity, issued once paid, let in once at the door,
and each sale told to the agency's ERP exactly once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.catalog.models import Ticket
from app.catalog.services import (
    CHECK_ADMITTED,
    CHECK_ALREADY_USED,
    CHECK_NOT_VALID,
    CHECK_UNKNOWN,
    normalise_ticket_code,
    seats_available,
    use_ticket,
)
from app.checkout.payment_flow import PaymentDeclined
from app.checkout.services import CheckoutError, quote_item
from app.erp_writeback.handlers import TOPIC_ERP_SALE_ACK
from app.extensions import db
from app.guest.services import pay_guest_quote
from app.outbox.models import OutboxMessage
from app.outbox.services import deliver_due
from app.payments.models import Payment
from app.payments.refunds import refund_payment
from app.unit_of_work import unit_of_work
from tests.factories import AgencyFactory, CatalogItemFactory, UserFactory, donation_item
from tests.outbox.helpers import DECLINED_CARD, GOOD_CARD, NOW, SANDBOX, erp_server, rest_agency


def order(item, quantity: int = 1, *, chosen: int | None = None, answers=None, user_id=None, now=NOW):
    db.session.commit()  # the items exist before anyone orders them (ordering locks them first)
    return quote_item(item.id, quantity=quantity, chosen_minor=chosen, answers=answers, user_id=user_id, now=now)


def statuses(item) -> list[str]:
    return sorted(db.session.scalars(select(Ticket.status).where(Ticket.item_id == item.id)))


def test_an_order_is_priced_from_the_item_and_holds_its_seats(app_ctx: Flask) -> None:
    item = CatalogItemFactory(capacity=5, price_minor=1250)
    quote = order(item, 3)
    assert (quote.total_minor, quote.currency, quote.user_id) == (3750, "EUR", None)
    line = quote.lines[0]
    assert (line.item_id, line.debt_id, line.quantity, line.principal_minor, line.surcharge_minor) == (
        item.id,
        None,
        3,
        3750,
        0,
    )
    assert statuses(item) == ["held"] * 3
    assert seats_available(item, NOW) == 2
    # Held for 15 minutes: the order expires with its hold.
    assert quote.expires_at == NOW + timedelta(minutes=15)


def test_capacity_is_never_exceeded_and_a_hold_runs_out(app_ctx: Flask) -> None:
    item = CatalogItemFactory(capacity=2)
    order(item, 2)
    with pytest.raises(CheckoutError) as sold_out:
        order(item, 1)
    assert (sold_out.value.code, sold_out.value.details["left"]) == ("sold_out", 0)
    # Nobody paid within the hold: the seats are for sale again.
    later = NOW + timedelta(minutes=16)
    assert seats_available(item, later) == 2
    assert order(item, 2, now=later).total_minor == 3000


def test_asking_for_more_than_is_left_says_how_many_are(app_ctx: Flask) -> None:
    item = CatalogItemFactory(capacity=3)
    order(item, 2)
    with pytest.raises(CheckoutError) as sold_out:
        order(item, 2)
    assert sold_out.value.details["left"] == 1


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"active": False}, "not_on_sale"),
        ({"available_from_delta": timedelta(hours=1)}, "not_on_sale"),
        ({"available_until_delta": timedelta(seconds=0)}, "not_on_sale"),
        ({"requires_account": True}, "account_required"),
    ],
)
def test_items_not_for_sale_to_this_buyer_are_refused(app_ctx: Flask, fields: dict, code: str) -> None:
    if "available_from_delta" in fields:
        fields = {"available_from": NOW + fields.pop("available_from_delta")}
    if "available_until_delta" in fields:
        fields = {"available_until": NOW + fields.pop("available_until_delta")}
    item = CatalogItemFactory(**fields)
    with pytest.raises(CheckoutError) as refused:
        order(item)
    assert refused.value.code == code
    assert db.session.scalar(select(func.count(Ticket.id))) == 0


def test_an_account_only_item_is_sold_to_a_signed_in_citizen(app_ctx: Flask) -> None:
    item = CatalogItemFactory(requires_account=True, kind="permit")
    user = UserFactory()
    quote = order(item, user_id=user.id)
    payment = pay_guest_quote(quote.token, GOOD_CARD, SANDBOX, NOW, user_id=user.id)
    assert (payment.user_id, payment.channel, payment.status) == (user.id, "account", "succeeded")


def test_a_donation_takes_the_payers_amount_within_its_range(app_ctx: Flask) -> None:
    item = donation_item()
    assert order(item, chosen=2050).total_minor == 2050
    for amount, code in ((499, "amount_too_low"), (50001, "amount_too_high"), (None, "amount_missing")):
        with pytest.raises(CheckoutError) as refused:
            order(item, chosen=amount)
        assert refused.value.code == code
    assert db.session.scalar(select(func.count(Ticket.id))) == 0  # a donation holds no seats


def test_paying_issues_the_tickets_and_a_decline_frees_them(app_ctx: Flask) -> None:
    item = CatalogItemFactory(capacity=2)
    quote = order(item, 2)
    with pytest.raises(PaymentDeclined):
        pay_guest_quote(quote.token, DECLINED_CARD, SANDBOX, NOW)
    assert statuses(item) == ["released", "released"]
    assert seats_available(item, NOW) == 2
    # The same order paid again (still within its time) holds the same seats anew and issues them.
    payment = pay_guest_quote(quote.token, GOOD_CARD, SANDBOX, NOW + timedelta(minutes=1))
    assert payment.status == "succeeded" and payment.amount_minor == 3000
    tickets = db.session.scalars(select(Ticket).where(Ticket.item_id == item.id)).all()
    assert [ticket.status for ticket in tickets] == ["issued", "issued"]
    assert {ticket.payment_line_id for ticket in tickets} == {payment.lines[0].id}
    assert len({ticket.code for ticket in tickets}) == 2
    assert seats_available(item, NOW + timedelta(days=1)) == 0  # issued tickets never run out


def test_a_seat_taken_while_the_card_was_declined_is_not_sold_twice(app_ctx: Flask) -> None:
    item = CatalogItemFactory(capacity=1)
    first = order(item)
    with pytest.raises(PaymentDeclined):
        pay_guest_quote(first.token, DECLINED_CARD, SANDBOX, NOW)
    second = order(item)  # someone else takes the freed seat
    pay_guest_quote(second.token, GOOD_CARD, SANDBOX, NOW)
    with pytest.raises(CheckoutError) as sold_out:
        pay_guest_quote(first.token, GOOD_CARD, SANDBOX, NOW)
    assert sold_out.value.code == "sold_out"
    assert statuses(item) == ["issued", "released"]


def paid_tickets(item, quantity: int = 2) -> tuple[Payment, list[Ticket]]:
    payment = pay_guest_quote(order(item, quantity).token, GOOD_CARD, SANDBOX, NOW)
    return payment, list(db.session.scalars(select(Ticket).where(Ticket.item_id == item.id).order_by(Ticket.id)))


def test_a_ticket_is_let_in_once(app_ctx: Flask) -> None:
    item = CatalogItemFactory()
    _, (ticket, _other) = paid_tickets(item)
    door = UserFactory()
    typed = ticket.code.lower().replace("-", " ")  # as typed at the door
    first = use_ticket(typed, [item.agency_id], door.id, NOW)
    assert first.outcome == CHECK_ADMITTED and first.ticket.code == ticket.code
    again = use_ticket(ticket.code, [item.agency_id], door.id, NOW + timedelta(minutes=5))
    assert again.outcome == CHECK_ALREADY_USED
    assert again.ticket.used_at == NOW and again.ticket.used_by_user_id == door.id


def test_the_door_of_another_agency_does_not_know_the_ticket(app_ctx: Flask) -> None:
    item = CatalogItemFactory()
    _, (ticket, _other) = paid_tickets(item)
    elsewhere = AgencyFactory()
    assert use_ticket(ticket.code, [elsewhere.id], UserFactory().id, NOW).outcome == CHECK_UNKNOWN
    assert db.session.get(Ticket, ticket.id).status == "issued"
    assert use_ticket("TK-2222-2222-22", [item.agency_id], UserFactory().id, NOW).outcome == CHECK_UNKNOWN


def test_a_held_or_refunded_ticket_is_not_let_in(app_ctx: Flask) -> None:
    item = CatalogItemFactory()
    order(item)
    held = db.session.scalars(select(Ticket)).one()
    assert use_ticket(held.code, [item.agency_id], UserFactory().id, NOW).outcome == CHECK_NOT_VALID
    payment, tickets = paid_tickets(item)
    refund_payment(
        payment_id=payment.id,
        agency=item.agency,
        amount_minor=payment.amount_minor,
        expected_available_minor=payment.amount_minor,
        reason="Concert cancelled",
        user_id=None,
        now=NOW,
    )
    paid = [ticket for ticket in tickets if ticket.payment_line_id is not None]
    assert len(paid) == 2
    for ticket in paid:
        db.session.refresh(ticket)
        assert ticket.status == "released"
        assert use_ticket(ticket.code, [item.agency_id], UserFactory().id, NOW).outcome == CHECK_NOT_VALID


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("tk7kq2m9xa3f", "TK-7KQ2-M9XA-3F"),
        (" TK-7KQ2-M9XA-3F ", "TK-7KQ2-M9XA-3F"),
        ("tk 7kq2 m9xa 3f", "TK-7KQ2-M9XA-3F"),
    ],
)
def test_ticket_codes_are_read_however_typed(typed: str, code: str) -> None:
    assert normalise_ticket_code(typed) == code


def test_the_erp_books_each_sale_once(app_ctx: Flask) -> None:
    server = erp_server()
    try:
        agency = rest_agency(server)
        item = CatalogItemFactory(agency=agency, code="summer-concert", capacity=10)
        payment = pay_guest_quote(order(item, 2).token, GOOD_CARD, SANDBOX, NOW)
        message = db.session.scalars(select(OutboxMessage).where(OutboxMessage.topic == TOPIC_ERP_SALE_ACK)).one()
        line_id = f"{payment.reference}:{payment.lines[0].id}"
        assert message.payload["item_code"] == "summer-concert" and message.payload["line_id"] == line_id
        # No payment ack: the ERP holds no debt for a ticket.
        assert set(db.session.scalars(select(OutboxMessage.topic))) == {TOPIC_ERP_SALE_ACK}
        assert deliver_due().delivered == 1
        assert deliver_due().handled == 0  # nothing is sent twice
        db.session.refresh(message)
        assert message.status == "delivered"
        sale = server.erp.sold(line_id)
        assert sale is not None and (sale["quantity"], sale["amount_minor"]) == (2, 3000)
    finally:
        server.stop()


@pytest.mark.postgres_only
def test_parallel_buyers_never_oversell(app: Flask, committed_db: None) -> None:
    """Eight buyers press Continue at once for an event with three seats: three get one each."""
    with app.app_context():
        item_id = CatalogItemFactory(capacity=3).id
    buyers = 8
    barrier = threading.Barrier(buyers)
    outcomes: list[str] = []
    lock = threading.Lock()

    def buy() -> None:
        with app.app_context():
            barrier.wait()
            try:
                quote = quote_item(item_id, quantity=1, chosen_minor=None, answers=None, user_id=None, now=NOW)
                pay_guest_quote(quote.token, GOOD_CARD, SANDBOX, NOW)
                outcome = "paid"
            except CheckoutError as error:
                outcome = error.code
            finally:
                db.session.remove()
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=buy) for _ in range(buyers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["paid"] * 3 + ["sold_out"] * 5, outcomes
    with app.app_context():
        issued = db.session.scalar(
            select(func.count(Ticket.id)).where(Ticket.item_id == item_id, Ticket.status == "issued")
        )
        assert issued == 3
        db.session.remove()


@pytest.mark.postgres_only
def test_two_doors_scanning_one_ticket_at_once_let_it_in_once(app: Flask, committed_db: None) -> None:
    with app.app_context():
        item = CatalogItemFactory()
        payment = pay_guest_quote(order(item).token, GOOD_CARD, SANDBOX, NOW)
        assert payment.status == "succeeded"
        code = db.session.scalars(select(Ticket.code)).one()
        agency_id, doors = item.agency_id, [UserFactory().id, UserFactory().id]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def scan(door: int) -> None:
        with app.app_context(), unit_of_work():  # each door's scan is a request of its own
            barrier.wait()
            outcomes.append(use_ticket(code, [agency_id], door, NOW).outcome)

    threads = [threading.Thread(target=scan, args=(door,)) for door in doors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == [CHECK_ADMITTED, CHECK_ALREADY_USED]


def test_a_file_erp_gets_a_sales_csv_once(app_ctx: Flask, tmp_path) -> None:
    from app.db import utcnow
    from app.outbox.services import enqueue

    options = {"path": str(tmp_path / "export.csv"), "ack_folder": str(tmp_path / "acks")}
    agency = AgencyFactory(code="files", connector={"type": "file", "options": options})
    payload = {
        "line_id": "CP-X:7",
        "payment_reference": "CP-X",
        "item_code": "summer-concert",
        "quantity": 2,
        "amount_minor": 3000,
        "currency": "EUR",
        "paid_at": "2026-03-01T10:00:00+00:00",
    }
    for key in ("first", "again"):  # the same sale queued twice (a replay) is written once
        enqueue(topic=TOPIC_ERP_SALE_ACK, key=key, payload=payload, agency_id=agency.id, now=utcnow())
    db.session.commit()
    deliver_due(now=utcnow())
    assert [m.status for m in db.session.scalars(select(OutboxMessage))] == ["delivered", "delivered"]
    (written,) = (tmp_path / "acks").glob("sales-*.csv")
    assert written.read_text(encoding="utf-8-sig").splitlines() == [
        "line_id;payment_reference;item_code;quantity;amount;currency;paid_at",
        "CP-X:7;CP-X;summer-concert;2;30,00;EUR;2026-03-01T10:00:00+00:00",
    ]


def test_a_connector_that_cannot_take_sales_leaves_a_dead_letter_that_says_what_to_do(
    app_ctx: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.db import utcnow
    from app.erp_writeback import handlers as erp_writeback
    from app.outbox.services import enqueue

    class PaymentsOnlyConnector:
        def acknowledge(self, ack: object) -> None:  # pragma: no cover - not called here
            raise AssertionError("a sale is not a payment of a debt")

    monkeypatch.setattr(erp_writeback, "build_connector", lambda agency: PaymentsOnlyConnector())
    agency = AgencyFactory(code="legacy")
    enqueue(topic=TOPIC_ERP_SALE_ACK, key="k", payload={"line_id": "CP-X:7"}, agency_id=agency.id, now=utcnow())
    db.session.commit()
    deliver_due(now=utcnow())
    message = db.session.scalars(select(OutboxMessage)).one()
    assert message.status == "dead"
    assert "cannot take sales: book sale CP-X:7 in the ERP by hand" in (message.last_error or "")


def test_the_demo_erp_refuses_a_sale_that_changed(app_ctx: Flask) -> None:
    from erp_connectors.base import AckRejected
    from erp_connectors.demo import DemoERP

    erp = DemoERP("eastcoast", debtors=1)
    sale = {"line_id": "CP-Y:1", "item_code": "x", "quantity": 1, "amount_minor": 500}
    assert erp.record_sale(sale) is True
    assert erp.record_sale(sale) is False  # the same sale again: already booked
    with pytest.raises(AckRejected, match="already recorded with other details"):
        erp.record_sale({**sale, "amount_minor": 600})
    with pytest.raises(AckRejected, match="not a positive whole number"):
        erp.record_sale({**sale, "line_id": "CP-Y:2", "amount_minor": 0})


@pytest.mark.postgres_only
def test_baskets_naming_items_in_opposite_orders_never_deadlock(app: Flask, committed_db: None) -> None:
    """Items are locked in id order however a basket lists them: six buyers, three seats, no deadlock."""
    from app.checkout.services import ItemOrder, quote_items

    with app.app_context():
        first = CatalogItemFactory(capacity=3)
        second = CatalogItemFactory(agency=first.agency, capacity=3)
        ids = (first.id, second.id)
    buyers = 6
    barrier = threading.Barrier(buyers)
    outcomes: list[str] = []

    def buy(number: int) -> None:
        order = list(ids) if number % 2 else list(reversed(ids))
        with app.app_context():
            barrier.wait()
            try:
                quote = quote_items([ItemOrder(item_id) for item_id in order], user_id=None, now=NOW)
                pay_guest_quote(quote.token, GOOD_CARD, SANDBOX, NOW)
                outcomes.append("paid")
            except CheckoutError as error:
                outcomes.append(error.code)
            except Exception as error:
                outcomes.append(type(error).__name__)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=buy, args=(number,)) for number in range(buyers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["paid"] * 3 + ["sold_out"] * 3, outcomes


def test_each_paid_line_gets_the_tickets_of_its_own_order_line(app_ctx: Flask) -> None:
    """One item twice in an order (two lines, two names): each line's tickets carry that line's answers."""
    from app.checkout.services import ItemOrder, quote_items

    item = CatalogItemFactory(
        capacity=10, questions=[{"key": "holder", "label_el": "Όνομα", "label_en": "Name", "required": True}]
    )
    db.session.commit()
    quote = quote_items(
        [ItemOrder(item.id, 2, None, {"holder": "Anna"}), ItemOrder(item.id, 1, None, {"holder": "Nikos"})],
        user_id=None, now=NOW,
    )  # fmt: skip
    payment = pay_guest_quote(quote.token, GOOD_CARD, SANDBOX, NOW)
    by_line = {line.id: line.answers["holder"] for line in payment.lines}
    issued = db.session.scalars(select(Ticket).where(Ticket.status == "issued")).all()
    assert sorted(by_line[ticket.payment_line_id] for ticket in issued) == ["Anna", "Anna", "Nikos"]
