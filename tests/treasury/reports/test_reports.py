"""Settlement and adoption reports: known datasets give known figures, and rows add up to totals."""

from __future__ import annotations

import csv
import io
import random
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.domain.withholdings import split_by_weight
from app.extensions import db
from app.payments.models import Payment, Refund
from app.payments.splits import book_payment_splits, book_refund_reversal
from app.treasury.reports.services import SettlementFigures, adoption_report, settlement_report
from tests.factories import AgencyFactory, DebtFactory, paid_payment, staff_member
from tests.helpers import page_text
from tests.treasury.helpers import sign_in


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture()
def settled(db_session: None) -> dict:
    """An agency (Athens time) with payments around 26-27 February 2026, and another agency."""
    return _settle(withholdings=None)


@pytest.fixture()
def withheld(db_session: None) -> dict:
    """The same payments and refunds, made while the agency withheld ``WITHHOLDINGS``."""
    return _settle(withholdings=WITHHOLDINGS)


def _settle(withholdings: dict | None) -> dict:
    agency, other = AgencyFactory(withholdings=withholdings), AgencyFactory()
    fee1, fee2 = DebtFactory(agency=agency), DebtFactory(agency=agency)
    fine = DebtFactory(agency=agency, kind="traffic_fine")
    elsewhere = DebtFactory(agency=other)
    first = paid_payment((fee1, 5000, 73), (elsewhere, 9999), created_at=_utc(2026, 2, 26, 10))
    paid_payment((fine, 3000), created_at=_utc(2026, 2, 26, 22, 30))  # 00:30 on the 27th in Athens
    paid_payment((fee1, 700), created_at=_utc(2026, 2, 26, 11), status="failed")
    paid_payment((fee2, 800), created_at=_utc(2026, 2, 26, 12), status="pending")
    mixed = paid_payment((fee2, 1234), (fine, 4321), created_at=_utc(2026, 2, 27, 9))
    paid_payment((fee2, 555), created_at=_utc(2026, 2, 20, 9))  # before the report
    paid_payment((fee2, 666), created_at=_utc(2026, 2, 28, 22, 5))  # 1 March in Athens: after it
    # Refunds: one split across the two kinds of a payment, one of a partly refunded payment on a
    # later day, and ones that do not count (not succeeded, another agency, after the report).
    _refund(mixed, agency, 1000, _utc(2026, 2, 27, 12))
    _refund(first, agency, 500, _utc(2026, 2, 28, 8))
    _refund(first, agency, 300, _utc(2026, 2, 28, 8), status="pending")
    _refund(first, other, 400, _utc(2026, 2, 28, 8))
    _refund(first, agency, 200, _utc(2026, 2, 28, 22, 30))  # 1 March in Athens
    db.session.commit()
    admin = staff_member(agency, "view")
    return {"agency": agency, "code": agency.code, "viewer": admin}


_refunds = iter(range(1, 10**6))


def _refund(payment: Payment, agency, amount_minor: int, at: datetime, status: str = "succeeded") -> Refund:
    refund = Refund(
        reference=f"RF-{payment.reference}-{next(_refunds)}", payment_id=payment.id, agency_id=agency.id,
        amount_minor=amount_minor, currency="EUR", status=status, reason="Paid twice.",
        created_at=at, completed_at=at if status == "succeeded" else None,
    )  # fmt: skip
    db.session.add(refund)
    if status == "succeeded":  # as the refund.made listener does
        db.session.flush()
        book_refund_reversal(refund)
    return refund


def _figures(report, day: date, kind: str) -> tuple[int, int, int]:
    [row] = [row for row in report.rows if row.day == day and row.kind == kind]
    return row.figures.lines, row.figures.gross_minor, row.figures.refunds_minor


def test_settlement_per_local_day_and_kind(app_ctx: Flask, settled: dict) -> None:
    report = settlement_report(settled["agency"], date(2026, 2, 26), date(2026, 2, 28))
    assert [(row.day, row.kind) for row in report.rows] == [
        (date(2026, 2, 26), "property_fee"),
        (date(2026, 2, 27), "property_fee"),
        (date(2026, 2, 27), "traffic_fine"),
        (date(2026, 2, 28), "property_fee"),
    ]
    # Principal + surcharge, never the other agency's line; a partly refunded payment still counts.
    assert _figures(report, date(2026, 2, 26), "property_fee") == (1, 5073, 0)
    # The €10.00 refund of a €12.34 + €43.21 payment, split exactly: 222 + 778 cents.
    assert _figures(report, date(2026, 2, 27), "property_fee") == (1, 1234, 222)
    assert _figures(report, date(2026, 2, 27), "traffic_fine") == (2, 7321, 778)
    assert _figures(report, date(2026, 2, 28), "property_fee") == (0, 0, 500)  # a refund on its own day
    total = report.total
    assert (total.lines, total.gross_minor, total.refunds_minor, total.net_minor) == (4, 13628, 1500, 12128)
    assert total.fees_minor is None


