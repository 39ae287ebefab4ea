"""Tests for the file connector: Greek CSV exports, JSON Lines, drop-folder archiving and CSV acks.

The fixtures are what ERPs hand over, byte for byte:
- greek_export.csv: windows-1253, `;`, CRLF, a header with stray spaces, capitals and a trailing `;`;
  rows 2-6 and 15 are good (one three-installment group, amounts with thousands dots), rows 7-14
  each carry one kind of fault;
- greek_export_utf8_bom.csv: the same text as UTF-8 with a byte order mark;
- water_export.jsonl: UTF-8 records in record_to_dict's shape, with a blank line and bad lines.
"""

from __future__ import annotations

import inspect
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Generator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import time_machine

from erp_connectors import files as files_module
from erp_connectors.base import (
    AckRejected,
    DebtRecord,
    ERPConnector,
    InstallmentRecord,
    PaymentAck,
    RecordError,
)
from erp_connectors.files import (
    ACK_COLUMNS,
    DEFAULT_COLUMNS,
    OPTION_NAMES,
    FileConnector,
    ProcessedFile,
    file_connector_factory,
    format_amount_minor,
    parse_amount_minor,
)

FIXTURES = Path(__file__).parent / "fixtures"
GREEK_EXPORT = FIXTURES / "greek_export.csv"
GREEK_EXPORT_UTF8 = FIXTURES / "greek_export_utf8_bom.csv"
WATER_EXPORT = FIXTURES / "water_export.jsonl"
PROJECT_ROOT = Path(__file__).resolve().parents[2]

#: the fixture's header names as a clerk reads them: stripped, the trailing unnamed column dropped
HEADER_NAMES = [
    "Α/Α Οφειλής",
    "ΑΦΜ",
    "Επωνυμία",
    "ΚΑΤΗΓΟΡΙΑ",
    "Είδος",
    "Περιγραφή",
    "Ποσό",
    "Πληρωμένο",
    "Ημ/νία Λήξης",
    "Κωδικός RF",
    "Κατάσταση",
    "Αρ. Κυκλοφορίας",
    "email",
    "Τηλέφωνο",
    "Δόση",
    "Ποσό Δόσης",
    "Ημ/νία Δόσης",
]

#: a short header for inline files, in the defaults' names
SHORT_HEADER = "Α/Α Οφειλής;ΑΦΜ;Επωνυμία;Κατηγορία;Είδος;Περιγραφή;Ποσό;Πληρωμένο;Ημ/νία Λήξης"
INSTALLMENT_HEADER = SHORT_HEADER + ";Δόση;Ποσό Δόσης;Ημ/νία Δόσης"

ATHENS_WINTER = timezone(timedelta(hours=2))


def read_all(connector: FileConnector) -> tuple[dict[str, DebtRecord], list[RecordError]]:
    """Run a full read; records by external id, errors in stream order."""
    records: dict[str, DebtRecord] = {}
    errors: list[RecordError] = []
    for item in connector.iter_debts():
        if isinstance(item, RecordError):
            errors.append(item)
        else:
            assert item.external_id not in records
            records[item.external_id] = item
    return records, errors


def write_export(folder: Path, text: str, *, name: str = "export.csv", encoding: str = "windows-1253") -> Path:
    """Write an export as the ERP would: the given encoding, CRLF line ends."""
    path = folder / name
    path.write_bytes(text.replace("\n", "\r\n").encode(encoding))
    return path


def make_ack(line_id: str = "CP-7KQ2-M9XA-3F:1", **changes: Any) -> PaymentAck:
    """An ack for 1.000,22 € of principal and 12,34 € of surcharge."""
    values: dict[str, Any] = {
        "line_id": line_id,
        "payment_reference": "CP-7KQ2-M9XA-3F",
        "external_id": "ΤΑΠ-2026-0001",
        "installment_number": None,
        "principal_minor": 100_022,
        "surcharge_minor": 1_234,
        "currency": "EUR",
        "paid_at": datetime(2026, 3, 1, 12, 5, tzinfo=ATHENS_WINTER),
    }
    values.update(changes)
    return PaymentAck(**values)


# -- the Greek CSV export ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "encoding"),
    [(GREEK_EXPORT, "windows-1253"), (GREEK_EXPORT_UTF8, "utf-8-sig")],
    ids=["windows-1253", "utf-8-bom"],
)
def test_good_rows_become_records_with_exact_amounts_dates_and_categories(path: Path, encoding: str) -> None:
    records, _errors = read_all(FileConnector("eastcoast", path=path, encoding=encoding))

    assert sorted(records) == ["ΚΛΗ-2026-0107", "ΝΕΡ-2026-0300", "ΡΥΘ-2026-0042", "ΤΑΠ-2026-0001"]
    assert records["ΤΑΠ-2026-0001"] == DebtRecord(
        external_id="ΤΑΠ-2026-0001",
        tax_id="094021880",
        tax_country="GR",
        debtor_name="Ελένη Γεωργίου",
        category="certified",
        kind="property_fee",
        description="ΤΑΠ 2025, οδός Αιγαίου 14",
        principal_minor=123_456,
        paid_minor=23_456,
        currency="EUR",
        due_date=date(2026, 1, 31),
        rf_reference="RF0726000117",
        status="open",
        contact_email="eleni@example.org",
    )
    fine = records["ΚΛΗ-2026-0107"]
    assert (fine.category, fine.principal_minor, fine.paid_minor) == ("uncertified", 8_000, 0)
    assert (fine.due_date, fine.vehicle_plate, fine.contact_phone) == (date(2026, 4, 15), "ΙΚΤ-1234", "+306900000201")
    water = records["ΝΕΡ-2026-0300"]
    # "βεβαιωμενη" without accents or capitals is still the certified label.
    assert (water.category, water.status, water.kind) == ("certified", "paid", "water_bill")
    assert (water.principal_minor, water.paid_minor, water.due_date) == (102_040, 102_040, date(2025, 6, 30))


