"""Tests for the REST connector, over real HTTP on loopback: the demo ERP server, and small scripted ERPs."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import pytest

from erp_connectors.base import (
    AckRejected,
    DebtRecord,
    ERPConnector,
    InstallmentRecord,
    PaymentAck,
    RecordError,
    record_to_dict,
)
from erp_connectors.demo.server import DemoERPServer
from erp_connectors.rest import RestConnector, rest_connector_factory

AS_OF = date(2026, 3, 1)
MARIA_TAX_ID = "147382606"
#: a valid AFM (stem 12345678 plus its check digit)
VALID_AFM = "123456783"
#: quick to give up, so that failure tests take fractions of a second
FAST = {"timeout": (1.0, 0.3), "retries": 2, "backoff_factor": 0}


@pytest.fixture
def server() -> Iterator[DemoERPServer]:
    """A demo ERP of 120 eastcoast debtors (about 300 debts) with its own seed."""
    with DemoERPServer("eastcoast", debtors=120, seed=5_001, as_of=AS_OF) as running:
        yield running
    running.erp.clear_acknowledgements()


def connect(server: DemoERPServer | ScriptedERP, **options: Any) -> RestConnector:
    """A REST connector to a local server with the given options."""
    return RestConnector("eastcoast", base_url=server.url, **options)


def records_of(server: DemoERPServer, **kwargs: Any) -> list[DebtRecord]:
    """What the server's DemoERP holds, straight from Python."""
    return list(server.erp.iter_debts(**kwargs))  # type: ignore[arg-type]


# -- the demo ERP over HTTP -----------------------------------------------------------------------