@pytest.mark.parametrize("status", ["partially_refunded", "refunded"])
def test_a_refunded_payment_still_counts_in_gross_on_its_own_day(app_ctx: Flask, settled: dict, status: str) -> None:
    agency = settled["agency"]
    payment = db.session.scalars(select(Payment).where(Payment.created_at == _utc(2026, 2, 26, 10))).one()
    payment.status = status
    db.session.commit()
    report = settlement_report(agency, date(2026, 2, 26), date(2026, 2, 26))
    assert _figures(report, date(2026, 2, 26), "property_fee") == (1, 5073, 0)


@pytest.mark.parametrize(
    ("amount", "weights", "parts"),
    [
        (1000, [1234, 4321], [222, 778]),
        (100, [1, 1, 1], [34, 33, 33]),
        (1, [5, 5], [1, 0]),
        (7, [10], [7]),
        (0, [3, 4], [0, 0]),
    ],
)
def test_a_refund_is_split_across_kinds_exactly(amount: int, weights: list[int], parts: list[int]) -> None:
    assert split_by_weight(amount, weights) == parts
    assert sum(split_by_weight(amount, weights)) == amount


def _sum(figures: list[SettlementFigures]) -> tuple[int, int, int, int]:
    return (
        sum(f.lines for f in figures),
        sum(f.gross_minor for f in figures),
        sum(f.refunds_minor for f in figures),
        sum(f.net_minor for f in figures),
    )


def _key(figures: SettlementFigures) -> tuple[int, int, int, int]:
    return (figures.lines, figures.gross_minor, figures.refunds_minor, figures.net_minor)


def test_settlement_rows_add_up_to_the_totals_exactly(app_ctx: Flask) -> None:
    chance = random.Random(7)
    agency = AgencyFactory()
    debts = [DebtFactory(agency=agency, kind=kind) for kind in ("property_fee", "traffic_fine", "water_bill")]
    expected = 0
    for _ in range(60):
        at = _utc(2026, 2, 1) + timedelta(minutes=chance.randrange(28 * 24 * 60))
        lines = [
            (chance.choice(debts), chance.randrange(1, 100_000), chance.randrange(0, 999))
            for _ in range(chance.randrange(1, 4))
        ]
        status = chance.choice(["succeeded", "succeeded", "failed"])
        payment = paid_payment(*lines, created_at=at, status=status, commit=False)
        if status == "succeeded" and chance.random() < 0.3:
            db.session.flush()
            _refund(payment, agency, chance.randrange(1, sum(p + s for _d, p, s in lines) + 1), at + timedelta(hours=1))
        local_day = at.astimezone(ZoneInfo("Europe/Athens")).date()
        if status == "succeeded" and date(2026, 2, 1) <= local_day <= date(2026, 2, 28):
            expected += sum(principal + surcharge for _debt, principal, surcharge in lines)
    db.session.commit()

    report = settlement_report(agency, date(2026, 2, 1), date(2026, 2, 28))
    assert _sum([row.figures for row in report.rows]) == _key(report.total)
    assert _sum(list(report.by_kind.values())) == _key(report.total)
    for kind, figures in report.by_kind.items():
        assert _sum([row.figures for row in report.rows if row.kind == kind]) == _key(figures)
    assert report.total.gross_minor == expected
    assert report.total.refunds_minor > 0  # the refunds were split across kinds and days, and still add up


