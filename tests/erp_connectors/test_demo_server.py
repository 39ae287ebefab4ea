"""Tests for the demo ERP's HTTP server: its REST contract and the hooks that make it slow, fail or go down."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from erp_connectors.base import DebtRecord, PaymentAck, payment_ack_to_dict, record_to_dict
from erp_connectors.demo import DemoERP
from erp_connectors.demo.server import DemoERPServer

AS_OF = date(2026, 3, 1)
MARIA_TAX_ID = "147382606"


@pytest.fixture
def server() -> Iterator[DemoERPServer]:
    """A demo ERP of 60 eastcoast debtors on a free loopback port, 25 debts a page."""
    with DemoERPServer("eastcoast", debtors=60, seed=4_001, page_size=25, as_of=AS_OF) as running:
        yield running
    running.erp.clear_acknowledgements()


def get(server: DemoERPServer, path: str, **kwargs: Any) -> requests.Response:
    """GET a path of the server."""
    kwargs.setdefault("timeout", 5)
    return requests.get(server.url + path, **kwargs)


def crawl(server: DemoERPServer, first: str) -> tuple[list[dict[str, Any]], int]:
    """Follow next links from the first page; every item and the number of pages."""
    items, pages, link = [], 0, first
    while link:
        answer = get(server, link)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        items.extend(body["items"])
        pages += 1
        link = body["next"]
    return items, pages


def expected(server: DemoERPServer, **kwargs: Any) -> list[dict[str, Any]]:
    """The server's DemoERP records as the JSON items it should send."""
    return [record_to_dict(r) for r in server.erp.iter_debts(**kwargs) if isinstance(r, DebtRecord)]


def test_health_names_the_agency(server: DemoERPServer) -> None:
    answer = get(server, "/health")
    assert (answer.status_code, answer.json()) == (200, {"status": "ok", "agency": "eastcoast"})
    assert answer.headers["Content-Type"] == "application/json; charset=utf-8"
    assert server.url.startswith("http://127.0.0.1:") and server.port > 0


def test_debts_come_in_pages_linked_by_relative_next_links(server: DemoERPServer) -> None:
    first = get(server, "/debts").json()
    assert len(first["items"]) == 25
    assert first["next"].startswith("/debts?after=EC-4001-000025&page_size=25")
    items, pages = crawl(server, "/debts")
    assert items == expected(server)
    assert pages == -(-len(items) // 25)
    small_items, small_pages = crawl(server, "/debts?page_size=7")
    assert small_items == items and small_pages == -(-len(items) // 7)


def test_asking_for_the_same_page_twice_gives_the_same_page(server: DemoERPServer) -> None:
    # A client that timed out asks again; the page must not have moved on.
    link = get(server, "/debts").json()["next"]
    again = [get(server, link).json() for _ in range(3)]
    assert again[0] == again[1] == again[2]
    assert again[0]["items"][0]["external_id"] == "EC-4001-000026"


def test_changed_since_filters_and_follows_into_next_links(server: DemoERPServer) -> None:
    since = datetime(2026, 2, 15, 6, 0, tzinfo=UTC)
    query = urlencode({"changed_since": since.isoformat(), "page_size": 5})
    items, _ = crawl(server, f"/debts?{query}")
    assert items == expected(server, changed_since=since)
    assert 5 < len(items) < len(expected(server))
    # An unescaped "+" arrives as a space; the server still reads it as the offset it was.
    sloppy = get(server, "/debts?page_size=500&changed_since=2026-02-15T08:00:00+02:00").json()["items"]
    assert sloppy == items


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("page_size=0", "page_size must be from 1 to 5000"),
        ("page_size=many", "page_size must be a whole number"),
        ("changed_since=2026-02-15T06:00:00", "must be an ISO 8601 time with its offset"),
        ("changed_since=yesterday", "must be an ISO 8601 time with its offset"),
        ("after=MV-4001-000001", "is not an external id of this demo ERP"),
    ],
)
def test_bad_queries_get_400_with_a_sentence(server: DemoERPServer, query: str, message: str) -> None:
    answer = get(server, f"/debts?{query}")
    assert answer.status_code == 400
    assert message in answer.json()["message"]


def test_a_debtors_debts_by_country_and_tax_id(server: DemoERPServer) -> None:
    answer = get(server, f"/debtors/GR/{MARIA_TAX_ID}/debts").json()
    assert answer["next"] is None
    assert answer["items"] == [r for r in expected(server) if r["tax_id"] == MARIA_TAX_ID]
    assert get(server, "/debtors/GR/123456783/debts").json() == {"items": [], "next": None}


def ack_of(record: dict[str, Any], line: str = "CP-SRV:1", **changes: Any) -> dict[str, Any]:
    """The JSON of a payment line paying a debt item in full."""
    ack = PaymentAck(
        line_id=line,
        payment_reference="CP-SRV",
        external_id=record["external_id"],
        installment_number=None,
        principal_minor=record["principal_minor"] - record["paid_minor"],
        surcharge_minor=0,
        currency="EUR",
        paid_at=datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
    )
    return {**payment_ack_to_dict(ack), **changes}


