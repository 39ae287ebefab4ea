"""The examples in docs/ run: each is taken from the page as written and exercised here."""

from __future__ import annotations

import re
import types
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from app import events
from app.checkout.payment_flow import pay_quote
from app.checkout.services import quote_debts
from app.extensions import db
from app.outbox import services as outbox
from app.outbox.models import OutboxMessage
from app.payments.providers import CardDetails, get_provider
from tests.factories import DebtFactory, DebtorFactory, UserFactory, link

DOCS = Path(__file__).resolve().parent.parent / "docs"
NOW = datetime(2026, 3, 1, 10, tzinfo=UTC)
CARD = CardDetails(number="4242424242424242", exp_month=12, exp_year=2030, cvc="123", holder="M P")


def example(page: str, name: str) -> str:
    """The Python block that follows ``<!-- example: NAME`` on a page of docs/."""
    text = (DOCS / page).read_text(encoding="utf-8")
    found = re.search(rf"<!-- example: {re.escape(name)}\b.*?-->\s*```python\n(.*?)```", text, re.S)
    assert found, f"docs/{page} has no example {name!r}"
    return found.group(1)


@pytest.fixture()
def sms_receipts(app_ctx: Flask) -> Iterator[types.ModuleType]:
    """The architecture page's SMS-receipt capability, registered for this test only."""
    module = types.ModuleType("sms_receipt_example")
    exec(compile(example("architecture.md", "sms-receipt"), "docs/architecture.md", "exec"), module.__dict__)
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(outbox, "_TOPICS", dict(outbox._TOPICS))
    module.register()
    try:
        yield module
    finally:
        events.payment_succeeded.disconnect(module.queue_sms_receipt)
        monkeypatch.undo()


def test_the_documented_capability_hears_of_a_payment_and_its_message_is_delivered(
    sms_receipts: types.ModuleType,
) -> None:
    debtor, user = DebtorFactory(), UserFactory()
    link(user, debtor)
    debt = DebtFactory(debtor=debtor, principal_minor=5000, due_date=date(2026, 4, 30))
    quote = quote_debts(user.id, [f"d{debt.id}"], NOW)
    payment = pay_quote(user.id, quote.token, CARD, get_provider("sandbox"), NOW)

    message = db.session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "sms_receipt")).one()
    assert message.key == f"sms_receipt:{payment.reference}"
    assert sms_receipts.SENT == []  # nothing reaches the outside before the worker runs
    outbox.deliver_due(limit=50)  # due since the payment's completion time (the clock's now)
    assert [payment.reference] == sms_receipts.SENT
    assert db.session.get(OutboxMessage, message.id).status == "delivered"


def test_the_documented_deliverer_gives_up_on_a_message_without_a_payment(sms_receipts: types.ModuleType) -> None:
    outbox.enqueue(topic="sms_receipt", key="sms_receipt:none", payload={}, agency_id=None, now=NOW)
    db.session.commit()
    assert outbox.deliver_due(limit=50, now=NOW).dead == 1
    message = db.session.scalars(select(OutboxMessage).where(OutboxMessage.key == "sms_receipt:none")).one()
    assert message.last_error == "The message names no payment."


def test_every_event_of_the_code_is_in_the_documented_table() -> None:
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    assert all(f"| `{name}` |" in text for name in events.ALL)