def test_the_settlement_page_and_its_csv_show_the_same_figures(client: FlaskClient, settled: dict) -> None:
    code = settled["code"]
    sign_in(client, settled["viewer"])
    page = page_text(
        client.get(f"/treasury/{code}/settlement", query_string={"from": "2026-02-26", "to": "2026-02-28"})
    )
    total_row = page.split('data-testid="settlement-total"')[1].split("</tr>")[0]
    assert "€136.28" in total_row and "€15.00" in total_row and "€121.28" in total_row and ">4<" in total_row
    assert "€73.21" in page and "€50.73" in page and "€99.99" not in page

    response = client.get(f"/treasury/{code}/settlement.csv", query_string={"from": "2026-02-26", "to": "2026-02-28"})
    assert response.status_code == 200
    table = list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    assert table[0] == ["Date", "Kind", "Payment lines", "Gross", "Agency's part", "Refunds", "Fees", "Net", "Currency"]
    assert table[1:] == [  # the agency withholds nothing: its part is the net, refunds deducted
        ["2026-02-26", "property_fee", "1", "50.73", "50.73", "0.00", "", "50.73", "EUR"],
        ["2026-02-27", "property_fee", "1", "12.34", "10.12", "2.22", "", "10.12", "EUR"],
        ["2026-02-27", "traffic_fine", "2", "73.21", "65.43", "7.78", "", "65.43", "EUR"],
        ["2026-02-28", "property_fee", "0", "0.00", "-5.00", "5.00", "", "-5.00", "EUR"],
        ["Total", "", "4", "136.28", "121.28", "15.00", "", "121.28", "EUR"],
    ]
    semicolon = client.get(
        f"/treasury/{code}/settlement.csv", query_string={"from": "2026-02-26", "to": "2026-02-28", "sep": "semicolon"}
    )
    assert "Total;;4;136,28;121,28;15,00;;121,28;EUR" in semicolon.get_data(as_text=True)


def test_the_settlement_defaults_to_the_last_seven_days(client: FlaskClient, settled: dict) -> None:
    sign_in(client, settled["viewer"])
    page = page_text(client.get(f"/treasury/{settled['code']}/settlement"))
    assert 'value="2026-02-23"' in page and 'value="2026-03-01"' in page  # today is 1 March in Athens
    assert "€6.66" in page  # paid late on 28 Feb UTC, 1 March in Athens


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"from": "2026-02-28", "to": "2026-02-01"}, "The end date must not be before the start date."),
        ({"from": "2024-01-01", "to": "2026-02-01"}, "Choose at most 366 days."),
        ({"from": "yesterday"}, "Not a valid date value."),
    ],
)
def test_impossible_periods_are_refused(client: FlaskClient, settled: dict, query: dict, message: str) -> None:
    sign_in(client, settled["viewer"])
    response = client.get(f"/treasury/{settled['code']}/settlement", query_string=query)
    assert response.status_code == 400
    assert message in page_text(response)
    assert client.get(f"/treasury/{settled['code']}/settlement.csv", query_string=query).status_code == 400


# -- adoption ----------------------------------------------------------------------------------------


@pytest.fixture()
def adopted(db_session: None) -> dict:
    """Debts due in January and February 2026 (today is 1 March), some paid online."""
    agency = AgencyFactory(online_categories=["certified", "settled"])
    january_paid = DebtFactory(agency=agency, due_date=date(2026, 1, 10), principal_minor=10000)
    DebtFactory(agency=agency, due_date=date(2026, 1, 20), principal_minor=30000)  # not paid
    guest_paid = DebtFactory(agency=agency, kind="traffic_fine", due_date=date(2026, 2, 5), principal_minor=5000)
    declined = DebtFactory(agency=agency, kind="traffic_fine", due_date=date(2026, 2, 6), principal_minor=5000)
    bill = DebtFactory(agency=agency, category="uncertified", kind="water_bill", due_date=date(2026, 2, 10))
    DebtFactory(agency=agency, due_date=date(2025, 1, 10))  # more than twelve months ago
    DebtFactory(agency=agency, due_date=date(2026, 3, 15))  # not due yet
    paid_payment((january_paid, 10000), channel="account")
    paid_payment((guest_paid, 5000), channel="guest")
    paid_payment((declined, 5000), channel="guest", status="failed")
    paid_payment((bill, 12000), channel="account")  # not payable online by the settings: left out
    return {"agency": agency, "code": agency.code, "viewer": staff_member(agency, "view")}


def test_adoption_shares_by_month_kind_and_channel(app_ctx: Flask, adopted: dict) -> None:
    report = adoption_report(adopted["agency"], date(2026, 3, 1))
    months = dict(report.months)
    assert list(months)[0] == date(2025, 4, 1) and list(months)[-1] == date(2026, 3, 1) and len(months) == 12

    january, february = months[date(2026, 1, 1)], months[date(2026, 2, 1)]
    assert (january.debts, january.debts_online, january.count_share, january.amount_share) == (
        2,
        1,
        Decimal("50.0"),
        Decimal("25.0"),
    )
    assert january.debts_by_channel == {"guest": 0, "account": 1, "other": 0}
    assert (february.debts, february.debts_online, february.count_share, february.amount_share) == (
        2,
        1,
        Decimal("50.0"),
        Decimal("50.0"),
    )
    assert february.debts_by_channel["guest"] == 1 and february.online_minor_by_channel["guest"] == 5000
    assert months[date(2025, 12, 1)].debts == 0 and months[date(2025, 12, 1)].count_share == 0

    kinds = dict(report.kinds)
    assert set(kinds) == {"property_fee", "traffic_fine"}  # water bills are not payable online here
    assert (kinds["property_fee"].count_share, kinds["property_fee"].amount_share) == (Decimal("50.0"), Decimal("25.0"))
    assert (kinds["traffic_fine"].count_share, kinds["traffic_fine"].amount_share) == (Decimal("50.0"), Decimal("50.0"))

    total = report.total
    assert (total.debts, total.debts_online, total.principal_minor, total.online_minor) == (4, 2, 50000, 15000)
    assert (total.count_share, total.amount_share) == (Decimal("50.0"), Decimal("30.0"))
    assert (total.channel_share("guest"), total.channel_share("account")) == (Decimal("25.0"), Decimal("25.0"))