def test_an_installment_group_becomes_one_settled_debt_paid_oldest_installment_first() -> None:
    records, _errors = read_all(FileConnector("eastcoast", path=GREEK_EXPORT))

    settled = records["ΡΥΘ-2026-0042"]
    assert (settled.category, settled.principal_minor, settled.paid_minor) == ("settled", 45_000, 15_000)
    assert settled.installments == (
        InstallmentRecord(1, date(2026, 1, 31), 15_000, paid_minor=15_000),
        InstallmentRecord(2, date(2026, 2, 28), 15_000, paid_minor=0),
        InstallmentRecord(3, date(2026, 3, 31), 15_000, paid_minor=0),
    )


BAD_ROWS = [
    pytest.param(7, "ΤΑΠ-2026-0002", "The column 'ΑΦΜ' is empty.", id="missing-value"),
    pytest.param(
        8,
        "ΤΑΠ-2026-0003",
        "The column 'Ποσό' has '12,345', which is not an amount like 1.234,56 (at most two decimals).",
        id="non-numeric-amount",
    ),
    pytest.param(
        9,
        "ΤΑΠ-2026-0004",
        "The column 'Ημ/νία Λήξης' has '31/02/2026', which is not a date like 31/03/2026.",
        id="unparsable-date",
    ),
    pytest.param(
        10,
        "ΤΑΠ-2026-0005",
        "The category 'Διαγραμμένη' in column 'ΚΑΤΗΓΟΡΙΑ' is unknown; expected one of Βεβαιωμένη, Ρύθμιση, "
        "Αβεβαίωτη, certified, settled, uncertified.",
        id="unknown-category",
    ),
    pytest.param(11, "ΤΑΠ-2026-0006", "The Greek tax id (AFM) 123456789 fails its check digit.", id="invalid-afm"),
    pytest.param(12, "ΤΑΠ-2026-0007", "The principal is negative (-1250 minor units).", id="negative-amount"),
    pytest.param(
        13, "ΤΑΠ-2026-0008", "The RF reference 'RF001234' is not a valid ISO 11649 creditor reference", id="invalid-rf"
    ),
    pytest.param(
        14,
        "ΤΑΠ-2026-0001",
        "duplicate external id 'ΤΑΠ-2026-0001' in the file (first at row 2); this row is skipped.",
        id="duplicate-external-id",
    ),
]


@pytest.mark.parametrize(("row", "external_id", "sentence"), BAD_ROWS)
def test_each_bad_row_is_an_error_naming_its_row_with_the_raw_row(row: int, external_id: str, sentence: str) -> None:
    _records, errors = read_all(FileConnector("eastcoast", path=GREEK_EXPORT))

    [error] = [error for error in errors if error.reason.startswith(f"Row {row} of greek_export.csv")]
    assert sentence in error.reason
    assert isinstance(error.raw, dict)
    assert list(error.raw) == HEADER_NAMES
    assert error.raw["Α/Α Οφειλής"] == external_id


def test_bad_rows_do_not_stop_the_stream_and_keep_file_order() -> None:
    items = list(FileConnector("eastcoast", path=GREEK_EXPORT).iter_debts())

    labels = [item.reason.split(" of ")[0] if isinstance(item, RecordError) else item.external_id for item in items]
    assert labels == [
        "ΤΑΠ-2026-0001",
        "ΚΛΗ-2026-0107",
        "ΡΥΘ-2026-0042",
        *(f"Row {row}" for row in range(7, 15)),
        "ΝΕΡ-2026-0300",
    ]


def test_an_undecodable_row_is_one_error_and_the_other_rows_are_still_read(tmp_path: Path) -> None:
    lines = GREEK_EXPORT.read_bytes().split(b"\r\n")
    # 0xFF is not a character in windows-1253.
    bad_row = "ΤΑΠ-2026-0099;094021880;Ελένη".encode("windows-1253") + b"\xff" + ";Βεβαιωμένη".encode("windows-1253")
    lines.insert(3, bad_row)
    export = tmp_path / "export.csv"
    export.write_bytes(b"\r\n".join(lines))

    records, errors = read_all(FileConnector("eastcoast", path=export))

    assert sorted(records) == ["ΚΛΗ-2026-0107", "ΝΕΡ-2026-0300", "ΡΥΘ-2026-0042", "ΤΑΠ-2026-0001"]
    [undecodable] = [error for error in errors if "windows-1253" in error.reason]
    assert undecodable.reason == "Row 4 of export.csv is not valid windows-1253 text; it is skipped."
    assert undecodable.raw == "ΤΑΠ-2026-0099;094021880;Ελένη\ufffd;Βεβαιωμένη"
    # The rows after it keep their own line numbers.
    assert any(error.reason.startswith("Row 8 of export.csv: The column 'ΑΦΜ' is empty.") for error in errors)


