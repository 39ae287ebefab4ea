"""CSV export: what Excel and an accounting system need, the on-screen filters, streamed in batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Flask
from flask.testing import FlaskClient

from app.extensions import db
from tests.factories import AgencyFactory, DebtFactory, DebtorFactory, InstallmentFactory, paid_payment, staff_member
from tests.treasury.helpers import sign_in
from tests.treasury.history.helpers import rows


def test_export_has_one_row_per_line_of_this_agency_with_exact_amounts(client: FlaskClient) -> None:
    town, water = AgencyFactory(timezone="Europe/Athens"), AgencyFactory()
    debtor = DebtorFactory(tax_id="123456789", name="Μαρία Παπαδοπούλου")
    fee = DebtFactory(agency=town, debtor=debtor, external_id="FEE-1", kind="property_fee")
    installment = InstallmentFactory(debt=DebtFactory(agency=town, debtor=debtor, external_id="ARR-7"), number=2)
    bill = DebtFactory(agency=water, debtor=debtor)
    payment = paid_payment((fee, 12345, 67), (bill, 99999), created_at=datetime(2026, 2, 28, 22, 30, tzinfo=UTC))
    payment.lines.append(type(payment.lines[0])(agency_id=town.id, debt_id=installment.debt_id,
                         installment_id=installment.id, principal_minor=5000, surcharge_minor=0, amount_minor=5000))  # fmt: skip
    payment.amount_minor += 5000
    db.session.commit()
    code, reference, fee_rf = town.code, payment.reference, fee.rf_reference
    sign_in(client, staff_member(town, "view"))

    response = client.get(f"/treasury/{code}/payments.csv")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"].startswith(f'attachment; filename="payments-{code}-')
    table = rows(response.get_data())
    header, lines = table[0], table[1:]
    assert header[:3] == ["Date", "Receipt number", "Status"]
    assert header[-6:] == ["Principal", "Surcharge", "Amount", "Withheld", "Net to agency", "Currency"]
    assert len(lines) == 2  # the water company's line is not the town's to see
    first = dict(zip(header, lines[0], strict=True))
    assert first["Date"] == "2026-03-01 00:30:00"  # Athens time
    assert first["Receipt number"] == reference
    assert first["Debt ID"] == "FEE-1" and first["RF reference"] == fee_rf
    assert first["Payer name"] == "Μαρία Παπαδοπούλου" and first["Payer tax ID"] == "123456789"
    assert (first["Principal"], first["Surcharge"], first["Amount"], first["Currency"]) == (
        "123.45",
        "0.67",
        "124.12",
        "EUR",
    )
    assert (first["Withheld"], first["Net to agency"]) == ("0.00", "124.12")  # the agency withholds nothing
    second = dict(zip(header, lines[1], strict=True))
    assert (second["Debt ID"], second["Installment"], second["Amount"]) == ("ARR-7", "2", "50.00")
    assert "999.99" not in response.get_data(as_text=True)


def test_semicolons_and_decimal_commas_for_excel_in_greek(client: FlaskClient) -> None:
    agency = AgencyFactory()
    paid_payment((DebtFactory(agency=agency), 123456, 1))
    code = agency.code
    sign_in(client, staff_member(agency, "view", language="el"))
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "el"
    body = client.get(f"/treasury/{code}/payments.csv?sep=semicolon").get_data()
    table = rows(body, delimiter=";")
    assert table[0][0] == "Ημερομηνία" or table[0][0] == "Date"  # Greek once translated
    assert table[1][-6:] == ["1234,56", "0,01", "1234,57", "0,00", "1234,57", "EUR"]
    assert b";" in body.splitlines()[1]


def test_export_follows_the_on_screen_filters(client: FlaskClient) -> None:
    agency = AgencyFactory()
    debt = DebtFactory(agency=agency)
    kept = paid_payment((debt, 1000), channel="guest")
    paid_payment((debt, 2000), channel="account")
    code, kept_reference = agency.code, kept.reference
    sign_in(client, staff_member(agency, "view"))
    table = rows(client.get(f"/treasury/{code}/payments.csv?channel=guest").get_data())
    assert [row[1] for row in table[1:]] == [kept_reference]


def test_a_large_export_is_streamed_in_batches_and_complete(client: FlaskClient, app: Flask) -> None:
    agency = AgencyFactory()
    debts = [DebtFactory(agency=agency), DebtFactory(agency=agency)]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for number in range(250):
        paid_payment(
            (debts[0], 100 + number), (debts[1], 1), created_at=start + timedelta(minutes=number // 4), commit=False
        )
    db.session.commit()
    code = agency.code
    sign_in(client, staff_member(agency, "view"))

    saved = app.config["TREASURY_EXPORT_BATCH_SIZE"]
    app.config["TREASURY_EXPORT_BATCH_SIZE"] = 40
    try:
        response = client.get(f"/treasury/{code}/payments.csv")
        assert response.is_streamed
        chunks = list(response.response)  # what the server hands to the network, one by one
    finally:
        app.config["TREASURY_EXPORT_BATCH_SIZE"] = saved
    if db.engine_of(app).dialect.name == "sqlite":
        # The header, then one chunk per batch of 40 payments (80 lines): 7 batches for 250 payments.
        assert len(chunks) == 1 + 7
    else:  # PostgreSQL's COPY: the header, then the rows in chunks of about 256 KB
        assert len(chunks) == 1 + 1
    table = rows(b"".join(chunk if isinstance(chunk, bytes) else chunk.encode() for chunk in chunks))
    lines = table[1:]
    assert len(lines) == 500
    assert len({(row[1], row[7]) for row in lines}) == 500  # no line twice
    assert sum(int(row[16].replace(".", "")) for row in lines) == sum(100 + n for n in range(250)) + 250
    dates = [row[0] for row in lines]
    assert dates == sorted(dates, reverse=True)


def test_text_from_an_erp_cannot_become_a_spreadsheet_formula(client: FlaskClient) -> None:
    agency = AgencyFactory()
    debtor = DebtorFactory(name='=HYPERLINK("http://evil.example","Click")')
    paid_payment((DebtFactory(agency=agency, debtor=debtor), 1000))
    code = agency.code
    sign_in(client, staff_member(agency, "view"))
    table = rows(client.get(f"/treasury/{code}/payments.csv").get_data())
    assert table[1][13] == '\'=HYPERLINK("http://evil.example","Click")'


def test_withheld_and_net_split_each_line_by_the_withholdings_of_its_kind(client: FlaskClient) -> None:
    agency = AgencyFactory(
        withholdings={
            "default": [{"name": "Ταμείο Χ", "percent": "2"}],
            "traffic_fine": [{"name": "Fund Y", "fixed_minor": 50}, {"name": "Fund Z", "percent": "0.5"}],
            "parking": [],
        }
    )
    fee = DebtFactory(agency=agency, kind="property_fee", external_id="FEE")
    fine = DebtFactory(agency=agency, kind="traffic_fine", external_id="FINE")
    parking = DebtFactory(agency=agency, kind="parking", external_id="PARK")
    paid_payment((fee, 12345), (fine, 10001), (parking, 3000))
    paid_payment((fine, 30))  # less than the fixed withholding: capped, nothing left for the agency
    code = agency.code
    sign_in(client, staff_member(agency, "view"))

    table = rows(client.get(f"/treasury/{code}/payments.csv").get_data())
    header = table[0]
    found = {line[7]: dict(zip(header, line, strict=True)) for line in table[1:]}
    # 2 % of 123.45 is 2.469 → 2.47; 0.50 + 0.5 % of 100.01 (0.50005 → 0.50) is 1.00.
    assert (found["FEE"]["Withheld"], found["FEE"]["Net to agency"]) == ("2.47", "120.98")
    assert len(table) == 5
    fines = [line for line in table[1:] if line[7] == "FINE"]
    assert [(line[16], line[17], line[18]) for line in fines] == [("0.30", "0.30", "0.00"), ("100.01", "1.00", "99.01")]
    assert (found["PARK"]["Withheld"], found["PARK"]["Net to agency"]) == ("0.00", "30.00")
    for line in table[1:]:  # every line: withheld + net is exactly the amount
        amount, withheld, net = (int(line[index].replace(".", "")) for index in (16, 17, 18))
        assert withheld + net == amount