def test_the_adoption_page_draws_an_accessible_chart_and_a_table(client: FlaskClient, adopted: dict) -> None:
    sign_in(client, adopted["viewer"])
    response = client.get(f"/treasury/{adopted['code']}/adoption")
    assert response.status_code == 200
    page = page_text(response)
    svg = re.search(r"<svg class=\"chart\"[^>]*>.*?</svg>", page, re.S).group(0)
    assert 'role="img"' in svg and 'aria-label="Share of payable debts paid online, by month"' in svg
    assert "<title>Share of payable debts paid online, by month</title>" in svg and "<desc id=" in svg
    assert "<script" not in page
    # January: half the debts paid with an account → a green bar 100 high of the 200 of 100 %.
    assert 'height="100.0" fill="#00703c"' in svg
    assert "In all: 2 of 4 payable debts paid online (50.0 % by count, 30.0 % by amount)." in page
    kinds = page.split('data-testid="adoption-kinds"')[1]
    assert "Traffic fine" in kinds and "Water bill" not in kinds


# -- withholdings in the settlement ------------------------------------------------------------------

WITHHOLDINGS = {
    "default": [{"name": "Ταμείο Χ", "percent": "2"}],
    "traffic_fine": [{"name": "Fund Y", "fixed_minor": 50}, {"name": "Ταμείο Χ", "percent": "0.5"}],
    "parking": [],
}


def test_withholdings_per_day_kind_and_beneficiary(app_ctx: Flask, withheld: dict) -> None:
    report = settlement_report(withheld["agency"], date(2026, 2, 26), date(2026, 2, 28))
    assert report.beneficiaries == ["Fund Y", "Ταμείο Χ"]
    by_cell = {(row.day, row.kind): row.figures for row in report.rows}
    # 2 % of 50.73 = 1.0146 → 1.01.
    assert by_cell[(date(2026, 2, 26), "property_fee")].withheld == {"Ταμείο Χ": 101}
    # Two fines, 30.00 and 43.21: 0.50 each to Fund Y; 0.5 % → 0.15 and 0.21605 → 0.22. The same
    # day, €10.00 of the €55.55 payment (fee 12.34: 0.25 + 12.09; fine 43.21: 0.50 + 0.22 + 42.49)
    # is refunded, reversing 0.04, 2.18, 0.09, 0.04 and 7.65 of those parts (largest remainder).
    fines = by_cell[(date(2026, 2, 27), "traffic_fine")]
    assert fines.withheld == {"Fund Y": 100 - 9, "Ταμείο Χ": 37 - 4}
    assert fines.agency_part_minor == 7321 - 778 - 124
    assert by_cell[(date(2026, 2, 27), "property_fee")].withheld == {"Ταμείο Χ": 25 - 4}
    # A refund alone (€5.00 of the 50.73 payment): it takes back 0.10 of the fund's 1.01.
    assert by_cell[(date(2026, 2, 28), "property_fee")].withheld == {"Ταμείο Χ": -10}
    assert report.total.withheld == {"Fund Y": 91, "Ταμείο Χ": 101 + 33 + 21 - 10}