def test_a_byte_order_mark_never_reaches_the_first_header_name() -> None:
    # Plain "utf-8" keeps the mark as a character; the connector must drop it all the same.
    records, errors = read_all(FileConnector("eastcoast", path=GREEK_EXPORT_UTF8, encoding="utf-8"))

    assert len(records) == 4
    assert all(next(iter(error.raw)) == "Α/Α Οφειλής" for error in errors if isinstance(error.raw, dict))


def test_a_utf8_file_read_as_windows_1253_is_one_error_that_says_which_option_to_set() -> None:
    items = list(FileConnector("eastcoast", path=GREEK_EXPORT_UTF8).iter_debts())

    assert len(items) == 1 and isinstance(items[0], RecordError)
    assert "set the option 'encoding' to 'utf-8-sig'" in items[0].reason


def test_a_missing_required_column_is_one_error_for_the_file_and_no_records(tmp_path: Path) -> None:
    export = write_export(
        tmp_path,
        "Α/Α Οφειλής;Επωνυμία;Κατηγορία;Είδος;Περιγραφή;Ημ/νία Λήξης\n"
        "ΤΑΠ-1;Ελένη Γεωργίου;Βεβαιωμένη;property_fee;ΤΑΠ;31/01/2026\n",
    )

    items = list(FileConnector("eastcoast", path=export).iter_debts())

    assert len(items) == 1 and isinstance(items[0], RecordError)
    assert items[0].reason.startswith("The file export.csv has no column 'ΑΦΜ', 'Ποσό'; its header is")
    assert items[0].raw == "Α/Α Οφειλής;Επωνυμία;Κατηγορία;Είδος;Περιγραφή;Ημ/νία Λήξης"


def test_an_installment_number_column_needs_its_amount_and_date_columns(tmp_path: Path) -> None:
    export = write_export(tmp_path, SHORT_HEADER + ";Δόση\n")

    [error] = list(FileConnector("eastcoast", path=export).iter_debts())

    assert isinstance(error, RecordError)
    assert "has no column 'Ποσό Δόσης', 'Ημ/νία Δόσης'" in error.reason


def test_an_empty_file_is_an_error_not_an_empty_export(tmp_path: Path) -> None:
    export = write_export(tmp_path, "")

    [error] = list(FileConnector("eastcoast", path=export).iter_debts())

    assert isinstance(error, RecordError)
    assert error.reason == "The file export.csv has no header row; no rows were read."


def test_installment_paid_amounts_are_taken_from_their_column_when_the_file_has_one(tmp_path: Path) -> None:
    export = write_export(
        tmp_path,
        INSTALLMENT_HEADER + ";Πληρωμένο Δόσης\n"
        "Ρ-1;047325610;Νίκος Παππάς;Ρύθμιση;property_fee;Ρύθμιση;300,01;100,01;31/03/2026;1;100,01;31/01/2026;100,01\n"
        "Ρ-1;047325610;Νίκος Παππάς;Ρύθμιση;property_fee;Ρύθμιση;300,01;100,01;31/03/2026;2;200,00;28/02/2026;\n",
    )

    records, errors = read_all(FileConnector("eastcoast", path=export))

    assert errors == []
    assert records["Ρ-1"].installments == (
        InstallmentRecord(1, date(2026, 1, 31), 10_001, paid_minor=10_001),
        InstallmentRecord(2, date(2026, 2, 28), 20_000, paid_minor=0),
    )


def test_a_bad_row_inside_an_installment_group_fails_the_whole_debt_naming_that_row(tmp_path: Path) -> None:
    export = write_export(
        tmp_path,
        INSTALLMENT_HEADER + "\n"
        "Ρ-1;047325610;Νίκος Παππάς;Ρύθμιση;property_fee;Ρύθμιση;300,00;;31/03/2026;1;150,00;31/01/2026\n"
        "Ρ-1;047325610;Νίκος Παππάς;Ρύθμιση;property_fee;Ρύθμιση;300,00;;31/03/2026;2;150,00;30/02/2026\n"
        "Κ-2;094021880;Ελένη Γεωργίου;Βεβαιωμένη;property_fee;ΤΑΠ;10,00;;31/01/2026;;;\n",
    )

    records, errors = read_all(FileConnector("eastcoast", path=export))

    assert list(records) == ["Κ-2"]
    [error] = errors
    assert error.reason == (
        "Rows 2 to 3 of export.csv (debt 'Ρ-1') cannot be read. Row 3: The column 'Ημ/νία Δόσης' has "
        "'30/02/2026', which is not a date like 31/03/2026."
    )
    assert isinstance(error.raw, dict) and error.raw["Δόση"] == "2"


