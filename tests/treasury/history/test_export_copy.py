"""The CSV export on PostgreSQL (COPY ... TO STDOUT) is byte for byte the Python writer's, and only the agency's."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.extensions import db
from app.payments.models import PaymentLine, Refund
from app.treasury.history.export import _crlf_rows, export_csv
from app.treasury.history.services import PaymentFilters
from tests.factories import (
    AgencyFactory,
    CatalogItemFactory,
    DebtFactory,
    DebtorFactory,
    InstallmentFactory,
    paid_payment,
)


def _on_postgresql() -> None:
    if db.session.get_bind().dialect.name != "postgresql":
        pytest.skip("COPY ... TO STDOUT is PostgreSQL's; the SQLite pass uses the Python writer only")


def _export(agency, filters: PaymentFilters, method: str, semicolon: bool = False) -> bytes:
    return b"".join(export_csv(agency, filters, semicolon=semicolon, method=method))


def _town_with_awkward_payments():
    """A town with withholdings and every kind of value a CSV writer can get wrong; and a neighbour."""
    town = AgencyFactory(
        code="copytown",
        timezone="Europe/Athens",
        withholdings={
            "default": [{"name": "Ταμείο Χ", "percent": "2"}],
            "traffic_fine": [{"name": "Fund Y", "fixed_minor": 50}, {"name": "Fund Z", "percent": "0.5"}],
            "parking": [],
            "water": [{"name": "Half", "percent": "50"}, {"name": "Rest", "percent": "12.345"}],
            "cleaning": [{"name": "Many decimals", "percent": "49.99999995"}, {"name": "Fixed", "fixed_minor": 7}],
            "ticket": [{"name": "Culture fund", "percent": "10"}],
        },
    )
    other = AgencyFactory(code="copyother")
    names = [
        "Μαρία Παπαδοπούλου",
        'Κώστας "Ο Μεγάλος"; Αθήνα, Ελλάδα',
        "Line one\nline two",
        "carriage\rreturn",
        '=HYPERLINK("http://evil.example","Click")',
        "-1+2",
        "@SUM(A1)",
        "\ttabbed",
        " leading and trailing spaces ",
        "Ελληνικά; με ερωτηματικό;",
    ]
    debtors = [DebtorFactory(name=name) for name in names]
    debtors.append(DebtorFactory(name="Tax, ID", tax_id="EL123456789"))
    kinds = ["property_fee", "traffic_fine", "parking", "water", "cleaning"]
    debts = []
    for index, debtor in enumerate(debtors):
        kind = kinds[index % len(kinds)]
        debts.append(DebtFactory(agency=town, debtor=debtor, kind=kind, external_id=f"+EXT;{index}",
                                 category=["certified", "settled", "uncertified"][index % 3]))  # fmt: skip
    arrangement = DebtFactory(agency=town, debtor=debtors[0], external_id="ARR,7", category="settled")
    installment = InstallmentFactory(debt=arrangement, number=3)
    neighbour_debt = DebtFactory(agency=other, debtor=debtors[1], external_id="NEIGHBOUR-ONLY", kind="water")
    moments = [
        datetime(2026, 3, 29, 0, 59, 59, 999999, tzinfo=UTC),  # 02:59:59 in Athens, just before summer time
        datetime(2026, 3, 29, 1, 0, 0, tzinfo=UTC),  # 04:00 in Athens, after the clocks went forward
        datetime(2026, 2, 28, 22, 30, tzinfo=UTC),  # 1 March in Athens
        datetime(2025, 12, 31, 23, 0, tzinfo=UTC),
        datetime(2026, 1, 15, 12, 0, 0, 500000, tzinfo=UTC),
    ]
    statuses = ["succeeded", "refunded", "partially_refunded", "failed", "pending"]
    channels = ["account", "guest", "autopay", "api"]
    for index, debt in enumerate(debts):
        lines = [(debt, 100 + index * 1234, index * 7)]
        if index % 2 == 0:
            lines.append((debts[(index + 3) % len(debts)], 30 + index))  # a second line of the town
        if index % 3 == 0:
            lines.append((neighbour_debt, 99999))  # the neighbour's line of the same payment
        payment = paid_payment(*lines, created_at=moments[index % len(moments)], status=statuses[index % 5],
                               channel=channels[index % 4], provider_reference=["-neg", "=x", "", "ch_1"][index % 4] or None,
                               card_last4="4242" if index % 2 else None, commit=False)  # fmt: skip
        if index % 4 == 2:
            payment.provider_reference = None
    paid_payment((arrangement, 5000), (debts[1], 1), created_at=moments[0], channel="guest", commit=False)
    db.session.flush()
    line = db.session.scalars(select(PaymentLine).where(PaymentLine.debt_id == arrangement.id)).first()
    line.installment_id = installment.id
    refunded = db.session.scalars(select(PaymentLine).where(PaymentLine.debt_id == debts[1].id)).first()
    db.session.add(Refund(reference="RF-COPY-1", payment_id=refunded.payment_id, agency_id=town.id, amount_minor=50,
                          currency="EUR", status="succeeded", reason="Twice", created_at=moments[1]))  # fmt: skip
    paid_payment((neighbour_debt, 4242), created_at=moments[2])  # the neighbour's alone
    # A catalog item's line has no debt: it exports with the item's code and kind (withheld by it).
    ticket = CatalogItemFactory(agency=town, code="=CONCERT")
    sale = paid_payment((debts[2], 1000), created_at=moments[3], channel="guest", commit=False)
    sale.lines.append(PaymentLine(agency_id=town.id, item_id=ticket.id, quantity=2, principal_minor=3000,
                                  surcharge_minor=0, amount_minor=3000))  # fmt: skip
    sale.amount_minor += 3000
    db.session.commit()
    return town, other


FILTERS = [
    PaymentFilters(),
    PaymentFilters(date_from=date(2026, 3, 1), date_to=date(2026, 3, 29)),
    PaymentFilters(date_to=date(2026, 2, 28)),
    PaymentFilters(status="refunded"),
    PaymentFilters(status="succeeded", channel="account"),
    PaymentFilters(kind="traffic_fine"),
    PaymentFilters(kind="water", category="settled"),
    PaymentFilters(payer="παπαδοπούλου"),
    PaymentFilters(payer="EL 123456789"),
    PaymentFilters(payer='"ο μεγάλος"'),
    PaymentFilters(payer="%"),
    PaymentFilters(amount_min_minor=1000, amount_max_minor=9000),
    PaymentFilters(reference="=x"),
    PaymentFilters(status="failed", kind="nothing-of-this-kind"),
]


@pytest.mark.parametrize("semicolon", [False, True], ids=["comma", "semicolon"])
def test_copy_and_the_python_writer_give_the_same_bytes(app_ctx: Flask, semicolon: bool) -> None:
    _on_postgresql()
    town, _other = _town_with_awkward_payments()
    for filters in FILTERS:
        by_python = _export(town, filters, "python", semicolon)
        by_copy = _export(town, filters, "copy", semicolon)
        assert by_copy == by_python, filters
    everything = _export(town, PaymentFilters(), "copy", semicolon)
    assert b"Line one\nline two" in everything and everything.count(b"\r\n") == 1 + 21  # CRLF rows, LF kept inside
    item_end = (b";'=CONCERT;;;ticket;;;;30,00;0,00;30,00;3,00;27,00;EUR" if semicolon
                else b",'=CONCERT,,,ticket,,,,30.00,0.00,30.00,3.00,27.00,EUR")  # fmt: skip
    assert len([line for line in everything.split(b"\r\n") if line.endswith(item_end)]) == 1  # the tickets' 10 %
    assert "Ταμείο".encode() not in everything  # beneficiaries are not columns; their shares are


@pytest.mark.parametrize("filters", [PaymentFilters(), PaymentFilters(kind="water"), PaymentFilters(payer="Κώστας")],
                         ids=["all", "kind", "payer"])  # fmt: skip
def test_copy_never_exports_another_agencys_lines(app_ctx: Flask, filters: PaymentFilters) -> None:
    _on_postgresql()
    town, other = _town_with_awkward_payments()
    body = _export(town, filters, "copy").decode("utf-8-sig")
    table = list(csv.reader(io.StringIO(body, newline="")))[1:]
    assert "NEIGHBOUR-ONLY" not in body and "999.99" not in body and "42.42" not in body
    town_lines = db.session.scalar(
        select(func.count()).select_from(PaymentLine).where(PaymentLine.agency_id == town.id)
    )
    if filters == PaymentFilters():
        assert len(table) == town_lines
    # And the neighbour's export has only its own: the shared payments' other lines stay out.
    neighbour = list(csv.reader(io.StringIO(_export(other, filters, "copy").decode("utf-8-sig"), newline="")))[1:]
    assert {row[7] for row in neighbour} <= {"NEIGHBOUR-ONLY"}


def test_an_agency_in_another_currency_and_time_zone(app_ctx: Flask) -> None:
    _on_postgresql()
    agency = AgencyFactory(
        currency="JPY", timezone="America/New_York", withholdings={"default": [{"name": "X", "percent": "33.3"}]}
    )
    debt = DebtFactory(agency=agency, currency="JPY")
    paid_payment((debt, 12345, 5), created_at=datetime(2026, 3, 8, 6, 59, 59, tzinfo=UTC))
    paid_payment((debt, 1), created_at=datetime(2026, 11, 1, 5, 30, tzinfo=UTC))
    for semicolon in (False, True):
        assert _export(agency, PaymentFilters(), "copy", semicolon) == _export(
            agency, PaymentFilters(), "python", semicolon
        )
    body = _export(agency, PaymentFilters(), "copy").decode("utf-8-sig")
    assert "12350,4113,8237,JPY" in body  # no decimals for yen; 33.3 % of 12350 = 4112.55 → 4113


@pytest.mark.parametrize(
    "data",
    [
        b'a,b\nc,"d\ne"\n"f""\n",g\n',
        b'"x\n\n"\n\n"""",""\n',
        b"plain\nrows\n",
    ],
)
def test_row_ends_become_crlf_wherever_the_chunks_are_cut(data: bytes) -> None:
    whole, _ = _crlf_rows(data, False)
    assert whole.count(b"\r\n") == data.count(b"\n") - _newlines_inside_quotes(data)
    for cut in range(len(data) + 1):
        first, inside = _crlf_rows(data[:cut], False)
        second, _ = _crlf_rows(data[cut:], inside)
        assert first + second == whole, cut


def _newlines_inside_quotes(data: bytes) -> int:
    inside, count = False, 0
    for byte in data:
        if byte == ord('"'):
            inside = not inside
        elif byte == ord("\n") and inside:
            count += 1
    return count