def test_withholdings_and_the_agencys_part_add_up_to_what_was_collected(app_ctx: Flask) -> None:
    chance = random.Random(11)
    agency = AgencyFactory(withholdings={
        "default": [{"name": "A", "percent": "2.5"}, {"name": "B", "fixed_minor": 30}],
        "traffic_fine": [{"name": "B", "percent": "33.333"}, {"name": "C", "fixed_minor": 5000}],
        "parking": [],
    })  # fmt: skip
    debts = [DebtFactory(agency=agency, kind=kind) for kind in ("property_fee", "traffic_fine", "parking")]
    for _ in range(80):
        at = _utc(2026, 2, 1) + timedelta(minutes=chance.randrange(27 * 24 * 60))
        lines = [
            (chance.choice(debts), chance.randrange(1, 20_000), chance.randrange(0, 99))
            for _ in range(chance.randrange(1, 4))
        ]
        paid_payment(*lines, created_at=at, commit=False)
    db.session.commit()

    report = settlement_report(agency, date(2026, 2, 1), date(2026, 2, 28))
    total = report.total
    assert total.withheld_minor + total.agency_part_minor == total.gross_minor
    assert all(part > 0 for part in total.withheld.values()) and set(total.withheld) == {"A", "B", "C"}
    for figures in [row.figures for row in report.rows] + list(report.by_kind.values()):
        assert figures.withheld_minor + figures.agency_part_minor == figures.gross_minor
        assert figures.agency_part_minor >= 0
    for name in report.beneficiaries:  # rows add up to the kinds' subtotals and to the total, per beneficiary
        assert sum(row.figures.withheld.get(name, 0) for row in report.rows) == total.withheld[name]
        assert sum(figures.withheld.get(name, 0) for figures in report.by_kind.values()) == total.withheld[name]
    assert sum(row.figures.agency_part_minor for row in report.rows) == total.agency_part_minor
    assert report.by_kind["parking"].withheld_minor == 0


def test_the_settlement_csv_and_page_show_each_beneficiary(client: FlaskClient, withheld: dict) -> None:
    code = withheld["code"]
    sign_in(client, withheld["viewer"])
    query = {"from": "2026-02-26", "to": "2026-02-28", "sep": "semicolon"}
    table = list(
        csv.reader(
            io.StringIO(
                client.get(f"/treasury/{code}/settlement.csv", query_string=query).get_data().decode("utf-8-sig")
            ),
            delimiter=";",
        )
    )
    assert table[0] == ["Date", "Kind", "Payment lines", "Gross", "Withheld: Fund Y", "Withheld: Ταμείο Χ", "Agency's part",
                        "Refunds", "Fees", "Net", "Currency"]  # fmt: skip
    assert table[-1] == ["Total", "", "4", "136,28", "0,91", "1,45", "118,92", "15,00", "", "121,28", "EUR"]
    for row in table[1:]:  # withheld + the agency's part = the net (gross less refunds), in every row
        fund_y, fund_x, part, net = (Decimal(row[index].replace(",", ".")) for index in (4, 5, 6, 9))
        assert fund_y + fund_x + part == net
    page = page_text(
        client.get(f"/treasury/{code}/settlement", query_string={"from": "2026-02-26", "to": "2026-02-28"})
    )
    total_row = page.split('data-testid="settlement-total"')[1].split("</tr>")[0]
    assert "€0.91" in total_row and "€1.45" in total_row and "€118.92" in total_row
    assert '<th scope="col" class="num">Withheld: Ταμείο Χ</th>' in page


def test_an_item_sold_counts_under_its_kind_and_is_withheld_from_by_it(app_ctx: Flask) -> None:
    from app.payments.models import PaymentLine
    from tests.factories import CatalogItemFactory

    agency = AgencyFactory(
        withholdings={"default": [{"name": "Fund", "percent": "2"}], "ticket": [{"name": "Culture", "percent": "10"}]}
    )
    ticket = CatalogItemFactory(agency=agency)
    sale = paid_payment(
        (DebtFactory(agency=agency), 1000), created_at=_utc(2026, 2, 10, 9), status="pending", commit=False
    )
    sale.lines.append(PaymentLine(agency_id=agency.id, item_id=ticket.id, quantity=2, principal_minor=3000,
                                  surcharge_minor=0, amount_minor=3000))  # fmt: skip
    sale.amount_minor += 3000
    sale.status, sale.completed_at = "succeeded", sale.created_at
    db.session.flush()
    book_payment_splits(sale)
    _refund(sale, agency, 400, _utc(2026, 2, 11, 9))  # split 1000 : 3000 between the two kinds
    db.session.commit()
    report = settlement_report(agency, date(2026, 2, 10), date(2026, 2, 11))
    tickets = report.by_kind["ticket"]
    assert (tickets.lines, tickets.gross_minor, tickets.refunds_minor, tickets.withheld) == (
        1,
        3000,
        300,
        {"Culture": 300 - 30},  # the refund takes back a tenth of every part
    )
    assert report.by_kind["property_fee"].withheld == {"Fund": 20 - 2}
    assert report.total.gross_minor == 4000 and report.total.withheld_minor + report.total.agency_part_minor == 3600