def test_rows_of_one_installment_group_must_agree_on_the_debt(tmp_path: Path) -> None:
    export = write_export(
        tmp_path,
        INSTALLMENT_HEADER + "\n"
        "Ρ-1;047325610;Νίκος Παππάς;Ρύθμιση;property_fee;Ρύθμιση;300,00;;31/03/2026;1;150,00;31/01/2026\n"
        "Ρ-1;047325610;Νίκος Παππάς;Ρύθμιση;property_fee;Ρύθμιση;30,00;;31/03/2026;2;150,00;28/02/2026\n",
    )

    [error] = list(FileConnector("eastcoast", path=export).iter_debts())

    assert isinstance(error, RecordError)
    assert error.reason == (
        "Rows 2 to 3 of export.csv (debt 'Ρ-1') disagree on the column 'Ποσό': row 2 has '300,00', row 3 has '30,00'."
    )


def test_installments_that_do_not_add_up_fail_validation_naming_the_rows(tmp_path: Path) -> None:
    export = write_export(
        tmp_path,
        INSTALLMENT_HEADER + "\n"
        "Ρ-1;047325610;Νίκος Παππάς;Ρύθμιση;property_fee;Ρύθμιση;300,00;;31/03/2026;1;150,00;31/01/2026\n"
        "Ρ-1;047325610;Νίκος Παππάς;Ρύθμιση;property_fee;Ρύθμιση;300,00;;31/03/2026;2;100,00;28/02/2026\n",
    )

    [error] = list(FileConnector("eastcoast", path=export).iter_debts())

    assert isinstance(error, RecordError)
    assert error.reason == (
        "Rows 2 to 3 of export.csv (debt 'Ρ-1'): "
        "The installments add up to 25000 minor units but the principal is 30000."
    )


def test_an_external_id_repeated_after_another_debt_is_a_duplicate_not_an_installment(tmp_path: Path) -> None:
    export = write_export(
        tmp_path,
        INSTALLMENT_HEADER + "\n"
        "Ρ-1;047325610;Νίκος Παππάς;Ρύθμιση;property_fee;Ρύθμιση;300,00;;31/03/2026;1;150,00;31/01/2026\n"
        "Κ-2;094021880;Ελένη Γεωργίου;Βεβαιωμένη;property_fee;ΤΑΠ;10,00;;31/01/2026;;;\n"
        "Ρ-1;047325610;Νίκος Παππάς;Ρύθμιση;property_fee;Ρύθμιση;300,00;;31/03/2026;2;150,00;28/02/2026\n",
    )

    items = list(FileConnector("eastcoast", path=export).iter_debts())

    # The first occurrence is judged on its own: a settled debt of one 150,00 installment does not add up.
    assert [type(item).__name__ for item in items] == ["RecordError", "DebtRecord", "RecordError"]
    assert isinstance(items[2], RecordError)
    assert items[2].reason.startswith("Row 4 of export.csv: duplicate external id 'Ρ-1' in the file (first at row 2)")


def test_a_row_with_values_beyond_the_header_is_an_error(tmp_path: Path) -> None:
    export = write_export(
        tmp_path,
        SHORT_HEADER + "\nΚ-2;094021880;Ελένη Γεωργίου;Βεβαιωμένη;property_fee;ΤΑΠ;10,00;;31/01/2026;;περισσευούμενο\n",
    )

    [error] = list(FileConnector("eastcoast", path=export).iter_debts())

    assert isinstance(error, RecordError) and isinstance(error.raw, dict)
    assert error.reason == "Row 2 of export.csv: It has values without a column in the header: περισσευούμενο."
    assert error.raw["(values without a column)"] == "περισσευούμενο"


def test_columns_and_labels_follow_the_agency_configuration(tmp_path: Path) -> None:
    export = write_export(
        tmp_path,
        "Κωδικός;ΑΦΜ;Οφειλέτης;Κατηγορία;Είδος;Περιγραφή;Ποσό;Ημ/νία Λήξης;Κατάσταση\n"
        "Υ-1;094021880;Ελένη Γεωργίου;ΒΕΒ;Τέλη Ύδρευσης;Νερό;1.000,00;2026-01-31;Σε εκκρεμότητα\n",
        encoding="utf-8-sig",
    )
    connector = FileConnector(
        "eastcoast-water",
        path=export,
        encoding="utf-8-sig",
        date_format="%Y-%m-%d",
        columns={"external_id": "Κωδικός", "debtor_name": "Οφειλέτης"},
        category_values={"ΒΕΒ": "certified"},
        kind_values={"Τέλη ύδρευσης": "water_bill"},
        status_values={"Σε εκκρεμότητα": "open"},
    )

    records, errors = read_all(connector)

    assert errors == []
    record = records["Υ-1"]
    assert (record.debtor_name, record.category, record.kind, record.status) == (
        "Ελένη Γεωργίου",
        "certified",
        "water_bill",
        "open",
    )
    assert (record.principal_minor, record.due_date) == (100_000, date(2026, 1, 31))


def test_a_kind_label_without_a_mapping_is_refused_by_validation(tmp_path: Path) -> None:
    export = write_export(
        tmp_path, SHORT_HEADER + "\nΥ-1;094021880;Ελένη Γεωργίου;Βεβαιωμένη;Τέλη Ύδρευσης;Νερό;10,00;;31/01/2026\n"
    )

    [error] = list(FileConnector("eastcoast", path=export).iter_debts())

    assert isinstance(error, RecordError)
    assert "The kind 'Τέλη Ύδρευσης' is not a lowercase slug" in error.reason