def test_a_full_stream_is_the_demo_erps_records_in_order(server: DemoERPServer) -> None:
    connector = connect(server, page_size=40)
    assert isinstance(connector, ERPConnector) and connector.supports_changed_since
    received = list(connector.iter_debts())
    expected = records_of(server)
    assert received == expected
    assert len(expected) > 200
    assert server.requests_served == -(-len(expected) // 40), "one request per page, no empty last page"


def test_changed_since_asks_the_erp_for_changes_only(server: DemoERPServer) -> None:
    since = datetime(2026, 2, 20, 8, 0, tzinfo=timezone(timedelta(hours=2)))
    received = list(connect(server, page_size=10).iter_debts(since))
    assert received == records_of(server, changed_since=since)
    assert 0 < len(received) < len(records_of(server))
    with pytest.raises(ValueError, match="timezone-aware"):
        connect(server).iter_debts(datetime(2026, 2, 20, 6, 0))


def test_a_slow_erp_is_a_connection_error_within_the_retry_budget(server: DemoERPServer) -> None:
    server.delay_seconds = 5
    connector = connect(server, **FAST)
    started = time.monotonic()
    with pytest.raises(ConnectionError) as caught:
        list(connector.iter_debts())
    elapsed = time.monotonic() - started
    assert str(caught.value) == (
        f"The ERP at 127.0.0.1:{server.port} did not answer GET /debts within 0.3 seconds (3 attempts)."
    )
    # Three attempts of 0.3 s each and no backoff: well under a second, nowhere near the server's 5 s.
    assert 0.85 <= elapsed < 2.0
    assert server.requests_served == 3


def test_passing_5xx_answers_are_retried(server: DemoERPServer) -> None:
    server.fail_next(2, status=503)
    connect(server, **FAST).check()
    assert server.requests_served == 3


def test_a_crawl_survives_a_failure_between_pages(server: DemoERPServer) -> None:
    stream = connect(server, page_size=50, **FAST).iter_debts()
    received = [next(stream)]
    server.fail_next(2, status=500)
    received.extend(stream)
    assert received == records_of(server)


def test_persistent_5xx_is_a_connection_error_naming_the_status(server: DemoERPServer) -> None:
    server.fail_next(10, status=500)
    with pytest.raises(ConnectionError, match=r"kept failing \(HTTP 500\) for GET /debts after 3 attempts"):
        list(connect(server, **FAST).iter_debts())
    assert server.requests_served == 3


def test_backoff_waits_between_attempts(server: DemoERPServer) -> None:
    server.fail_next(10, status=502)
    started = time.monotonic()
    with pytest.raises(ConnectionError, match="HTTP 502"):
        connect(server, retries=2, backoff_factor=0.2).check()
    # urllib3 retries the first time at once, then waits backoff_factor * 2 = 0.4 s.
    assert 0.35 <= time.monotonic() - started < 1.5


def test_an_erp_that_is_down_fails_the_check(server: DemoERPServer) -> None:
    server.go_down()
    with pytest.raises(ConnectionError, match=r"HTTP 503"):
        connect(server, **FAST).check()
    server.come_back()
    connect(server, **FAST).check()


def test_nobody_listening_is_a_connection_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    connector = RestConnector("eastcoast", base_url=f"http://127.0.0.1:{port}", **FAST)  # type: ignore[arg-type]
    with pytest.raises(ConnectionError, match=f"The ERP at 127.0.0.1:{port} could not be reached for GET /health"):
        connector.check()


@pytest.mark.parametrize("auth", [None, {"type": "bearer", "token": "not-the-token"}])
def test_refused_credentials_are_a_connection_error(auth: dict[str, str] | None) -> None:
    with DemoERPServer("eastcoast", token="s3cret-erp-token", as_of=AS_OF) as server:
        connector = connect(server, auth=auth, **FAST)
        with pytest.raises(ConnectionError) as caught:
            list(connector.iter_debts())
        assert str(caught.value) == (
            "The ERP refused our credentials (HTTP 401) for GET /debts; check the connector's token or password."
        )
        assert server.requests_served == 1, "a refusal is not retried"
        right = connect(server, auth={"type": "bearer", "token": "s3cret-erp-token"})
        assert list(right.iter_debts()) == records_of(server)


def test_secrets_never_show_in_repr() -> None:
    bearer = RestConnector("eastcoast", base_url="https://erp.example.gov/api", auth={"type": "bearer", "token": "T0K"})
    basic = RestConnector(
        "eastcoast", base_url="https://erp.example.gov", auth={"type": "basic", "username": "cp", "password": "PW9"}
    )
    assert repr(bearer) == "RestConnector('eastcoast', base_url='https://erp.example.gov/api/', auth='bearer')"
    for connector in (bearer, basic):
        assert "T0K" not in repr(connector) and "PW9" not in repr(connector)
        assert "T0K" not in repr(connector._session.auth) and "PW9" not in repr(connector._session.auth)


def test_fetch_debtor_returns_their_current_debts(server: DemoERPServer) -> None:
    connector = connect(server)
    assert connector.fetch_debtor("GR", MARIA_TAX_ID) == server.erp.fetch_debtor("GR", MARIA_TAX_ID)
    generated = records_of(server)[-1]
    assert connector.fetch_debtor("GR", generated.tax_id) == server.erp.fetch_debtor("GR", generated.tax_id)
    assert connector.fetch_debtor("GR", VALID_AFM) == []


# -- payment acknowledgements ---------------------------------------------------------------------


def paying(record: DebtRecord, line: str = "CP-REST:1", **changes: Any) -> PaymentAck:
    """A payment line paying what is left of a debt."""
    ack = PaymentAck(
        line_id=line,
        payment_reference="CP-REST",
        external_id=record.external_id,
        installment_number=None,
        principal_minor=record.outstanding_minor,
        surcharge_minor=730,
        currency="EUR",
        paid_at=datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
    )
    return replace(ack, **changes)


def test_an_ack_is_recorded_once_and_the_debt_then_shows_paid(server: DemoERPServer) -> None:
    connector = connect(server)
    debt = connector.fetch_debtor("GR", MARIA_TAX_ID)[0]
    assert isinstance(debt, DebtRecord) and debt.status == "open"
    connector.acknowledge(paying(debt))
    connector.acknowledge(paying(debt))  # the ERP answers 409: already recorded, which is done
    assert server.erp.ack_count == 1 and server.erp.acknowledged("CP-REST:1")
    now = connector.fetch_debtor("GR", MARIA_TAX_ID)[0]
    assert isinstance(now, DebtRecord)
    assert (now.status, now.paid_minor) == ("paid", debt.principal_minor)
    assert now in list(connector.iter_debts(changed_since=datetime.now(UTC) - timedelta(minutes=5)))


def test_an_ack_the_erp_refuses_raises_ack_rejected_with_its_message(server: DemoERPServer) -> None:
    connector = connect(server)
    debt = connector.fetch_debtor("GR", MARIA_TAX_ID)[0]
    assert isinstance(debt, DebtRecord)
    with pytest.raises(AckRejected, match="The ERP has no debt with the id EC-5001-999999."):
        connector.acknowledge(paying(debt, external_id="EC-5001-999999"))
    with pytest.raises(AckRejected, match="installment 2 does not exist"):
        connector.acknowledge(paying(debt, installment_number=2))
    assert server.erp.ack_count == 0


def test_an_ack_to_an_erp_that_is_down_is_a_connection_error(server: DemoERPServer) -> None:
    debt = records_of(server)[0]
    server.go_down()
    with pytest.raises(ConnectionError, match=r"kept failing \(HTTP 503\) for POST /payments after 3 attempts"):
        connect(server, **FAST).acknowledge(paying(debt))
    server.come_back()
    assert server.erp.ack_count == 0


def test_an_ack_is_retried_after_a_5xx(server: DemoERPServer) -> None:
    # Safe because the ERP de-duplicates by line id; here the first answer is lost to a 502.
    server.fail_next(1, status=502)
    connect(server, **FAST).acknowledge(paying(records_of(server)[1]))
    assert server.erp.ack_count == 1 and server.requests_served == 2


# -- pagination styles, against small scripted ERPs -----------------------------------------------

Answer = tuple[int, Any]


class ScriptedERP:
    """A tiny stdlib HTTP server whose answers come from a function of (path, query); some vendor's ERP."""

    def __init__(self, answer: Callable[[str, dict[str, str]], Answer]) -> None:
        self.answer = answer
        self.requests: list[tuple[str, dict[str, str]]] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
                scripted.requests.append((parts.path, query))
                status, body = scripted.answer(parts.path, query)
                data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> Self:
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture(scope="module")
def seven() -> list[DebtRecord]:
    """Seven valid demo debts."""
    with DemoERPServer("mountvalley", debtors=3, seed=5_002, as_of=AS_OF) as demo:
        return records_of(demo)[:7]


def test_cursor_pagination_follows_a_nested_cursor(seven: list[DebtRecord]) -> None:
    def answer(path: str, query: dict[str, str]) -> Answer:
        start = int(query.get("after", 0))
        size = int(query["limit"])
        following = start + size if start + size < len(seven) else None
        items = [record_to_dict(r) for r in seven[start : start + size]]
        return 200, {"data": items, "meta": {"next": following}}

    pagination = {
        "style": "cursor", "items": "data", "cursor_field": "meta.next", "cursor_param": "after", "size_param": "limit"
    }  # fmt: skip
    with ScriptedERP(answer) as erp:
        connector = connect(erp, page_size=3, pagination=pagination, changed_since_param="since")
        assert list(connector.iter_debts(datetime(2026, 1, 1, tzinfo=UTC))) == seven
    assert [query.get("after") for _, query in erp.requests] == [None, "3", "6"]
    assert all(query["since"] == "2026-01-01T00:00:00+00:00" and query["limit"] == "3" for _, query in erp.requests)


def test_page_pagination_stops_at_the_first_empty_page(seven: list[DebtRecord]) -> None:
    def answer(path: str, query: dict[str, str]) -> Answer:
        page, size = int(query["p"]), int(query["per_page"])
        return 200, {"results": [record_to_dict(r) for r in seven[(page - 1) * size : page * size]]}

    pagination = {"style": "page", "items": "results", "page_param": "p", "size_param": "per_page"}
    with ScriptedERP(answer) as erp:
        assert list(connect(erp, page_size=2, pagination=pagination).iter_debts()) == seven
    assert [query["p"] for _, query in erp.requests] == ["1", "2", "3", "4", "5"]


def test_next_links_may_be_absolute(seven: list[DebtRecord]) -> None:
    def answer(path: str, query: dict[str, str]) -> Answer:
        start = int(query.get("from", 0))
        following = f"{erp.url}/v2/debts?from={start + 4}" if start + 4 < len(seven) else None
        return 200, {"page": {"rows": [record_to_dict(r) for r in seven[start : start + 4]], "next_url": following}}

    pagination = {"style": "next_link", "items": "page.rows", "next": "page.next_url", "size_param": None}
    with ScriptedERP(answer) as erp:
        connector = connect(erp, pagination=pagination, paths={"debts": "/v2/debts"})
        assert list(connector.iter_debts()) == seven
    assert erp.requests == [("/v2/debts", {}), ("/v2/debts", {"from": "4"})]


def test_a_base_url_with_a_path_keeps_it() -> None:
    with ScriptedERP(lambda path, query: (200, {"items": [], "next": None, "seen": path})) as erp:
        connector = RestConnector("eastcoast", base_url=erp.url + "/erp/api")
        assert list(connector.iter_debts()) == []
        connector.check()
    assert [path for path, _ in erp.requests] == ["/erp/api/debts", "/erp/api/health"]


@pytest.mark.parametrize(
    ("answer", "pagination", "message"),
    [
        (lambda p, q: (200, {"items": [], "next": "/debts?again=1"}), None, "same next page twice"),
        (lambda p, q: (200, {"items": [{"x": 1}]}), {"style": "page"}, "same page twice"),
        (lambda p, q: (200, b"<html>maintenance</html>"), None, "is not JSON"),
        (lambda p, q: (200, {"debts": []}), None, "has no list of debts at 'items'"),
        (lambda p, q: (404, {"message": "No such route."}), None, "answered HTTP 404 to GET /debts: No such route."),
    ],
)
def test_answers_that_are_not_pages_stop_the_stream_with_a_sentence(
    answer: Callable[[str, dict[str, str]], Answer], pagination: dict[str, Any] | None, message: str
) -> None:
    with ScriptedERP(answer) as erp, pytest.raises(ConnectionError, match=message):
        list(connect(erp, pagination=pagination).iter_debts())


def test_a_debtor_the_erp_does_not_know_is_an_empty_list() -> None:
    with ScriptedERP(lambda path, query: (404, {"message": "Unknown debtor."})) as erp:
        assert connect(erp).fetch_debtor("GR", VALID_AFM) == []
    assert erp.requests == [(f"/debtors/GR/{VALID_AFM}/debts", {"page_size": "500"})]


# -- field mapping --------------------------------------------------------------------------------

#: how a fictional vendor ERP names things: nested debtor, euros as text, Greek categories, day-first dates
VENDOR_OPTIONS: dict[str, Any] = {
    "mapping": {
        "external_id": "id",
        "tax_id": "debtor.afm",
        "debtor_name": "debtor.name",
        "category": "stage",
        "kind": "type",
        "description": "title",
        "principal_minor": "amount",
        "paid_minor": "paid",
        "due_date": "due",
        "rf_reference": "rf",
        "installments": "schedule",
        "status": "state",
        "contact_email": "debtor.email",
        "updated_at": "modified",
    },
    "installment_mapping": {"number": "no", "due_date": "due", "amount_minor": "amount", "paid_minor": "paid"},
    "amount_format": "decimal_string",
    "date_format": "%d/%m/%Y",
    "category_values": {"ΒΕΒΑΙΩΜΕΝΗ": "certified", "ΡΥΘΜΙΣΗ": "settled", "ΑΒΕΒΑΙΩΤΗ": "uncertified"},
    "status_values": {"ΑΝΟΙΧΤΗ": "open", "ΕΞΟΦΛΗΜΕΝΗ": "paid"},
    "defaults": {"tax_country": "GR", "currency": "EUR"},
}


def vendor_item(**changes: Any) -> dict[str, Any]:
    """One settled debt as the vendor ERP sends it."""
    item: dict[str, Any] = {
        "id": 48213,
        "debtor": {"afm": VALID_AFM, "name": "Ελένη Γεωργίου", "email": "eleni@example.org"},
        "stage": "ΡΥΘΜΙΣΗ",
        "type": "property_fee",
        "title": "Ρύθμιση ΤΑΠ σε 2 δόσεις",
        "amount": "1234.56",
        "paid": "617.28",
        "due": "31/01/2026",
        "rf": "RF18 5390 0754 7034",
        "schedule": [
            {"no": 1, "due": "31/01/2026", "amount": "617.28", "paid": "617.28"},
            {"no": 2, "due": "02/03/2026", "amount": "617.28", "paid": "0.00"},
        ],
        "state": "ΑΝΟΙΧΤΗ",
        "modified": "2026-02-27T08:30:00+02:00",
    }
    item.update(changes)
    return item


VENDOR_RECORD = DebtRecord(
    external_id="48213",
    tax_id=VALID_AFM,
    tax_country="GR",
    debtor_name="Ελένη Γεωργίου",
    category="settled",
    kind="property_fee",
    description="Ρύθμιση ΤΑΠ σε 2 δόσεις",
    principal_minor=123_456,
    paid_minor=61_728,
    currency="EUR",
    due_date=date(2026, 1, 31),
    rf_reference="RF18539007547034",
    installments=(
        InstallmentRecord(1, date(2026, 1, 31), 61_728, 61_728),
        InstallmentRecord(2, date(2026, 3, 2), 61_728, 0),
    ),
    status="open",
    contact_email="eleni@example.org",
    updated_at=datetime(2026, 2, 27, 6, 30, tzinfo=UTC),
)


def test_a_vendor_format_is_mapped_by_configuration_alone() -> None:
    broken = vendor_item(amount=1234.56)
    items = [vendor_item(), broken, vendor_item(id="48214")]
    with ScriptedERP(lambda path, query: (200, {"items": items, "next": None})) as erp:
        received = list(connect(erp, **VENDOR_OPTIONS).iter_debts())
    assert received[0] == VENDOR_RECORD
    assert isinstance(received[1], RecordError) and received[1].raw == broken
    assert received[2] == replace(VENDOR_RECORD, external_id="48214"), "a bad item does not stop the stream"


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (vendor_item(debtor={"name": "Ελένη Γεωργίου"}), "The field 'debtor.afm' (the tax id) is missing."),
        (vendor_item(due=None), "The field 'due' (the due date) is missing."),
        (vendor_item(amount="12,50"), "The amount '12,50' in 'amount' is not a decimal number like \"1234.56\"."),
        (vendor_item(amount="about 12"), "is not a decimal number"),
        (vendor_item(amount=1234.56), "is a JSON number with a fraction"),
        (vendor_item(amount="1234.567"), "has more than 2 decimal places"),
        (vendor_item(amount=True), "should be a number, not True"),
        (vendor_item(due="2026-01-31"), "The field 'due' should be a date like 31/03/2026, not '2026-01-31'."),
        (vendor_item(modified="2026-02-27T08:30:00"), "'modified' should be a date and time with its UTC offset"),
        (vendor_item(stage="ΑΓΝΩΣΤΗ"), "The category 'ΑΓΝΩΣΤΗ' is unknown"),
        (vendor_item(debtor={"afm": "123456789", "name": "Ε"}), "AFM) 123456789 fails its check digit"),
        (vendor_item(debtor={"afm": 123456783, "name": "Ε"}), "'debtor.afm' (the tax id) should be text"),
        (vendor_item(rf="RF17 5390 0754 7034"), "'RF17539007547034' is not a valid ISO 11649"),
        (vendor_item(schedule="two installments"), "'schedule' (the installments) should be a list"),
        (vendor_item(schedule=[{"no": 1, "due": "31/01/2026"}]), "'schedule[1].amount' (the installment amount)"),
        (vendor_item(paid="1300.00"), "exceeds the principal"),
    ],
)
def test_every_item_that_cannot_be_mapped_is_a_record_error_carrying_it(item: dict[str, Any], reason: str) -> None:
    connector = RestConnector("eastcoast", base_url="http://127.0.0.1:9", **VENDOR_OPTIONS)
    result = connector.map_item(item)
    assert isinstance(result, RecordError)
    assert reason in result.reason
    assert result.raw is item


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"principal_minor": 186.4}, "is a JSON number with a fraction"),
        ({"principal_minor": "18640"}, None),
        ({"principal_minor": "186.40"}, "is not a whole number of minor units"),
        ({"external_id": None}, "The field 'external_id' (the debt's id) is missing."),
        ({"category": "overdue"}, "The category 'overdue' is unknown"),
    ],
)
def test_minor_units_are_whole_numbers(changes: dict[str, Any], reason: str | None) -> None:
    record = DebtRecord(
        external_id="EC-1", tax_id=VALID_AFM, tax_country="GR", debtor_name="Ελένη", category="certified",
        kind="property_fee", description="ΤΑΠ", principal_minor=18_640, paid_minor=0, currency="EUR",
        due_date=date(2026, 1, 31),
    )  # fmt: skip
    result = RestConnector("eastcoast", base_url="http://127.0.0.1:9").map_item({**record_to_dict(record), **changes})
    if reason is None:
        assert result == record
    else:
        assert isinstance(result, RecordError) and reason in result.reason


