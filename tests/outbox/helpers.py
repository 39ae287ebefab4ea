"""Helpers shared by the outbox tests (and others): the demo ERP over HTTP, debts it knows, payments of them."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

from app.agencies.models import Agency
from app.checkout.payment_flow import pay_quote
from app.checkout.services import quote_debts
from app.debts.models import Debt, Debtor
from app.payments.models import Payment
from app.payments.providers import CardDetails, get_provider
from erp_connectors.base import DebtRecord
from erp_connectors.demo.server import DemoERPServer
from tests.factories import AgencyFactory, DebtFactory

NOW = datetime(2026, 3, 1, 10, tzinfo=UTC)
#: The demo ERP's calendar, fixed so its data (amounts paid, statuses) never drifts with the date.
ERP_AS_OF = date(2026, 3, 1)
GOOD_CARD = CardDetails(number="4242424242424242", exp_month=12, exp_year=2030, cvc="123", holder="M P")
DECLINED_CARD = CardDetails(number="4000000000000002", exp_month=12, exp_year=2030, cvc="123", holder="M P")
SANDBOX = get_provider("sandbox")


class RecordingERPServer(DemoERPServer):
    """The demo ERP server, also noting every payment line POSTed to it and the status it answered.

    It overrides the server's single request hook, ``_answer``, so failed and repeated requests are
    counted too; the ERP's own book (``erp.acknowledged``, ``erp.ack_count``) says what was recorded.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: (line_id, HTTP status) per POST /payments, in arrival order
        self.posts: list[tuple[str | None, int]] = []
        self._fail_posts: set[int] = set()
        self._posts_lock = threading.Lock()

    def fail_posts(self, *numbers: int) -> None:
        """Answer the given POSTs from now (1 = the next one) with HTTP 500, the others normally."""
        with self._posts_lock:
            seen = len(self.posts)
            self._fail_posts = {seen + number for number in numbers}

    def _answer(self, method: str, target: str, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        is_ack = method == "POST" and target.split("?")[0].rstrip("/") == "/payments"
        if not is_ack:
            return super()._answer(method, target, headers, body)
        try:
            line_id = json.loads(body)["line_id"]
        except (ValueError, KeyError, TypeError):
            line_id = None
        with self._posts_lock:
            number = len(self.posts) + 1
            self.posts.append((line_id, 0))
            failing = number in self._fail_posts
        if failing:
            status, payload = 500, {"message": "The test told the demo ERP to fail this line."}
        else:
            status, payload = super()._answer(method, target, headers, body)
        with self._posts_lock:
            self.posts[number - 1] = (line_id, status)
        return status, payload

    def post_counts(self) -> Counter[str | None]:
        """How many times each line id was POSTed, whatever the answer."""
        return Counter(line_id for line_id, _ in self.posts)

    def recorded_counts(self) -> Counter[str | None]:
        """How many times each line id was newly recorded (HTTP 201): once is right."""
        return Counter(line_id for line_id, status in self.posts if status == 201)


def erp_server(agency_code: str = "eastcoast", debtors: int = 25) -> RecordingERPServer:
    """A started demo ERP server whose in-process book of acknowledgements starts empty."""
    server = RecordingERPServer(agency_code, debtors=debtors, as_of=ERP_AS_OF)
    # The book is shared by every DemoERP of this agency and seed in the process: start clean.
    server.erp.clear_acknowledgements()
    return server.start()


def rest_agency(server: DemoERPServer, **overrides: Any) -> Agency:
    """The agency of this ERP, talking to it over HTTP; no connector-level retries, so the outbox's show."""
    options = {"base_url": server.url, "retries": 0, "timeout": [2, 5]}
    return AgencyFactory(code=server.erp.agency_code, connector={"type": "rest", "options": options}, **overrides)


def open_erp_records(server: DemoERPServer, count: int) -> list[DebtRecord]:
    """The first ``count`` open, unsettled debts of the ERP that still owe something."""
    records = [
        record
        for record in server.erp.iter_debts()
        if isinstance(record, DebtRecord)
        and record.status == "open"
        and record.category != "settled"
        and record.outstanding_minor > 0
    ]
    assert len(records) >= count, f"the demo ERP has only {len(records)} suitable debts"
    return records[:count]


def debts_known_to_erp(agency: Agency, debtor: Debtor, records: list[DebtRecord]) -> list[Debt]:
    """Portal copies of the ERP's debts, owned by one test debtor (the ERP checks ids and amounts only)."""
    return [
        DebtFactory(
            agency=agency,
            debtor=debtor,
            external_id=record.external_id,
            category=record.category,
            kind=record.kind,
            currency=record.currency,
            principal_minor=record.principal_minor,
            paid_minor=record.paid_minor,
            due_date=date(2026, 1, 31),
        )
        for record in records
    ]


def pay(user_id: int, debts: list[Debt], card: CardDetails = GOOD_CARD) -> Payment:
    """Quote and pay these debts by card, as the checkout does."""
    quote = quote_debts(user_id, [f"d{debt.id}" for debt in debts], NOW)
    return pay_quote(user_id, quote.token, card, SANDBOX, NOW)