def test_amounts_with_a_decimal_point_when_the_agency_says_so(tmp_path: Path) -> None:
    export = write_export(
        tmp_path,
        SHORT_HEADER.replace(";", ",") + "\n"
        'Κ-2,094021880,Ελένη Γεωργίου,Βεβαιωμένη,property_fee,ΤΑΠ,"1,234.56",,31/01/2026\n',
    )
    connector = FileConnector("eastcoast", path=export, delimiter=",", decimal_comma=False, thousands_separator=",")

    records, errors = read_all(connector)

    assert errors == []
    assert records["Κ-2"].principal_minor == 123_456


# -- amounts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "minor"),
    [
        ("1.234,56", 123_456),
        ("1234,56", 123_456),
        ("0,5", 50),
        ("0,05", 5),
        ("12", 1_200),
        ("1.234", 123_400),
        ("1.234.567,89", 123_456_789),
        (" 7,10 ", 710),
        ("-12,50", -1_250),
    ],
)
def test_greek_amounts_become_exact_minor_units(text: str, minor: int) -> None:
    assert parse_amount_minor(text) == minor


@pytest.mark.parametrize(
    "text", ["12,345", "abc", "", "12.34", "1,2,3", "1.23,45", "12.3456,00", "--1", ",50", "1 234,56"]
)
def test_text_that_is_not_a_greek_amount_is_refused_with_a_sentence(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not an amount like 1\.234,56 \(at most two decimals\)\."):
        parse_amount_minor(text)


@pytest.mark.parametrize(
    ("minor", "text"), [(123_456, "1234,56"), (5, "0,05"), (100, "1,00"), (0, "0,00"), (-1_250, "-12,50")]
)
def test_minor_units_are_written_with_a_decimal_comma(minor: int, text: str) -> None:
    assert format_amount_minor(minor) == text


# -- JSON Lines ----------------------------------------------------------------------------------


def test_json_lines_give_records_and_one_error_per_bad_line_with_the_raw_line() -> None:
    records, errors = read_all(FileConnector("eastcoast-water", path=WATER_EXPORT, format="jsonl"))

    assert sorted(records) == ["ΝΕΡ-2026-0410", "ΝΕΡ-2026-0412"]
    assert records["ΝΕΡ-2026-0410"].principal_minor == 4_275
    assert records["ΝΕΡ-2026-0410"].updated_at == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    assert records["ΝΕΡ-2026-0412"].installments[0] == InstallmentRecord(1, date(2026, 1, 31), 10_001, 10_001)
    assert [error.reason for error in errors] == [
        "Line 3 of water_export.jsonl is not valid JSON (Expecting value, column 44).",
        "Line 4 of water_export.jsonl (debt 'ΝΕΡ-2026-0411'): The Greek tax id (AFM) 123456789 fails its check digit.",
        "Line 5 of water_export.jsonl is not a JSON object.",
        "Line 6 of water_export.jsonl: The field 'principal_minor' is missing.",
    ]
    raw_lines = WATER_EXPORT.read_text(encoding="utf-8").splitlines()
    assert [error.raw for error in errors] == [raw_lines[2], raw_lines[3], raw_lines[4], raw_lines[5]]


def test_a_json_line_that_is_not_utf8_is_one_error(tmp_path: Path) -> None:
    export = tmp_path / "export.jsonl"
    good = WATER_EXPORT.read_bytes().splitlines()[0]
    export.write_bytes('{"external_id": "Ν-1"}'.encode("windows-1253") + b"\n" + good + b"\n")

    records, errors = read_all(FileConnector("eastcoast-water", path=export, format="jsonl"))

    assert list(records) == ["ΝΕΡ-2026-0410"]
    assert [error.reason for error in errors] == ["Line 1 of export.jsonl is not valid utf-8 text; it is skipped."]


# -- missing sources -----------------------------------------------------------------------------


def test_a_missing_export_file_is_a_connection_error_in_check_and_at_once_in_iter_debts(tmp_path: Path) -> None:
    connector = FileConnector("eastcoast", path=tmp_path / "missing.csv")

    with pytest.raises(ConnectionError, match=r"The export file .*missing\.csv does not exist\."):
        connector.check()
    # Raised by the call itself, before any item is asked for.
    with pytest.raises(ConnectionError, match=r"does not exist\."):
        connector.iter_debts()
    with pytest.raises(ConnectionError, match=r"does not exist\."):
        connector.fetch_debtor("GR", "094021880")


def test_a_missing_drop_folder_is_a_connection_error(tmp_path: Path) -> None:
    connector = FileConnector("eastcoast", drop_folder=tmp_path / "incoming")

    with pytest.raises(ConnectionError, match=r"The drop folder .*incoming does not exist or is not a folder\."):
        connector.check()
    with pytest.raises(ConnectionError, match=r"does not exist or is not a folder\."):
        connector.iter_debts()


def test_check_passes_for_a_readable_export_and_a_creatable_ack_folder(tmp_path: Path) -> None:
    FileConnector("eastcoast", path=GREEK_EXPORT, ack_folder=tmp_path / "acks").check()
    FileConnector("eastcoast", drop_folder=tmp_path).check()


# -- drop folder ---------------------------------------------------------------------------------


@pytest.fixture
def drop_folder(tmp_path: Path) -> Path:
    """A drop folder holding a CSV and a JSON Lines export, and files the connector must leave alone."""
    folder = tmp_path / "incoming"
    folder.mkdir()
    shutil.copy(GREEK_EXPORT, folder / "01-municipal.csv")
    shutil.copy(WATER_EXPORT, folder / "02-water.jsonl")
    (folder / "notes.txt").write_text("not an export", encoding="utf-8")
    (folder / ".03-upload.csv").write_bytes(b"")
    return folder


def test_a_drop_folder_is_read_in_name_order_and_archived_after_the_full_read(drop_folder: Path) -> None:
    connector = FileConnector("eastcoast", drop_folder=drop_folder)

    with time_machine.travel(datetime(2026, 3, 1, 10, 15, tzinfo=UTC), tick=False):
        records, errors = read_all(connector)

    assert len(records) == 6 and len(errors) == 8 + 4
    archive = drop_folder / "archive"
    assert connector.processed_files == [
        ProcessedFile(drop_folder / "01-municipal.csv", archive / "01-municipal.20260301T101500Z.csv"),
        ProcessedFile(drop_folder / "02-water.jsonl", archive / "02-water.20260301T101500Z.jsonl"),
    ]
    assert sorted(path.name for path in drop_folder.iterdir()) == [".03-upload.csv", "archive", "notes.txt"]
    assert (archive / "01-municipal.20260301T101500Z.csv").read_bytes() == GREEK_EXPORT.read_bytes()


def test_a_read_that_stops_midway_archives_nothing(drop_folder: Path) -> None:
    connector = FileConnector("eastcoast", drop_folder=drop_folder)

    stream = connector.iter_debts()
    next(stream)
    # What a sync that crashes or gives up does to the stream.
    assert isinstance(stream, Generator)
    stream.close()

    assert (drop_folder / "01-municipal.csv").exists() and (drop_folder / "02-water.jsonl").exists()
    assert not (drop_folder / "archive").exists()
    assert connector.processed_files == []
    # The next sync reads the whole file again.
    records, _errors = read_all(FileConnector("eastcoast", drop_folder=drop_folder))
    assert len(records) == 6


def test_a_file_is_archived_only_when_the_consumer_asks_past_its_last_item(drop_folder: Path) -> None:
    municipal_items = len(list(FileConnector("eastcoast", path=GREEK_EXPORT).iter_debts()))
    connector = FileConnector("eastcoast", drop_folder=drop_folder)
    stream = connector.iter_debts()

    for _ in range(municipal_items):
        next(stream)
    assert (drop_folder / "01-municipal.csv").exists()

    next(stream)
    assert not (drop_folder / "01-municipal.csv").exists()
    assert (drop_folder / "02-water.jsonl").exists()
    assert [processed.source.name for processed in connector.processed_files] == ["01-municipal.csv"]


def test_the_same_file_name_archived_twice_in_one_second_keeps_both(drop_folder: Path) -> None:
    with time_machine.travel(datetime(2026, 3, 1, 10, 15, tzinfo=UTC), tick=False):
        read_all(FileConnector("eastcoast", drop_folder=drop_folder))
        shutil.copy(GREEK_EXPORT, drop_folder / "01-municipal.csv")
        read_all(FileConnector("eastcoast", drop_folder=drop_folder))

    assert sorted(path.name for path in (drop_folder / "archive").iterdir()) == [
        "01-municipal.20260301T101500Z-2.csv",
        "01-municipal.20260301T101500Z.csv",
        "02-water.20260301T101500Z.jsonl",
    ]


def test_fetch_debtor_reads_the_newest_archived_file_and_archives_nothing(tmp_path: Path) -> None:
    drop = tmp_path / "incoming"
    drop.mkdir()
    connector = FileConnector("eastcoast", drop_folder=drop)
    assert connector.fetch_debtor("GR", "094021880") == []

    shutil.copy(WATER_EXPORT, drop / "water.jsonl")
    with time_machine.travel(datetime(2026, 3, 1, 10, 0, tzinfo=UTC), tick=False):
        read_all(connector)
    shutil.copy(GREEK_EXPORT, drop / "municipal.csv")
    with time_machine.travel(datetime(2026, 3, 2, 10, 0, tzinfo=UTC), tick=False):
        read_all(connector)
    shutil.copy(WATER_EXPORT, drop / "waiting.jsonl")

    found = connector.fetch_debtor("GR", "094021880")

    # Only the municipal export of 2 March, the newest archived: its debt and its bad row for that AFM.
    assert [item.external_id for item in found if isinstance(item, DebtRecord)] == ["ΤΑΠ-2026-0001"]
    assert [item.reason.split(":")[0] for item in found if isinstance(item, RecordError)] == [
        "Row 10 of municipal.20260302T100000Z.csv",
        "Row 14 of municipal.20260302T100000Z.csv",
    ]
    assert (drop / "waiting.jsonl").exists()


def test_fetch_debtor_filters_one_export_file_by_tax_id() -> None:
    connector = FileConnector("eastcoast", path=GREEK_EXPORT)

    found = connector.fetch_debtor("GR", "115983626")

    assert [item.external_id for item in found if isinstance(item, DebtRecord)] == ["ΚΛΗ-2026-0107"]
    assert [item.reason.split(":")[0] for item in found if isinstance(item, RecordError)] == [
        "Row 12 of greek_export.csv (debt 'ΤΑΠ-2026-0007')"
    ]
    assert connector.fetch_debtor("CY", "115983626") == []


# -- acks ----------------------------------------------------------------------------------------


def test_an_ack_is_a_row_of_todays_utf8_bom_file_with_decimal_comma_amounts(tmp_path: Path) -> None:
    connector = FileConnector("eastcoast", path=GREEK_EXPORT, ack_folder=tmp_path / "acks")

    with time_machine.travel(datetime(2026, 3, 1, 10, 5, tzinfo=UTC), tick=False):
        connector.acknowledge(make_ack())
        connector.acknowledge(
            make_ack(
                "CP-7KQ2-M9XA-3F:2",
                external_id="ΡΥΘ-2026-0042",
                installment_number=2,
                principal_minor=15_000,
                surcharge_minor=0,
            )
        )

    assert (tmp_path / "acks" / "acks-20260301.csv").read_bytes() == (
        "\ufeffline_id;payment_reference;external_id;installment_number;principal;surcharge;currency;paid_at\r\n"
        "CP-7KQ2-M9XA-3F:1;CP-7KQ2-M9XA-3F;ΤΑΠ-2026-0001;;1000,22;12,34;EUR;2026-03-01T12:05:00+02:00\r\n"
        "CP-7KQ2-M9XA-3F:2;CP-7KQ2-M9XA-3F;ΡΥΘ-2026-0042;2;150,00;0,00;EUR;2026-03-01T12:05:00+02:00\r\n"
    ).encode("utf-8")
    assert ACK_COLUMNS[0] == "line_id"


def test_acks_are_idempotent_by_line_id_across_connectors_and_days(tmp_path: Path) -> None:
    first = FileConnector("eastcoast", path=GREEK_EXPORT, ack_folder=tmp_path)
    second = FileConnector("eastcoast", path=GREEK_EXPORT, ack_folder=tmp_path)

    with time_machine.travel(datetime(2026, 3, 1, 23, 59, tzinfo=UTC), tick=False):
        first.acknowledge(make_ack())
        second.acknowledge(make_ack())
    with time_machine.travel(datetime(2026, 3, 2, 0, 1, tzinfo=UTC), tick=False):
        second.acknowledge(make_ack())
        second.acknowledge(make_ack("CP-7KQ2-M9XA-3F:2"))

    day_one = (tmp_path / "acks-20260301.csv").read_text(encoding="utf-8-sig").splitlines()
    day_two = (tmp_path / "acks-20260302.csv").read_text(encoding="utf-8-sig").splitlines()
    assert [line.split(";")[0] for line in day_one] == ["line_id", "CP-7KQ2-M9XA-3F:1"]
    assert [line.split(";")[0] for line in day_two] == ["line_id", "CP-7KQ2-M9XA-3F:2"]


def _acknowledge_many(ack_folder: str, count: int, start_at: float) -> None:
    connector = FileConnector("eastcoast", path=os.fspath(GREEK_EXPORT), ack_folder=ack_folder)
    # Workers start one by one; waiting for a common moment makes them overlap.
    time.sleep(max(0.0, start_at - time.time()))
    for number in range(count):
        connector.acknowledge(make_ack(f"CP-RACE:{number}"))


def test_processes_acknowledging_the_same_lines_at_once_write_each_line_once(tmp_path: Path) -> None:
    # Real processes, not threads: flock is what keeps separate workers of the outbox apart.
    start_at = time.time() + 2
    with ProcessPoolExecutor(max_workers=4, mp_context=multiprocessing.get_context("spawn")) as pool:
        for result in [pool.submit(_acknowledge_many, os.fspath(tmp_path), 25, start_at) for _ in range(4)]:
            result.result()

    lines = [
        line
        for ack_file in tmp_path.glob("acks-*.csv")
        for line in ack_file.read_text(encoding="utf-8-sig").splitlines()[1:]
    ]
    assert sorted(line.split(";")[0] for line in lines) == sorted(f"CP-RACE:{number}" for number in range(25))


def test_an_ack_without_an_ack_folder_is_rejected_with_a_sentence() -> None:
    connector = FileConnector("eastcoast", path=GREEK_EXPORT)

    with pytest.raises(AckRejected) as rejected:
        connector.acknowledge(make_ack())

    assert rejected.value.reason == "This agency's file connector has no ack folder configured."


# -- configuration -------------------------------------------------------------------------------


def test_the_connector_meets_the_protocol_and_never_reads_changes_only() -> None:
    connector = FileConnector("eastcoast", path=GREEK_EXPORT)

    assert isinstance(connector, ERPConnector)
    assert connector.supports_changed_since is False
    everything = list(connector.iter_debts())
    assert len(list(connector.iter_debts(changed_since=datetime(2030, 1, 1, tzinfo=UTC)))) == len(everything)


def test_the_factory_builds_a_connector_from_json_options(tmp_path: Path) -> None:
    connector = file_connector_factory(
        "eastcoast",
        {
            "drop_folder": os.fspath(tmp_path),
            "ack_folder": os.fspath(tmp_path / "acks"),
            "encoding": "utf-8-sig",
            "columns": {"debtor_name": "Οφειλέτης"},
            "kind_values": {"Ύδρευση": "water_bill"},
        },
    )

    assert connector.drop_folder == tmp_path
    assert connector.archive_folder == tmp_path / "archive"
    assert connector.columns["debtor_name"] == "Οφειλέτης"
    assert connector.columns["tax_id"] == DEFAULT_COLUMNS["tax_id"]


def test_the_factory_refuses_an_unknown_option_with_a_sentence() -> None:
    with pytest.raises(ValueError, match=r"^The file connector has no option 'pth'; its options are path, "):
        file_connector_factory("eastcoast", {"pth": "/srv/export.csv"})


def test_the_factory_knows_every_keyword_of_the_connector() -> None:
    keywords = [
        name
        for name, parameter in inspect.signature(FileConnector).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    assert list(OPTION_NAMES) == keywords


@pytest.mark.parametrize(
    ("options", "sentence"),
    [
        ({}, "exactly one of 'path'"),
        ({"path": "a.csv", "drop_folder": "in"}, "exactly one of 'path'"),
        ({"path": "a.csv", "archive_folder": "old"}, "only applies together with 'drop_folder'"),
        ({"path": "a.csv", "format": "xlsx"}, "The format 'xlsx' is unknown"),
        ({"path": "a.csv", "encoding": "klingon"}, "The encoding 'klingon' is unknown"),
        ({"path": "a.csv", "encoding": "utf-16"}, "is not ASCII-compatible"),
        ({"path": "a.csv", "delimiter": ";;"}, "must be a single character"),
        ({"path": "a.csv", "thousands_separator": ","}, "is also the decimal separator"),
        ({"path": "a.csv", "decimal_comma": "yes"}, "must be true or false"),
        ({"path": "a.csv", "date_format": "%m/%Y"}, "cannot read back a full date"),
        ({"path": "a.csv", "columns": {"amount": "Ποσό"}}, "names unknown fields 'amount'"),
        ({"path": "a.csv", "columns": {"paid": "Ποσό"}}, "gives the same header name to two fields"),
        ({"path": "a.csv", "category_values": {"Οριστική": "final"}}, "maps 'Οριστική' to 'final'"),
        ({"path": "a.csv", "kind_values": {"Νερό": "Water Bill"}}, "is not a slug"),
        ({"path": "a.csv", "default_currency": "eur"}, "'default_currency' must be a code such as 'EUR'"),
    ],
)
def test_a_bad_option_is_refused_with_a_sentence(options: dict[str, Any], sentence: str) -> None:
    with pytest.raises(ValueError, match=sentence.replace("(", r"\(")):
        file_connector_factory("eastcoast", options)


def test_the_file_connector_never_imports_the_app() -> None:
    code = (
        "import sys, erp_connectors.files; "
        "sys.exit(any(m == 'app' or m.startswith(('app.', 'flask')) for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT).returncode == 0


def test_the_csv_example_in_the_module_documentation_reads_as_documented(tmp_path: Path) -> None:
    example = [line.strip() for line in (files_module.__doc__ or "").splitlines() if line.startswith(" " * 6)]
    export = write_export(tmp_path, "\n".join(example) + "\n")

    records, errors = read_all(FileConnector("eastcoast", path=export))

    assert errors == []
    assert records["ΤΑΠ-2026-0001"].principal_minor == 123_456
    assert [installment.paid_minor for installment in records["ΡΥΘ-2026-0042"].installments] == [15_000, 0, 0]


def test_an_undecodable_header_is_one_error_for_the_file(tmp_path: Path) -> None:
    export = tmp_path / "export.csv"
    export.write_bytes(b"\xff" + GREEK_EXPORT.read_bytes())

    items = list(FileConnector("eastcoast", path=export).iter_debts())

    assert [item.reason for item in items if isinstance(item, RecordError)] == [
        "The file export.csv has no readable header row; no rows were read."
    ]
    assert len(items) == 1


def test_a_row_the_csv_parser_refuses_is_one_error_and_the_rest_is_read(tmp_path: Path) -> None:
    huge = "Χ" * 200_000
    export = write_export(
        tmp_path,
        SHORT_HEADER + "\n"
        f"Κ-1;094021880;Ελένη Γεωργίου;Βεβαιωμένη;property_fee;{huge};10,00;;31/01/2026\n"
        "Κ-2;094021880;Ελένη Γεωργίου;Βεβαιωμένη;property_fee;ΤΑΠ;10,00;;31/01/2026\n",
    )

    records, errors = read_all(FileConnector("eastcoast", path=export))

    assert list(records) == ["Κ-2"]
    assert [error.reason for error in errors] == [
        "Row 2 of export.csv cannot be read as CSV: field larger than field limit (131072)."
    ]