def test_an_item_that_is_not_an_object_is_a_record_error() -> None:
    result = RestConnector("eastcoast", base_url="http://127.0.0.1:9").map_item(["EC-1", 100])
    assert isinstance(result, RecordError) and "not a JSON object" in result.reason


# -- building from options ------------------------------------------------------------------------


def test_the_factory_builds_from_json_options(server: DemoERPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EASTCOAST_ERP_TOKEN", "from-the-environment")
    options = json.loads(
        json.dumps(
            {
                "base_url": server.url,
                "auth": {"type": "bearer", "token_env": "EASTCOAST_ERP_TOKEN"},
                "timeout": [2, 5],
                "retries": 1,
                "page_size": 100,
            }
        )
    )
    connector = rest_connector_factory("eastcoast", options)
    assert (connector.timeout, connector.retries, connector.page_size) == ((2.0, 5.0), 1, 100)
    server.token = "from-the-environment"
    assert list(connector.iter_debts()) == records_of(server)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "needs the option 'base_url'"),
        ({"base_url": "erp.example.gov"}, "must be an http(s) URL"),
        ({"base_url": "https://erp", "base_ur": "x"}, "has no option 'base_ur'"),
        ({"base_url": "https://erp", "pagination": {"style": "offset"}}, "pagination style 'offset' is unknown"),
        ({"base_url": "https://erp", "pagination": {"style": "page", "next": "n"}}, "page pagination has no setting"),
        ({"base_url": "https://erp", "auth": {"type": "oauth"}}, "authentication type 'oauth' is unknown"),
        ({"base_url": "https://erp", "auth": "Bearer abc"}, "auth must be an object"),
        ({"base_url": "https://erp", "minor_unit_digits": 2.5}, "minor_unit_digits must be 0 to 4"),
        ({"base_url": "https://erp", "auth": {"type": "bearer"}}, "needs a 'token' (or 'token_env')"),
        ({"base_url": "https://erp", "auth": {"type": "bearer", "token_env": "CP_NOT_SET_ANYWHERE"}}, "is not set"),
        ({"base_url": "https://erp", "mapping": {"afm": "debtor.afm"}}, "mapping names unknown fields: afm"),
        ({"base_url": "https://erp", "amount_format": "float"}, "amount format 'float' is unknown"),
        ({"base_url": "https://erp", "timeout": 0}, "timeout must be seconds > 0"),
        ({"base_url": "https://erp", "page_size": 0}, "page_size must be a whole number >= 1"),
        ({"base_url": "https://erp", "paths": {"debtor": "/debtors/{tax_id}"}}, "must contain {country} and {tax_id}"),
    ],
)
def test_bad_options_are_refused_with_a_sentence(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        rest_connector_factory("eastcoast", options)
    assert message in str(caught.value)