def test_payments_are_recorded_once_and_show_as_paid(server: DemoERPServer) -> None:
    debt = get(server, f"/debtors/GR/{MARIA_TAX_ID}/debts").json()["items"][0]
    first = requests.post(server.url + "/payments", json=ack_of(debt), timeout=5)
    assert (first.status_code, first.json()) == (201, {"status": "recorded", "line_id": "CP-SRV:1"})
    again = requests.post(server.url + "/payments", json=ack_of(debt), timeout=5)
    assert again.status_code == 409 and "already recorded" in again.json()["message"]
    assert server.erp.ack_count == 1
    paid = get(server, f"/debtors/GR/{MARIA_TAX_ID}/debts").json()["items"][0]
    assert (paid["status"], paid["paid_minor"]) == ("paid", debt["principal_minor"])


@pytest.mark.parametrize(
    ("changes", "status", "message"),
    [
        ({"external_id": "EC-4001-999999"}, 422, "has no debt with the id EC-4001-999999"),
        ({"installment_number": 2}, 422, "installment 2 does not exist"),
        ({"principal_minor": 10**9}, 422, "exceeds the"),
        ({"paid_at": "yesterday"}, 400, "'paid_at' should be a date and time"),
        ({"line_id": None}, 400, "'line_id' should be text"),
    ],
)
def test_payments_the_erp_cannot_take(
    server: DemoERPServer, changes: dict[str, Any], status: int, message: str
) -> None:
    debt = get(server, f"/debtors/GR/{MARIA_TAX_ID}/debts").json()["items"][0]
    answer = requests.post(server.url + "/payments", json=ack_of(debt, **changes), timeout=5)
    assert answer.status_code == status
    assert message in answer.json()["message"]
    assert server.erp.ack_count == 0


def test_a_payment_body_that_is_not_json_gets_400(server: DemoERPServer) -> None:
    answer = requests.post(server.url + "/payments", data=b"\xff\xfe", timeout=5)
    assert answer.status_code == 400


def test_a_line_id_reused_for_another_payment_is_refused(server: DemoERPServer) -> None:
    debts = get(server, f"/debtors/GR/{MARIA_TAX_ID}/debts").json()["items"]
    assert requests.post(server.url + "/payments", json=ack_of(debts[0]), timeout=5).status_code == 201
    answer = requests.post(server.url + "/payments", json=ack_of(debts[1]), timeout=5)
    assert answer.status_code == 422 and "already recorded with other details" in answer.json()["message"]


def test_unknown_paths_get_404(server: DemoERPServer) -> None:
    assert get(server, "/invoices").status_code == 404
    assert requests.delete(server.url + "/debts", timeout=5).status_code == 404


def test_a_token_guards_every_endpoint() -> None:
    with DemoERPServer("eastcoast", token="s3cret-demo", as_of=AS_OF) as server:
        bare = get(server, "/health")
        assert bare.status_code == 401 and bare.headers["WWW-Authenticate"].startswith("Bearer")
        assert get(server, "/debts", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert get(server, "/debts", headers={"Authorization": "Basic s3cret-demo"}).status_code == 401
        assert get(server, "/debts", headers={"Authorization": "Bearer s3cret-demo"}).status_code == 200


def test_fail_next_answers_the_next_requests_with_an_error(server: DemoERPServer) -> None:
    server.fail_next(2, status=502)
    assert [get(server, "/health").status_code for _ in range(3)] == [502, 502, 200]
    assert server.requests_served == 3


def test_going_down_answers_503_to_everything_until_it_comes_back(server: DemoERPServer) -> None:
    server.go_down()
    assert get(server, "/health").status_code == 503
    assert get(server, "/debts").json() == {"message": "The demo ERP is down for maintenance."}
    server.come_back()
    assert get(server, "/health").status_code == 200


def test_delay_slows_every_answer(server: DemoERPServer) -> None:
    server.delay_seconds = 0.3
    started = time.monotonic()
    assert get(server, "/health").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_stopping_does_not_wait_for_slow_answers() -> None:
    server = DemoERPServer("eastcoast", as_of=AS_OF).start()
    server.delay_seconds = 30
    with pytest.raises(requests.ReadTimeout):
        get(server, "/health", timeout=0.2)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/health", timeout=1)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.org"])
def test_only_loopback_addresses_are_allowed(host: str) -> None:
    with pytest.raises(ValueError, match="only listens on loopback addresses"):
        DemoERPServer("eastcoast", host=host)


def test_ipv6_loopback_works_where_the_system_has_it() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        server = DemoERPServer("eastcoast", host="::1", as_of=AS_OF)
    except OSError:
        pytest.skip("IPv6 loopback is not configured here")
    with server:
        assert server.url.startswith("http://[::1]:")
        assert get(server, "/health").status_code == 200


def test_acks_through_a_state_file_reach_other_demo_erps(tmp_path: Path) -> None:
    state = tmp_path / "acks.json"
    with DemoERPServer("mountvalley", seed=4_002, as_of=AS_OF, state_file=state) as server:
        debt = get(server, f"/debtors/GR/{MARIA_TAX_ID}/debts").json()["items"][0]
        assert requests.post(server.url + "/payments", json=ack_of(debt), timeout=5).status_code == 201
    worker_side = DemoERP("mountvalley", seed=4_002, as_of=AS_OF, state_file=state)
    assert worker_side.acknowledged("CP-SRV:1")
    assert '"CP-SRV:1"' in state.read_text(encoding="utf-8")
