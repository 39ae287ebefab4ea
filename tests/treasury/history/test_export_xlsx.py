"""XLSX export: the CSV's rows and columns, with real dates and numbers, for the same filters."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal

import openpyxl
from flask.testing import FlaskClient

from app.extensions import db
from tests.factories import AgencyFactory, DebtFactory, DebtorFactory, InstallmentFactory, paid_payment, staff_member
from tests.treasury.helpers import sign_in
from tests.treasury.history.helpers import rows as csv_rows

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def sheet_rows(body: bytes) -> list[tuple]:
    """The first sheet's cell values, row by row (openpyxl reads dates back as datetimes)."""
    workbook = openpyxl.load_workbook(io.BytesIO(body), read_only=True)
    return [tuple(row) for row in workbook.worksheets[0].iter_rows(values_only=True)]


def as_csv_text(value: object) -> str:
    """A cell as the CSV writes the same value: dates to the second, amounts with 2 decimals."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{Decimal(repr(value)):.2f}"
    return str(value)


def _town_with_payments() -> tuple[str, str]:
    """An agency with two payments (three lines of its own, one of another agency); (code, kept ref)."""
    town = AgencyFactory(timezone="Europe/Athens", withholdings={"default": [{"name": "Fund X", "percent": "2"}]})
    water = AgencyFactory()
    debtor = DebtorFactory(tax_id="123456789", name="Μαρία Παπαδοπούλου")
    fee = DebtFactory(agency=town, debtor=debtor, external_id="FEE-1", kind="property_fee")
    installment = InstallmentFactory(debt=DebtFactory(agency=town, debtor=debtor, external_id="ARR-7"), number=2)
    payment = paid_payment(
        (fee, 12345, 67), (DebtFactory(agency=water, debtor=debtor), 99999),
        created_at=datetime(2026, 2, 28, 22, 30, tzinfo=UTC), channel="guest",
    )  # fmt: skip
    payment.lines.append(type(payment.lines[0])(agency_id=town.id, debt_id=installment.debt_id,
                         installment_id=installment.id, principal_minor=5000, surcharge_minor=0, amount_minor=5000))  # fmt: skip
    payment.amount_minor += 5000
    paid_payment((fee, 2000), created_at=datetime(2026, 2, 27, 9, tzinfo=UTC), channel="account")
    db.session.commit()
    return town.code, payment.reference


def test_the_workbook_has_the_csv_rows_cell_for_cell(client: FlaskClient) -> None:
    code, _reference = _town_with_payments()
    sign_in(client, staff_member_of(code))

    response = client.get(f"/treasury/{code}/payments.xlsx")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == XLSX
    assert response.headers["Content-Disposition"].startswith(f"attachment; filename=payments-{code}-")
    assert response.headers["Content-Disposition"].endswith(".xlsx")
    workbook = sheet_rows(response.get_data())
    table = csv_rows(client.get(f"/treasury/{code}/payments.csv").get_data())

    assert len(workbook) == len(table) == 1 + 3  # the header and the town's three lines
    assert list(workbook[0]) == table[0]
    for sheet_row, csv_row in zip(workbook[1:], table[1:], strict=True):
        assert [as_csv_text(value) for value in sheet_row] == csv_row


def test_dates_are_excel_dates_in_the_agency_time_zone_and_amounts_are_numbers(client: FlaskClient) -> None:
    code, reference = _town_with_payments()
    sign_in(client, staff_member_of(code))
    body = client.get(f"/treasury/{code}/payments.xlsx").get_data()

    header, first = sheet_rows(body)[:2]
    cells = dict(zip(header, first, strict=True))
    assert cells["Date"] == datetime(2026, 3, 1, 0, 30)  # 22:30 UTC is half past midnight in Athens
    assert cells["Receipt number"] == reference
    assert (cells["Principal"], cells["Surcharge"], cells["Amount"]) == (123.45, 0.67, 124.12)
    assert (cells["Withheld"], cells["Net to agency"]) == (2.48, 121.64)  # 2 % of 124.12 is 2.4824
    assert cells["Currency"] == "EUR" and cells["Debt ID"] == "FEE-1"

    sheet = openpyxl.load_workbook(io.BytesIO(body)).worksheets[0]
    columns = {cell.value: cell.column for cell in sheet[1]}
    date_cell = sheet.cell(2, columns["Date"])
    assert date_cell.is_date and date_cell.number_format == "yyyy-mm-dd hh:mm:ss"
    for title in ("Principal", "Surcharge", "Amount", "Withheld", "Net to agency"):
        amount_cell = sheet.cell(2, columns[title])
        assert amount_cell.data_type == "n" and amount_cell.number_format == '#,##0.00 "EUR"', title
    assert sheet.cell(3, columns["Installment"]).value == 2  # a number Excel can sort, not text


def test_the_workbook_follows_the_same_filters_as_the_csv(client: FlaskClient) -> None:
    code, kept_reference = _town_with_payments()
    sign_in(client, staff_member_of(code))
    query = "channel=guest&amount_min=100"

    workbook = sheet_rows(client.get(f"/treasury/{code}/payments.xlsx?{query}").get_data())
    table = csv_rows(client.get(f"/treasury/{code}/payments.csv?{query}").get_data())
    assert [row[1] for row in workbook[1:]] == [row[1] for row in table[1:]] == [kept_reference, kept_reference]


def test_an_empty_result_still_has_the_header_row(client: FlaskClient) -> None:
    code, _reference = _town_with_payments()
    sign_in(client, staff_member_of(code))
    workbook = sheet_rows(client.get(f"/treasury/{code}/payments.xlsx?channel=api").get_data())
    assert len(workbook) == 1
    assert workbook[0][:3] == ("Date", "Receipt number", "Status")


def test_text_from_an_erp_stays_text_in_the_workbook(client: FlaskClient) -> None:
    agency = AgencyFactory()
    debtor = DebtorFactory(name='=HYPERLINK("http://evil.example","Click")', tax_id="=1+1")
    paid_payment((DebtFactory(agency=agency, debtor=debtor, external_id="00123"), 1000))
    code = agency.code
    sign_in(client, staff_member(agency, "view"))

    sheet = openpyxl.load_workbook(io.BytesIO(client.get(f"/treasury/{code}/payments.xlsx").get_data())).worksheets[0]
    columns = {cell.value: cell.column for cell in sheet[1]}
    name, tax_id, debt_id = (sheet.cell(2, columns[title]) for title in ("Payer name", "Payer tax ID", "Debt ID"))
    assert (name.data_type, name.value) == ("s", '=HYPERLINK("http://evil.example","Click")')
    assert (tax_id.data_type, tax_id.value) == ("s", "=1+1")
    assert (debt_id.data_type, debt_id.value) == ("s", "00123")  # leading zeros kept: text, not a number


def test_the_payments_page_links_the_workbook_with_the_filters(client: FlaskClient) -> None:
    code, _reference = _town_with_payments()
    sign_in(client, staff_member_of(code))
    page = client.get(f"/treasury/{code}/payments?channel=guest").get_data(as_text=True)
    assert f'href="/treasury/{code}/payments.xlsx?channel=guest"' in page


def staff_member_of(code: str):
    """A viewer of the agency with this code."""
    from sqlalchemy import select

    from app.agencies.models import Agency

    return staff_member(db.session.scalar(select(Agency).where(Agency.code == code)), "view")
